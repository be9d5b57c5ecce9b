"""duplicate-example: the same (or nearly the same) example twice in a concept, or one text that is both an
example and a counter-example."""

from __future__ import annotations

import difflib
import re
from typing import Iterable

from ... import nodes as n
from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("duplicate-example", "correctness", "warning",
                "Duplicate or near-duplicate examples, or a text that is both example and counter-example")
NEAR = 0.92  # difflib ratio on normalised text


def norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def check(ctx: LintContext) -> Iterable[Finding]:
    for _, c in ctx.items(n.ConceptDef):
        ex = {norm(t.value): t for t in reversed(c.examples)}  # first occurrence wins
        for t in c.counter:
            if norm(t.value) in ex:
                first = ex[norm(t.value)]
                yield ctx.finding(RULE, t.span, f"{t.value!r} is both an example (line {first.span.line}) and a "
                                  f"counter-example of concept '{c.name.value}'",
                                  help="decide which side it belongs to and delete the other")
        for label, texts in (("example", c.examples), ("counter-example", c.counter)):
            seen: list[tuple[str, n.Text]] = []
            for t in texts:
                key = norm(t.value)
                for other_key, other in seen:
                    if key == other_key:
                        yield ctx.finding(RULE, t.span, f"duplicate {label} of concept '{c.name.value}' "
                                          f"(same as line {other.span.line})", help="delete one of them")
                        break
                    m = difflib.SequenceMatcher(None, key, other_key, autojunk=False)
                    if m.real_quick_ratio() >= NEAR and m.quick_ratio() >= NEAR and m.ratio() >= NEAR:
                        yield ctx.finding(RULE, t.span, f"near-duplicate {label} of concept '{c.name.value}': "
                                          f"{m.ratio():.2f} like line {other.span.line} ({other.value!r})",
                                          help="near copies add no coverage; replace it with a different phrasing "
                                          "or a different case of the concept")
                        break
                seen.append((key, t))
