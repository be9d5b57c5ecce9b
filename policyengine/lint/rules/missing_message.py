"""missing-message: a blocking rule with no message for the end user."""

from __future__ import annotations

from typing import Iterable

from ... import nodes as n
from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("missing-message", "usability", "warning", "Blocking rule without a user-facing message")


def check(ctx: LintContext) -> Iterable[Finding]:
    for _, r in ctx.items(n.RuleDef):
        if r.action is not None and r.action.kind == "block" and r.action.message is None:
            yield ctx.finding(RULE, r.action.span, f"rule '{r.name.value}' blocks without telling the user why",
                              help='add a message: block "I can\'t help with that, but I can ..."', width=5)
