"""3. End to end on the default pack: single evaluate() calls, messages/s and p50/p99 latency."""

from __future__ import annotations

import time

from .common import median, percentile
from .corpus import sentences

DEFAULT = "policies/default.policy"


def run(n_messages: int = 2000, runs: int = 1, embedding_cache: int = 0) -> dict:
    from policyengine.engine import Engine

    pool = sentences()
    msgs = pool[::max(1, len(pool) // n_messages)][:n_messages]
    engine = Engine.from_path(DEFAULT, embedding_cache=embedding_cache)
    engine.evaluate(input="warm-up message")
    totals, lat = [], []
    skipped = 0
    for _ in range(runs):
        t_run = time.perf_counter()
        for m in msgs:
            t0 = time.perf_counter()
            engine.evaluate(input=m)
            lat.append(time.perf_counter() - t0)
        totals.append(time.perf_counter() - t_run)
    # how many messages needed no embedding at all (every rule decided by cheap conditions)
    for m in msgs[:300]:
        views, ctx, _ = engine._prepare(m, None, None)
        skipped += not engine._evaluator.needs_concepts(views, ctx)
    return {"messages": len(msgs), "runs": runs, "msgs_per_s": round(len(msgs) / median(totals), 1),
            "p50_ms": round(percentile(lat, 50) * 1000, 2), "p99_ms": round(percentile(lat, 99) * 1000, 2),
            "mean_chars": round(sum(map(len, msgs)) / len(msgs), 1),
            "share_without_model_of_first_300": round(skipped / min(300, len(msgs)), 3),
            "embedding_cache": embedding_cache, "threads": engine.threads}
