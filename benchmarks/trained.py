"""Trained concepts (issue 22): what they add to evaluation, and what training the pack's heads costs.

1. Overhead: the default pack as shipped vs the same pack with its trained concepts taken out (a temporary copy in
   which every `and input similar <trained concept>` condition and every trained concept block is removed), on the
   same messages, one engine each in this process, runs interleaved. Embeddings are computed once per message and
   shared (both engines embed the same chunks), so the ratio isolates what the classifiers and their explanations
   add. Reported: the median of the per-run ratios of the messages/s.
2. Training: a cold $POLICYENGINE_CACHE, the time to build every trained concept's head (row embedding included);
   then the same with the row store warm (weights retrained).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from .common import median
from .corpus import sentences

ROOT = Path(__file__).resolve().parents[1]


def _untrained_copy(dst: Path) -> Path:
    """The pack without its trained concepts (and without the conditions that use them)."""
    from policyengine.compiler import compile_policy

    policy = compile_policy(ROOT / "policies" / "default.policy")
    trained = [c for c, spec in policy.concepts.items() if spec.trained]
    shutil.copytree(ROOT / "policies", dst / "policies")
    for path in (dst / "policies").glob("*.policy"):
        text = path.read_text(encoding="utf-8")
        for name in trained:
            text = re.sub(rf"\(([^()]*)\) and input similar {name}\b", r"\1", text)
            text = re.sub(rf" and input similar {name}\b", "", text)
            text = re.sub(rf"(?ms)^concept {name} \{{.*?^\}}\n", "", text)
        path.write_text(text, encoding="utf-8")
    return dst / "policies" / "default.policy"


def overhead(n_messages: int = 1000, runs: int = 5) -> dict:
    from policyengine.engine import Engine
    from policyengine.measure.runner import CachingEmbedder

    pool = sentences()
    msgs = pool[::max(1, len(pool) // n_messages)][:n_messages]
    with tempfile.TemporaryDirectory() as tmp:
        plain_path = _untrained_copy(Path(tmp))
        shipped = Engine.from_path(ROOT / "policies" / "default.policy")
        shared = CachingEmbedder(shipped.policy.model, inner=shipped._embedder)
        engines = {"shipped": Engine.from_path(ROOT / "policies" / "default.policy", embedder=shared),
                   "without_trained": Engine.from_path(plain_path, embedder=shared)}
    for e in engines.values():  # embed every chunk once, outside the timed loops
        e.evaluate_many(msgs)
    rates: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(runs):
        for name, e in engines.items():
            t0 = time.perf_counter()
            for m in msgs:
                e.evaluate(input=m)
            rates[name].append(len(msgs) / (time.perf_counter() - t0))
    ratios = [a / b for a, b in zip(rates["shipped"], rates["without_trained"])]
    return {"messages": len(msgs), "runs": runs,
            "msgs_per_s": {k: round(median(v), 1) for k, v in rates.items()},
            "shipped_over_without": round(median(ratios), 3),
            "added_time_pct": round(100 * (1 / median(ratios) - 1), 1)}


def training() -> dict:
    from policyengine.compiler import compile_policy
    from policyengine.engine import policy_embedder
    from policyengine.matchers.similarity import ConceptIndex

    policy = compile_policy(ROOT / "policies" / "default.policy")
    trained = {k: c for k, c in policy.concepts.items() if c.trained}
    embedder = policy_embedder(policy)
    embedder.encode(["warm-up"])
    out = {"concepts": len(trained), "rows": sum(len(c.training) + len(c.examples) + len(c.counter)
                                                  for c in trained.values())}
    old = os.environ.get("POLICYENGINE_CACHE")
    try:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["POLICYENGINE_CACHE"] = cache
            for label in ("cold_s", "rows_cached_s"):
                if label == "rows_cached_s":
                    for f in Path(cache).rglob("head-*.npz"):
                        f.unlink()
                index = ConceptIndex.__new__(ConceptIndex)
                index.space_map, index.space_info = None, {}
                t0 = time.perf_counter()
                index._build_heads(trained, embedder)
                out[label] = round(time.perf_counter() - t0, 2)
    finally:
        if old is None:
            os.environ.pop("POLICYENGINE_CACHE", None)
        else:
            os.environ["POLICYENGINE_CACHE"] = old
    return out


def run(quick: bool = False) -> dict:
    return {"overhead": overhead(300 if quick else 1000, 3 if quick else 5), "training": training()}


if __name__ == "__main__":
    import json

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(json.dumps(run(), indent=2))
