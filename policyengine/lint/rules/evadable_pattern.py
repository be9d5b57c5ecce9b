"""evadable-pattern: a pattern or word list an attacker can slip past with an evasion the policy does not undo."""

from __future__ import annotations

from typing import Iterable

from ... import nodes as n
from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("evadable-pattern", "hygiene", "warning",
                "Pattern or word list evadable by a transform the policy does not enable")


def check(ctx: LintContext) -> Iterable[Finding]:
    from ...normalize import evadable_by

    if ctx.policy is None:
        return
    for _, item in ctx.items((n.PatternDef, n.WordsDef)):
        compiled = ctx.policy.patterns.get(item.name.value)
        if compiled is None or compiled.validator:  # validated patterns (cards, IBANs) are formats, not words
            continue
        if compiled.kind == "words":
            entries = [w.value for w in item.words] if item.words else None
            if not entries:
                continue
            gaps = evadable_by(entries, compiled.normalize, words=True)
        else:
            gaps = evadable_by(compiled.regex, compiled.normalize)
        if not gaps:
            continue
        missing = sorted(gaps)
        example = gaps[missing[0]]
        what = "word list" if compiled.kind == "words" else "pattern"
        yield ctx.finding(RULE, item.name.span,
                          f"{what} '{item.name.value}' can be evaded with {', '.join(missing)} "
                          f"(e.g. {example})",
                          help=f"add `normalize [{', '.join(missing)}]` to it or to the policy header, or "
                          "suppress with a reason if the exact spelling matters")
