"""override-never-applies: `allow overrides R` that can never suppress R."""

from __future__ import annotations

from typing import Iterable

from ...diagnostics import did_you_mean
from ..logic import can_cofire
from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("override-never-applies", "correctness", "error",
                "`overrides` names a rule that does not exist, is itself, or can never match at the same time",
                covers=("E0409", "E0410"))


def check(ctx: LintContext) -> Iterable[Finding]:
    rules = ctx.rules()
    for name, (_, a) in rules.items():
        if a.action is None or a.action.kind != "allow":
            continue
        for t in a.action.targets:
            target = rules.get(t.value)
            if target is None:
                yield ctx.finding(RULE, t.span, f"'{t.value}' in the overrides of '{name}' is not a rule",
                                  help=did_you_mean(t.value, rules) or "name a rule defined in this policy")
            elif t.value == name:
                yield ctx.finding(RULE, t.span, f"rule '{name}' overrides itself", help="remove it from the list")
            elif a.mode == "shadow":
                yield ctx.finding(RULE, t.span, f"'{name}' is in shadow mode, so its overrides never apply",
                                  help="shadow rules are set aside before overrides are applied")
            elif target[1].mode == "shadow":
                yield ctx.finding(RULE, t.span, f"'{t.value}' is in shadow mode: it is set aside before overrides "
                                  "apply, so overriding it does nothing", help=f"remove '{t.value}' from the list")
            elif target[1].action is not None and target[1].action.kind == "allow":
                yield ctx.finding(RULE, t.span, f"'{t.value}' is itself an allow rule: overriding it changes nothing",
                                  help=f"remove '{t.value}' from the list")
            elif not can_cofire(a.when, target[1].when):
                yield ctx.finding(RULE, t.span, f"'{name}' and '{t.value}' can never match the same message, so "
                                  "this override never applies",
                                  help="their conditions contradict each other; check the context comparisons")
