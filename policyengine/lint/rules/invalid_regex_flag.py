"""invalid-regex-flag: unknown or repeated flags, and `x` (verbose) on a pattern whose spaces or '#' would
silently stop counting."""

from __future__ import annotations

import re
from typing import Iterable

from ... import nodes as n
from ...compiler import REGEX_FLAGS
from ..rule import Finding, LintContext, RuleInfo, regex_token_offset, span_at

RULE = RuleInfo("invalid-regex-flag", "regex", "error", "Unknown, repeated or meaning-changing regex flag",
                covers=("E0301",))


def check(ctx: LintContext) -> Iterable[Finding]:
    for f, p in ctx.items(n.PatternDef):
        base = regex_token_offset(f, p) + len(p.regex) + 2
        seen: set[str] = set()
        for i, ch in enumerate(p.flags):
            span = span_at(f, base + i)
            if ch not in REGEX_FLAGS:
                yield ctx.finding(RULE, span, f"unknown regex flag {ch!r} in pattern '{p.name.value}'",
                                  help="flags are i (ignore case), m (multiline), s (dot matches newline), x (verbose)")
            elif ch in seen:
                yield ctx.finding(RULE, span, f"flag {ch!r} is repeated in pattern '{p.name.value}'",
                                  help="write each flag once")
            seen.add(ch)
        if "x" in p.flags and re.search(r"(?<!\\)[ #]", _outside_classes(p.regex)):
            yield ctx.finding(RULE, span_at(f, base + p.flags.index("x")),
                              f"pattern '{p.name.value}' has the x (verbose) flag: its spaces are ignored and '#' "
                              "starts a comment", help="escape them (`\\ `, `\\#`), use \\s, or drop the x flag")


def _outside_classes(regex: str) -> str:
    return re.sub(r"\[(?:\\.|[^\]\\])*\]", "", regex)
