"""unused-block: a pattern, word list or concept that no rule uses."""

from __future__ import annotations

from typing import Iterable

from ... import nodes as n
from ...compiler import walk
from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("unused-block", "correctness", "warning", "Pattern, word list or concept that no rule uses")


def used_names(ctx: LintContext) -> set[str]:
    used: set[str] = set()
    for _, r in ctx.items(n.RuleDef):
        for e in walk(r.when) if r.when is not None else ():
            if isinstance(e, n.Matches):
                used.add(e.pattern.value)
            elif isinstance(e, n.Contains):
                used.add(e.words.value)
            elif isinstance(e, n.Similar):
                used.add(e.concept.value)
        if r.action is not None and r.action.kind == "redact":
            used.update(t.value for t in r.action.targets)
    return used


def check(ctx: LintContext) -> Iterable[Finding]:
    used = used_names(ctx)
    kinds = {n.PatternDef: "pattern", n.WordsDef: "word list", n.ConceptDef: "concept"}
    for _, b in ctx.items((n.PatternDef, n.WordsDef, n.ConceptDef)):
        if b.name.value not in used:
            yield ctx.finding(RULE, b.name.span, f"{kinds[type(b)]} '{b.name.value}' is never used by a rule",
                              help="use it in a rule's `when` (or as a redact target), or delete it")
