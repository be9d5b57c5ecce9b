"""concept-too-narrow: a concept with too few examples, or examples so alike that they cover one phrasing."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("concept-too-narrow", "semantic", "warning",
                "Concept whose examples are too few or too alike to generalise", needs_model=True)
MIN_EXAMPLES = 3
MAX_MEAN_SIMILARITY = 0.85


def check(ctx: LintContext) -> Iterable[Finding]:
    assert ctx.semantic is not None
    idx = ctx.semantic()
    for c in idx.concepts:
        if not c.examples:
            continue
        if len(c.examples) < MIN_EXAMPLES:
            yield ctx.finding(RULE, c.node.name.span, f"concept '{c.name}' has {len(c.examples)} example"
                              f"{'s' if len(c.examples) != 1 else ''}: too few to generalise",
                              help=f"give at least {MIN_EXAMPLES} examples that say the same thing in different "
                              "words, contexts and lengths")
            continue
        sims = idx.sims(c.examples, c.examples)
        k = len(c.examples)
        mean = float((sims.sum() - np.trace(sims)) / (k * (k - 1)))
        if mean > MAX_MEAN_SIMILARITY:
            yield ctx.finding(RULE, c.node.name.span, f"the examples of concept '{c.name}' are too alike (mean "
                              f"similarity {mean:.2f} > {MAX_MEAN_SIMILARITY}): they cover one phrasing",
                              help="vary them: other words, other framings, short and long requests")
