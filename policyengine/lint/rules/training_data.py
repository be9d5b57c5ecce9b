"""training-data: training rows of a trained concept that teach the wrong thing: one label nearly absent, the same
text under both labels, or near-copies (the same words in another order or spelling) on opposite sides."""

from __future__ import annotations

import re
from typing import Iterable

from ... import nodes as n
from ...training import TrainingRow
from ..rule import Finding, LintContext, RuleInfo
from .duplicate_example import norm

RULE = RuleInfo("training-data", "correctness", "warning",
                "Training rows with one label nearly absent, or the same text (or words) under both labels")
#: a label below this share of a concept's training rows (examples and counters included) is reported
MIN_SHARE = 0.10
_WORD = re.compile(r"\w+")


def _words(text: str) -> str:
    return " ".join(sorted(set(_WORD.findall(text.casefold()))))


def _where(r: TrainingRow) -> str:
    return f"{r.id} ({r.file}:{r.line})" if r.line else r.id


def check(ctx: LintContext) -> Iterable[Finding]:
    if ctx.policy is None:
        return
    for _, c in ctx.items(n.ConceptDef):
        spec = ctx.policy.concepts.get(c.name.value)
        if not c.train or spec is None or not spec.trained:
            continue
        name = c.name.value
        clause = {t.path.value: t for t in c.train}
        first = c.train[0]
        rows = [*(TrainingRow(f"example {i + 1}", t.value, True, None, "<policy>", 0) for i, t in enumerate(c.examples)),
                *(TrainingRow(f"counter {i + 1}", t.value, False, None, "<policy>", 0) for i, t in enumerate(c.counter)),
                *spec.training]
        unsafe = sum(r.unsafe for r in rows)
        for label, count in (("unsafe", unsafe), ("safe", len(rows) - unsafe)):
            if rows and count / len(rows) < MIN_SHARE:
                yield ctx.finding(RULE, first.span, f"concept '{name}': only {count} of {len(rows)} training rows "
                                  f"({count / len(rows):.1%}) are {label}",
                                  help=f"add {label} rows (same topics, the other intent), or the classifier learns "
                                       "the topic instead of the boundary")
        by_text: dict[str, list[TrainingRow]] = {}
        by_words: dict[str, list[TrainingRow]] = {}
        for r in rows:
            by_text.setdefault(norm(r.text), []).append(r)
            by_words.setdefault(_words(r.text), []).append(r)
        reported: set[str] = set()
        for key, group in by_text.items():
            sides = {r.unsafe for r in group}
            if len(sides) == 2:
                a = next(r for r in group if r.unsafe)
                b = next(r for r in group if not r.unsafe)
                reported.add(_words(a.text))
                yield ctx.finding(RULE, clause.get(a.file, clause.get(b.file, first)).span,
                                  f"concept '{name}': the same text is labelled unsafe in {_where(a)} and safe in "
                                  f"{_where(b)}: {a.text[:80]!r}",
                                  help="keep one label: a text on both sides teaches nothing and hides which you meant")
        for key, group in by_words.items():
            if key in reported or len({r.unsafe for r in group}) < 2 or len({norm(r.text) for r in group}) < 2:
                continue
            a = next(r for r in group if r.unsafe)
            b = next(r for r in group if not r.unsafe)
            yield ctx.finding(RULE, clause.get(a.file, clause.get(b.file, first)).span,
                              f"concept '{name}': near-copies on opposite sides (the same words): {_where(a)} unsafe "
                              f"{a.text[:60]!r}, {_where(b)} safe {b.text[:60]!r}",
                              help="look-alikes teach the boundary only when their words differ where the intent "
                                   "does; check the labels")
