"""compile-error: the policy does not parse or compile. The runner turns every compiler diagnostic that no
other rule reports itself into a finding of this rule."""

from __future__ import annotations

from typing import Iterable

from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("compile-error", "correctness", "error", "The policy does not parse or compile")


def check(ctx: LintContext) -> Iterable[Finding]:
    return ()  # reported by the runner from the compiler's diagnostics
