"""regex-bare-substring: a literal word in a pattern without word boundaries, which also matches inside longer
ordinary words (the "Scunthorpe problem": `ass` inside "class")."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Iterable

from ... import nodes as n
from ..regex_tools import literal_text, parse, top_branches
from ..rule import Finding, LintContext, RuleInfo, regex_token_offset, span_at

RULE = RuleInfo("regex-bare-substring", "regex", "warning",
                "Unanchored literal that matches inside ordinary words (Scunthorpe problem)")


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """Ordinary words: the shipped word list plus every word of the benign corpus."""
    data = resources.files("policyengine.lint").joinpath("data")
    words: set[str] = set()
    for name in ("words.txt", "benign.txt"):
        for line in data.joinpath(name).read_text(encoding="utf-8").splitlines():
            if not line.lstrip().startswith("#"):
                words.update(w.lower() for w in re.findall(r"[A-Za-z]+", line))
    return frozenset(words)


def hits(literal: str, left_open: bool, right_open: bool, vocab: Iterable[str], ignore_case: bool) -> list[str]:
    needle = literal.lower() if ignore_case else literal
    out = []
    for w in sorted(vocab):
        hay = w if ignore_case else w
        i = hay.find(needle)
        while i >= 0:
            if (left_open and i > 0) or (right_open and i + len(needle) < len(hay)):
                out.append(w)
                break
            i = hay.find(needle, i + 1)
    return out


def check(ctx: LintContext) -> Iterable[Finding]:
    vocab = set(vocabulary())
    for _, c in ctx.items(n.ConceptDef):  # the policy's own texts are ordinary words too
        for t in (*c.examples, *c.counter):
            vocab.update(w.lower() for w in re.findall(r"[A-Za-z]+", t.value))
    for f, p in ctx.items(n.PatternDef):
        tree = parse(p.regex, p.flags)
        if tree is None:
            continue
        left, branches, right = top_branches(tree)
        if left and right:
            continue
        for b in branches:
            lit = literal_text(b)
            if not lit or not re.fullmatch(r"[A-Za-z]+", lit) or len(lit) > 12:
                continue
            found = hits(lit, not left, not right, vocab, "i" in p.flags)
            if not found:
                continue
            off = p.regex.find(lit)
            span = span_at(f, regex_token_offset(f, p) + 1 + max(off, 0), len(lit))
            shown = ", ".join(repr(w) for w in found[:3])
            yield ctx.finding(RULE, span, f"'{lit}' in pattern '{p.name.value}' has no word boundary and also "
                              f"matches inside {shown}", width=len(lit),
                              help=f"write \\b{lit}\\b (or use a `words` list, which only matches whole words)")
