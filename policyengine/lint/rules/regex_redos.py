"""regex-redos: a pattern that can backtrack catastrophically (ReDoS) on a crafted message."""

from __future__ import annotations

import re
from typing import Iterable

from ... import nodes as n
from ..regex_tools import redos
from ..rule import Finding, LintContext, RuleInfo, regex_token_offset, span_at

RULE = RuleInfo("regex-redos", "regex", "error", "Pattern with catastrophic backtracking (ReDoS)")

# a group closed and then repeated without bound: `(...)+`, `(...)*`, `(...){2,}`
_REPEATED_GROUP = re.compile(r"\)(?:[+*]|\{\d*,\})")


def _construct_offset(regex: str) -> tuple[int, int]:
    """Offset and width of the first repeated group that contains a quantifier (best effort, for the caret)."""
    for m in _REPEATED_GROUP.finditer(regex):
        depth, i = 0, m.start()
        while i >= 0:
            ch = regex[i]
            if ch == ")" and (i == 0 or regex[i - 1] != "\\"):
                depth += 1
            elif ch == "(" and (i == 0 or regex[i - 1] != "\\"):
                depth -= 1
                if depth == 0:
                    body = regex[i:m.start()]
                    if re.search(r"(?<!\\)[+*]|\{\d*,\}|\|", body):
                        return i, m.end() - i
                    break
            i -= 1
    return 0, len(regex)


def check(ctx: LintContext) -> Iterable[Finding]:
    for f, p in ctx.items(n.PatternDef):
        found = redos(p.regex, p.flags)
        if not found:
            continue
        r = found[0]
        off, width = _construct_offset(p.regex)
        span = span_at(f, regex_token_offset(f, p) + 1 + off, width)
        example = f"; e.g. {r.example}" if r.example else ""
        yield ctx.finding(RULE, span, f"pattern '{p.name.value}' can backtrack {r.kind}ly: {r.construct}{example}",
                          help="make the repetition unambiguous: don't nest quantifiers over text the inner part "
                          "can also match, bound the repeat ({1,20}), or make alternatives disjoint", width=width)
