"""Fragile tests: passing cases that stop passing when every concept's threshold and margin moves by ±delta.

A similarity test that passes by a hundredth is a coin toss on the next edit: a concept's examples, the intent map
(trained on every concept at once), the model or a threshold moves and it flips. `policyengine test --fragile
DELTA` re-runs the passing cases twice, with every concept's threshold and margin lowered by DELTA (more matches:
an expected allow may turn into a block) and raised by DELTA (fewer matches: an expected block may turn into an
allow), and names each case whose result changes. Rules, patterns and context are not moved, so a case decided
by them alone is never fragile. The embeddings are the same in the three runs, so the cost is two more decision
passes over the cases.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .cases import Case
from .runner import evaluate_cases


@dataclass(frozen=True)
class Fragile:
    case: Case
    shift: float  # the signed move of every threshold and margin under which the case stops passing
    got: str  # what the case got then, e.g. "block by violent_crimes"


def shifted(policy: Any, delta: float) -> Any:
    """The compiled policy with every concept's threshold and margin moved by `delta`."""
    concepts = {name: dataclasses.replace(spec, threshold=spec.threshold + delta, margin=spec.margin + delta)
                for name, spec in policy.concepts.items()}
    return dataclasses.replace(policy, concepts=concepts)


def fragile_cases(policy: Any, passing: Sequence[Case], delta: float,
                  engine_factory: Callable[[Any], Any]) -> list[Fragile]:
    """The cases of `passing` (cases that pass as written) that fail with every threshold and margin moved by
    -delta or +delta, in the order given. `engine_factory(policy)` builds an engine; share its embedder with the
    run as written so nothing is embedded twice."""
    if delta <= 0 or not passing or not policy.concepts:
        return []
    found: dict[str, Fragile] = {}
    for shift in (-delta, delta):
        engine = engine_factory(shifted(policy, shift))
        for r in evaluate_cases(engine, passing):
            if r.status in ("failed", "error") and r.case.id not in found:
                found[r.case.id] = Fragile(r.case, shift, r.got)
    return [found[c.id] for c in passing if c.id in found]


def describe(f: Fragile) -> str:
    c = f.case
    return (f"FRAGILE {c.location} {c.name!r}: passes as written, but with every threshold and margin "
            f"{f.shift:+.3g} expected {c.want}, got {f.got}")
