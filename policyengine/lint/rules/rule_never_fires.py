"""rule-never-fires: a rule whose condition is contradictory, or that is always overridden by an `allow`
rule whose condition it implies."""

from __future__ import annotations

from typing import Iterable

from ... import nodes as n
from ..logic import implies, never
from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("rule-never-fires", "correctness", "error",
                "Rule that can never take effect: contradictory condition, or always overridden")


def check(ctx: LintContext) -> Iterable[Finding]:
    rules = ctx.rules()
    for name, (_, r) in rules.items():
        if r.when is None:
            continue
        if never(r.when):
            yield ctx.finding(RULE, r.when.span, f"the condition of rule '{name}' can never be true",
                              help="it requires an attribute to be two things at once, or a test and its negation")
            continue
        if r.mode == "shadow" or r.action is None or r.action.kind == "allow":
            continue
        for other, (_, a) in rules.items():
            if other == name or a.action is None or a.action.kind != "allow" or a.mode == "shadow":
                continue
            if name in {t.value for t in a.action.targets} and implies(r.when, a.when):
                yield ctx.finding(RULE, r.name.span, f"rule '{name}' never takes effect: whenever it matches, "
                                  f"'{other}' (line {a.span.line}) matches too and overrides it",
                                  help=f"narrow the condition of '{other}' or drop '{name}' from its overrides")
                break
