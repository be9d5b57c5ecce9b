"""regex-slow-path: a pattern that cannot join the one-pass regex engine and runs on its own on every text."""

from __future__ import annotations

from typing import Iterable

from ... import nodes as n
from ..rule import Finding, LintContext, RuleInfo, regex_token_offset, span_at

RULE = RuleInfo("regex-slow-path", "regex", "warning", "Pattern that falls back from the one-pass regex engine")


def check(ctx: LintContext) -> Iterable[Finding]:
    from ...matchers.multiregex import cached_pattern_set, hyperscan_available

    if ctx.policy is None or not ctx.policy.patterns or not hyperscan_available():
        return
    ps = cached_pattern_set({k: p.regex for k, p in ctx.policy.patterns.items()}, "auto")
    reasons = {f.name: f.reason for f in ps.fallbacks}
    for f, p in ctx.items(n.PatternDef):
        why = reasons.get(p.name.value)
        if why is None:
            continue
        span = span_at(f, regex_token_offset(f, p), len(p.regex) + 2)
        yield ctx.finding(RULE, span, f"pattern '{p.name.value}' runs on its own on every text, outside the "
                          f"one-pass regex engine: {why}",
                          help="rewrite without backreferences, conditionals or (?a); e.g. list the repeated "
                          "alternatives explicitly instead of `(x)\\1`")
