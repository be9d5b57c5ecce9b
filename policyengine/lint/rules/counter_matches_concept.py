"""counter-matches-concept: a counter-example that its own concept would match if it were not listed itself
(leave-one-out), sitting so close to an example that the two cancel out: texts between them get opposite labels
by a hair, so either the counter-example is not really allowed or the example is too close to an allowed intent."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("counter-matches-concept", "semantic", "warning",
                "Counter-example that its own concept would match (leave-one-out)", needs_model=True)
CLOSE = 0.75  # a counter-example this similar to an example sits on top of it


def check(ctx: LintContext) -> Iterable[Finding]:
    assert ctx.semantic is not None
    idx = ctx.semantic()
    for c in idx.concepts:
        if c.threshold is None or not c.examples or not c.counter:
            continue
        to_ex = idx.sims(c.counter, c.examples)
        to_ctr = idx.sims(c.counter, c.counter)
        np.fill_diagonal(to_ctr, -np.inf)
        for i, text in enumerate(c.counter):
            j = int(np.argmax(to_ex[i]))
            ex_score = float(to_ex[i, j])
            other = float(np.max(to_ctr[i])) if len(c.counter) > 1 else float("-inf")
            if ex_score >= max(c.threshold, CLOSE) and ex_score > other + c.margin:
                span = c.node.counter[i].span
                yield ctx.finding(RULE, span, f"counter-example {text!r} would itself match concept '{c.name}': "
                                  f"{ex_score:.2f} to example {c.examples[j]!r} (threshold {c.threshold:.2f}), more "
                                  f"than to any other counter-example ({max(other, 0):.2f}); its paraphrases will "
                                  "be blocked", help="add counter-examples of the same kind (the allowed intent "
                                  "phrased several ways), or rephrase the example it sits next to")
