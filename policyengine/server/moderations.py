"""Map a Decision onto the OpenAI moderation result shape.

`categories` / `category_scores` hold every OpenAI category (so client code reading `categories.hate` keeps working),
filled from the policy's rule categories through OPENAI_CATEGORIES, plus every category the policy itself uses,
under its own name. A category is true when a rule of that category fired with an action other than allow. Its
score is the best evidence for it: the similarity score of a concept match, 1.0 for a pattern, word list or
context match, and for a near miss the (below-threshold) similarity score, so scores stay in [0, 1].
"""

from __future__ import annotations

from typing import Any

from ..compiler import CompiledPolicy
from ..models import Decision

OPENAI_KEYS = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
               "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
               "violence/graphic")

# policy category (MLCommons hazard names used by the default pack) -> OpenAI categories it implies
OPENAI_CATEGORIES: dict[str, tuple[str, ...]] = {
    "hate": ("hate",),
    "violent_crimes": ("violence", "illicit/violent"),
    "indiscriminate_weapons": ("illicit/violent",),
    "non_violent_crimes": ("illicit",),
    "sex_related_crimes": ("sexual", "illicit"),
    "child_sexual_exploitation": ("sexual/minors",),
    "suicide_self_harm": ("self-harm",),
    "sexual_content": ("sexual",),
}


def policy_categories(policy: CompiledPolicy) -> list[str]:
    cats = {r.category or r.name for r in policy.rules}
    return sorted(cats)


def _targets(category: str) -> tuple[str, ...]:
    own = (category,)
    mapped = OPENAI_CATEGORIES.get(category, ())
    return own + tuple(k for k in mapped if k != category)


def moderation_result(d: Decision, policy: CompiledPolicy) -> dict[str, Any]:
    keys = list(OPENAI_KEYS) + [c for c in policy_categories(policy) if c not in OPENAI_KEYS]
    flags = dict.fromkeys(keys, False)
    scores = dict.fromkeys(keys, 0.0)
    by_rule = {r.name: (r.category or r.name) for r in policy.rules}

    def bump(cat: str, score: float, fired: bool) -> None:
        score = max(0.0, min(1.0, float(score)))
        for k in _targets(cat):
            flags[k] = flags.get(k, False) or fired
            scores[k] = max(scores.get(k, 0.0), score)

    for reason in d.reasons:
        cat = reason.category or by_rule.get(reason.rule, reason.rule)
        best = max((getattr(e, "score", 1.0) for e in reason.evidence), default=1.0)
        bump(cat, best, reason.action != "allow")
    for nm in d.near_misses:
        bump(by_rule.get(nm.rule, nm.rule), nm.score, False)
    return {
        "flagged": d.action != "allow",
        "categories": flags,
        "category_scores": scores,
        "category_applied_input_types": {k: ["text"] for k in keys},
        "policyengine": d.model_dump(mode="python"),
    }
