"""missing-test: a rule that no test expects by name, or a concept that no tested rule uses."""

from __future__ import annotations

from typing import Iterable

from ... import nodes as n
from ...compiler import walk
from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("missing-test", "hygiene", "warning", "Rule or concept without a test that exercises it")


def check(ctx: LintContext) -> Iterable[Finding]:
    tested = set(ctx.extra_tested_rules)
    for _, t in ctx.items(n.TestDef):
        tested.update(b.value for b in t.by)
    exercised: set[str] = set()
    for _, r in ctx.items(n.RuleDef):
        if r.name.value in tested and r.when is not None:
            exercised.update(e.concept.value for e in walk(r.when) if isinstance(e, n.Similar))
    for _, r in ctx.items(n.RuleDef):
        if r.name.value not in tested:
            yield ctx.finding(RULE, r.name.span, f"no test expects rule '{r.name.value}'",
                              help=f'add `test "..." {{ input "..." expect {r.action.kind if r.action else "block"} '
                              f'by {r.name.value} }}` or a case with `by: {r.name.value}` in a .cases.yaml file')
    for _, c in ctx.items(n.ConceptDef):
        if c.name.value not in exercised:
            yield ctx.finding(RULE, c.name.span, f"concept '{c.name.value}' is not exercised by any test",
                              help="add a test that expects a rule using this concept")
