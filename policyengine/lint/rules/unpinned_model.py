"""unpinned-model: the entry policy does not pin its embedding model, yet thresholds are calibrated per model."""

from __future__ import annotations

from typing import Iterable

from ... import nodes as n
from ...compiler import DEFAULT_MODEL
from ...source import Span
from ..rule import Finding, LintContext, RuleInfo

RULE = RuleInfo("unpinned-model", "correctness", "warning", "Policy without a pinned `model`")


def check(ctx: LintContext) -> Iterable[Finding]:
    if ctx.entry.nodes is None or ctx.model_pinned():
        return
    if not ctx.entry.nodes.of(n.ConceptDef) and not any(f.nodes and f.nodes.of(n.ConceptDef) for f in ctx.files):
        return  # no concepts: no thresholds to calibrate
    headers = ctx.entry.nodes.of(n.Header)
    span = headers[0].name.span if headers else Span(ctx.entry.path, 1, 1)
    yield ctx.finding(RULE, span, "the policy does not pin its embedding model; concept thresholds only make sense "
                      "for the model they were tuned with",
                      help=f'add `model "{DEFAULT_MODEL}"` to the `policy {{ }}` header')
