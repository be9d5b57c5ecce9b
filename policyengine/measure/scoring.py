"""`policyengine score`: false-refusal rate, catch rate, precision and F1 with 95% intervals, per file and overall;
what every rule caused; per category; the worst false refusals with their explanations; and the rows that nearly
copy an example or counter-example of the policy (a measurement on them says little about unseen traffic)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..models import ClassifierEvidence, Decision, SimilarityEvidence
from .runner import RowResult
from .stats import Estimate, Interval, f1_bootstrap, wilson

DEFAULT_RULE = "(policy default)"
NEAR_COPY = 0.95  # similarity, in the policy's space, from which a row counts as a near-copy of a policy string


@dataclass(frozen=True)
class Metrics:
    """Blocked = action "block". Redact and flag are counted apart: they are not refusals."""

    name: str
    rows: int
    frr: Interval  # safe rows blocked / safe rows
    catch: Interval  # unsafe rows blocked / unsafe rows
    precision: Interval  # unsafe blocked / all blocked
    f1: Estimate
    redacted: dict[str, int]  # {"safe": n, "unsafe": n}
    flagged: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "false_refusal": self.frr.to_dict(),
                "catch": self.catch.to_dict(), "precision": self.precision.to_dict(), "f1": self.f1.to_dict(),
                "redacted": self.redacted, "flagged": self.flagged}


def metrics(name: str, results: Sequence[RowResult]) -> Metrics:
    safe = [r for r in results if not r.row.unsafe]
    unsafe = [r for r in results if r.row.unsafe]
    fr = sum(r.blocked for r in safe)
    tp = sum(r.blocked for r in unsafe)
    count = lambda rs, a: sum(r.action == a for r in rs)  # noqa: E731
    return Metrics(
        name=name, rows=len(results), frr=wilson(fr, len(safe)), catch=wilson(tp, len(unsafe)),
        precision=wilson(tp, tp + fr),
        f1=f1_bootstrap([r.row.unsafe for r in results], [r.blocked for r in results]) if unsafe else Estimate(None, None, None),
        redacted={"safe": count(safe, "redact"), "unsafe": count(unsafe, "redact")},
        flagged={"safe": count(safe, "flag"), "unsafe": count(unsafe, "flag")})


@dataclass
class RuleStats:
    rule: str
    source: str
    false_refusals: int = 0  # safe rows this rule blocked (it won the decision)
    catches: int = 0  # unsafe rows this rule blocked
    also_fired_safe: int = 0  # safe rows blocked by another rule on which this one fired too
    also_fired_unsafe: int = 0
    redacted: dict[str, int] = field(default_factory=lambda: {"safe": 0, "unsafe": 0})
    flagged: dict[str, int] = field(default_factory=lambda: {"safe": 0, "unsafe": 0})

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CategoryStats:
    category: str
    frr: Interval
    catch: Interval

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "false_refusal": self.frr.to_dict(), "catch": self.catch.to_dict()}


def severity_of_error(d: Decision) -> float:
    """How confidently wrong a block is: regex/word/context evidence is certain (1.0); similarity counts by how far
    its score clears the threshold. Used to list the worst false refusals first."""
    if not d.reasons:
        return 0.5
    sims = [ev for ev in d.reasons[0].evidence if isinstance(ev, (SimilarityEvidence, ClassifierEvidence))]
    return max(0.5 + ev.score - ev.threshold for ev in sims) if sims else 1.0


def closeness_of_miss(d: Decision) -> float:
    """How close an unblocked row came to a block: the best near miss's score minus its threshold (negative), or
    -inf when no rule came near. Misses are listed lowest first."""
    return max((nm.score - nm.threshold for nm in d.near_misses), default=float("-inf"))


@dataclass
class ScoreReport:
    policy: str
    digest: str
    model: str | None
    thresholds: dict[str, float]
    files: list[Metrics]
    overall: Metrics
    rules: list[RuleStats]
    categories: list[CategoryStats]
    results: list[RowResult]
    worst: int = 10
    near_copies: list["NearCopy"] = field(default_factory=list)
    near_copy: float = NEAR_COPY  # the similarity from which a row counts as a near-copy
    misses_shown: int = 10  # `score --misses N`: how many misses are listed with their explanations

    @property
    def false_refusals(self) -> list[RowResult]:
        frs = [r for r in self.results if r.blocked and not r.row.unsafe]
        return sorted(frs, key=lambda r: -severity_of_error(r.decision))

    @property
    def misses(self) -> list[RowResult]:
        """Unsafe rows that were not blocked, worst first: the furthest from being blocked (no rule came near,
        then the lowest near-miss score relative to its threshold), so the listing starts with what the policy
        does not see at all."""
        ms = [r for r in self.results if r.row.unsafe and not r.blocked]
        return sorted(ms, key=lambda r: closeness_of_miss(r.decision))

    # -- output ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def row(r: RowResult) -> dict[str, Any]:
            return {"id": r.row.id, "file": r.row.file, "line": r.row.line, "label": r.row.label,
                    "category": r.row.category, "text": r.row.text, "action": r.action, "rule": r.decision.rule,
                    "decision": json.loads(r.decision.to_json())}

        return {"policy": self.policy, "digest": self.digest, "model": self.model, "thresholds": self.thresholds,
                "files": [m.to_dict() for m in self.files], "overall": self.overall.to_dict(),
                "rules": [r.to_dict() for r in self.rules], "categories": [c.to_dict() for c in self.categories],
                "worst_false_refusals": [row(r) for r in self.false_refusals[:self.worst]],
                "misses_count": len(self.misses),
                "misses": [row(r) for r in self.misses[:self.misses_shown]],
                "near_copies": {"threshold": self.near_copy, "count": len(self.near_copies),
                                "rows": [c.to_dict() for c in self.near_copies[:self.worst]]}}

    def render_text(self, explain: bool = True) -> str:
        out = [f"policy {self.policy} ({self.digest[:19]}), model {self.model or '(none: no concepts)'}", ""]
        out += metrics_table([*self.files, self.overall] if len(self.files) > 1 else self.files)
        out.append("")
        rf = [m for m in [*self.files] if any(m.redacted.values()) or any(m.flagged.values())]
        if rf:
            out.append("redact / flag (counted apart, not refusals):")
            for m in rf:
                out.append(f"  {m.name}: redacted safe {m.redacted['safe']}, unsafe {m.redacted['unsafe']}; "
                           f"flagged safe {m.flagged['safe']}, unsafe {m.flagged['unsafe']}")
            out.append("")
        out.append("per rule (the rule that decided; 'also fired' = fired on rows another rule blocked):")
        w = max([len(r.rule) for r in self.rules] + [4])
        out.append(f"  {'rule':{w}}  {'false refusals':>14}  {'catches':>7}  {'also fired safe/unsafe':>22}  "
                   f"{'redact s/u':>10}  {'flag s/u':>8}  source")
        for r in self.rules:
            out.append(f"  {r.rule:{w}}  {r.false_refusals:>14}  {r.catches:>7}  "
                       f"{f'{r.also_fired_safe}/{r.also_fired_unsafe}':>22}  "
                       f"{str(r.redacted['safe']) + '/' + str(r.redacted['unsafe']):>10}  "
                       f"{str(r.flagged['safe']) + '/' + str(r.flagged['unsafe']):>8}  {r.source}")
        if self.categories:
            out += ["", "per category:"]
            w = max([len(c.category) for c in self.categories] + [8])
            out.append(f"  {'category':{w}}  {'false refusals':>30}  {'catch':>30}")
            for c in self.categories:
                out.append(f"  {c.category:{w}}  {c.frr.pct():>30}  {c.catch.pct():>30}")
        frs = self.false_refusals
        if frs:
            out += ["", f"worst false refusals ({min(len(frs), self.worst)} of {len(frs)}):"]
            for r in frs[:self.worst]:
                out.append(f"  [{r.row.id}] {r.row.file}:{r.row.line} {_short(r.row.text)}")
                if explain:
                    out += ["      " + ln for ln in r.decision.explain().splitlines()]
        ms = self.misses
        if ms and self.misses_shown:
            out += ["", f"worst misses: unsafe rows not blocked, furthest from a block first "
                        f"({min(len(ms), self.misses_shown)} of {len(ms)}):"]
            for r in ms[:self.misses_shown]:
                out.append(f"  [{r.row.id}] {r.row.file}:{r.row.line} {_short(r.row.text)}")
                if explain:
                    out += ["      " + ln for ln in r.decision.explain().splitlines()]
                    if not r.decision.near_misses:
                        out.append("      no rule came near (no near miss)")
        if self.near_copies:
            n = len(self.near_copies)
            trained = sum(c.kind == "training row" for c in self.near_copies)
            out += ["", f"near-copies: {n} of {len(self.results)} rows are at similarity >= {self.near_copy:g} to an "
                        "example, counter-example or training row of the policy; the figures on them show what the "
                        f"policy was written or trained from, not how it generalises ({min(n, self.worst)} of {n}):"]
            if trained:
                out.insert(len(out) - 1, f"warning: {trained} evaluated rows are (near-)copies of a trained concept's "
                                         "training rows: leave their file out of training to measure them "
                                         "(docs/measuring.md)")
            for c in self.near_copies[:self.worst]:
                r = c.result
                what = {"example": "an example", "counter": "a counter-example"}.get(
                    c.kind, f"training row {c.row_id}")
                out.append(f"  [{r.row.id}] {r.row.file}:{r.row.line} {c.similarity:.3f} to {what} of {c.concept}: "
                           f"{_short(r.row.text, 100)}")
        return "\n".join(out)


@dataclass(frozen=True)
class NearCopy:
    result: RowResult
    concept: str
    kind: str  # "example", "counter" or (a trained concept) "training row"
    similarity: float
    row_id: str | None = None  # the training row it copies

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.result.row.id, "file": self.result.row.file, "line": self.result.row.line,
               "concept": self.concept, "kind": self.kind, "similarity": round(self.similarity, 4)}
        if self.row_id is not None:
            out["training_row"] = self.row_id
        return out


def near_copies(results: Sequence[RowResult], threshold: float = NEAR_COPY) -> list[NearCopy]:
    """Rows whose input is at similarity >= threshold to an example or counter-example of a concept, most similar
    first. It reads the threshold-free concept scores the run already has (no embedding): per concept, the chunk
    the score is reported on (see engine.ConceptScore), its nearest example and its nearest counter-example."""
    out = []
    for r in results:
        best: tuple[float, str, str, str | None] | None = None
        for concept, sc in r.scores.items():
            if sc.row_similarity is not None:  # a trained concept: its score is a probability, not a similarity
                pairs = (("training row", sc.row_similarity, sc.row_id),)
            else:
                pairs = (("example", sc.score, None), ("counter", sc.counter_score, None))
            for kind, sim, row_id in pairs:
                if sim is not None and sim >= threshold and (best is None or sim > best[0]):
                    best = (sim, concept, kind, row_id)
        if best is not None:
            out.append(NearCopy(r, best[1], best[2], best[0], best[3]))
    return sorted(out, key=lambda c: -c.similarity)


def metrics_table(ms: Sequence[Metrics]) -> list[str]:
    w = max([len(m.name) for m in ms] + [4])
    lines = [f"{'file':{w}}  {'rows':>5}  {'false refusals (safe blocked)':>30}  {'catch (unsafe blocked)':>30}  "
             f"{'precision':>30}  {'F1':>22}"]
    for m in ms:
        lines.append(f"{m.name:{w}}  {m.rows:>5}  {m.frr.pct():>30}  {m.catch.pct():>30}  {m.precision.pct():>30}  "
                     f"{m.f1.pct():>22}")
    return lines


def _short(text: str, n: int = 140) -> str:
    t = " ".join(text.split())
    return repr(t if len(t) <= n else t[:n - 1] + "…")


def build_report(engine: Any, by_file: dict[str, list[RowResult]], worst: int = 10,
                 near_copy: float = NEAR_COPY, misses: int = 10) -> ScoreReport:
    policy = engine.policy
    results = [r for rs in by_file.values() for r in rs]
    files = [metrics(name, rs) for name, rs in by_file.items()]
    overall = metrics("overall", results)
    rules: dict[str, RuleStats] = {r.name: RuleStats(r.name, str(r.span)) for r in policy.rules}
    for res in results:
        d, lab = res.decision, res.row.label
        winner = d.rule if d.rule is not None else DEFAULT_RULE
        if winner not in rules:
            rules[winner] = RuleStats(winner, "-")
        if d.action == "block":
            if res.row.unsafe:
                rules[winner].catches += 1
            else:
                rules[winner].false_refusals += 1
            for reason in d.reasons:
                if reason.rule != d.rule and reason.action == "block":
                    if res.row.unsafe:
                        rules[reason.rule].also_fired_unsafe += 1
                    else:
                        rules[reason.rule].also_fired_safe += 1
        for reason in d.reasons:
            if reason.action == "redact":
                rules[reason.rule].redacted[lab] += 1
            elif reason.action == "flag":
                rules[reason.rule].flagged[lab] += 1
    active = [r for r in rules.values() if r.false_refusals or r.catches or r.also_fired_safe or r.also_fired_unsafe
              or any(r.redacted.values()) or any(r.flagged.values())]
    active.sort(key=lambda r: (-r.false_refusals, -r.catches, r.rule))
    cats: dict[str, list[RowResult]] = defaultdict(list)
    for res in results:
        if res.row.category is not None:
            cats[res.row.category].append(res)
    categories = []
    for name, rs in sorted(cats.items()):
        safe = [r for r in rs if not r.row.unsafe]
        unsafe = [r for r in rs if r.row.unsafe]
        categories.append(CategoryStats(name, wilson(sum(r.blocked for r in safe), len(safe)),
                                        wilson(sum(r.blocked for r in unsafe), len(unsafe))))
    thresholds = {c: policy.concepts[c].threshold for c in sorted(policy.used_concepts) if c in policy.concepts}
    return ScoreReport(policy.entry, policy.digest, policy.model if policy.used_concepts else None, thresholds,
                       files, overall, active, categories, results, worst, near_copies(results, near_copy), near_copy,
                       misses_shown=misses)
