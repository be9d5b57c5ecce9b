"""regex-matches-empty: a pattern that can match the empty string (or only the empty string)."""

from __future__ import annotations

from typing import Iterable

from ... import nodes as n
from ..regex_tools import min_max_width
from ..rule import Finding, LintContext, RuleInfo, regex_token_offset, span_at

RULE = RuleInfo("regex-matches-empty", "regex", "warning", "Pattern that matches the empty string")


def check(ctx: LintContext) -> Iterable[Finding]:
    for f, p in ctx.items(n.PatternDef):
        w = min_max_width(p.regex, p.flags)
        if w is None or w[0] > 0:
            continue
        span = span_at(f, regex_token_offset(f, p), len(p.regex) + 2)
        if w[1] == 0:
            yield ctx.finding(RULE, span, f"pattern '{p.name.value}' can only match the empty string, and empty "
                              "matches are ignored: it never matches", help="match at least one character")
        else:
            yield ctx.finding(RULE, span, f"pattern '{p.name.value}' can match the empty string (an optional or "
                              "starred whole, or an empty alternative such as a stray '|')",
                              help="empty matches are ignored, so this usually hides a mistake; make the core of "
                              "the pattern mandatory (`+` instead of `*`, no trailing `|`)")
