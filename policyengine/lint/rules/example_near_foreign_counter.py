"""example-near-foreign-counter: an example closer to another concept's counter-examples than to its own
sibling examples: the two concepts disagree about where the line is."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("example-near-foreign-counter", "semantic", "warning",
                "Example closer to another concept's counter-examples than to its own siblings", needs_model=True)
FLOOR = 0.6  # only report when the foreign counter-example is genuinely close


def check(ctx: LintContext) -> Iterable[Finding]:
    assert ctx.semantic is not None
    idx = ctx.semantic()
    for c in idx.concepts:
        if len(c.examples) < 2:
            continue
        own = idx.sims(c.examples, c.examples)
        np.fill_diagonal(own, -np.inf)
        own_best = own.max(axis=1)
        best: dict[int, tuple[float, str, str]] = {}  # example -> (score, foreign counter, its concept)
        for d in idx.concepts:
            if d.name == c.name or not d.counter:
                continue
            foreign = idx.sims(c.examples, d.counter)
            for i in range(len(c.examples)):
                j = int(np.argmax(foreign[i]))
                if float(foreign[i, j]) > best.get(i, (-1.0, "", ""))[0]:
                    best[i] = (float(foreign[i, j]), d.counter[j], d.name)
        for i, text in enumerate(c.examples):
            if i in best:
                score, counter, dname = best[i]
                if score >= FLOOR and score > float(own_best[i]):
                    yield ctx.finding(RULE, c.node.examples[i].span,
                                      f"example {text!r} of '{c.name}' is closer to counter-example {counter!r} "
                                      f"of '{dname}' ({score:.2f}) than to any of its own examples "
                                      f"({float(own_best[i]):.2f})",
                                      help=f"decide whether this text should be blocked; if so, remove the look-alike "
                                      f"from '{dname}'s counter-examples, else drop the example")
