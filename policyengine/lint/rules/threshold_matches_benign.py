"""threshold-matches-benign: a concept whose threshold is low enough that ordinary text (the shipped benign
corpus, policyengine/lint/data/benign.txt) matches it."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ... import nodes as n
from ..rule import Finding, LintContext, RuleInfo, keyword_span
from .unused_block import used_names

RULE = RuleInfo("threshold-matches-benign", "semantic", "warning",
                "Concept threshold low enough that ordinary benign text matches", needs_model=True)


def check(ctx: LintContext) -> Iterable[Finding]:
    assert ctx.semantic is not None
    used = used_names(ctx)
    idx = ctx.semantic()
    if not idx.benign:
        return
    for c in idx.concepts:
        if c.threshold is None or not c.examples or c.name not in used:
            continue
        ex = idx.sims(idx.benign, c.examples)
        best_ex = ex.max(axis=1)
        best_ctr = idx.sims(idx.benign, c.counter).max(axis=1) if c.counter else np.full(len(idx.benign), -np.inf)
        hit = (best_ex >= c.threshold) & (best_ex > best_ctr + c.margin)
        if not hit.any():
            continue
        worst = int(np.argmax(np.where(hit, best_ex, -np.inf)))
        near = c.examples[int(np.argmax(ex[worst]))]
        file = ctx.file_of(c.node.span)
        span = keyword_span(file, c.node, "threshold") if file else c.node.name.span
        yield ctx.finding(RULE, span, f"{int(hit.sum())} of {len(idx.benign)} ordinary sentences match concept "
                          f"'{c.name}' at threshold {c.threshold:.2f}, e.g. {idx.benign[worst]!r} "
                          f"({float(best_ex[worst]):.2f} to example {near!r})",
                          help=f"raise the threshold above {float(best_ex[worst]):.2f}, or add counter-examples "
                          "like these sentences")
