"""6. Embedding backends: ONNX Runtime int8 vs torch (same MiniLM weights): speed-up for single sentences and
batches of 32, agreement (cosine of embeddings) and decisions flipped on the shared data with the default pack."""

from __future__ import annotations

import json

from .common import median, timed
from .corpus import SHARED, sentences

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT = "policies/default.policy"


def run(runs: int = 3, n_single: int = 150, n_batch: int = 640, max_rows: int | None = None) -> dict:
    import numpy as np

    from policyengine.engine import Engine
    from policyengine.matchers.embedders import load_embedder
    from policyengine.matchers.onnx_backend import load_onnx_embedder

    torch_e = load_embedder(MODEL, threads=1)
    onnx_e = load_onnx_embedder(MODEL, threads=1)
    pool = sentences()
    single = pool[::max(1, len(pool) // n_single)][:n_single]
    batch = pool[::3][:n_batch]
    torch_e.encode(single[:4])
    onnx_e.encode(single[:4])

    def one_by_one(e) -> None:  # type: ignore[no-untyped-def]
        for s in single:
            e.encode([s])

    def batched(e) -> None:  # type: ignore[no-untyped-def]
        for i in range(0, len(batch), 32):
            e.encode(batch[i:i + 32])

    s_ratio, b_ratio, s_t, s_o, b_t, b_o = [], [], [], [], [], []
    for _ in range(runs):
        t, o = timed(lambda: one_by_one(torch_e)), timed(lambda: one_by_one(onnx_e))
        s_t.append(t), s_o.append(o), s_ratio.append(t / o)
        t, o = timed(lambda: batched(torch_e)), timed(lambda: batched(onnx_e))
        b_t.append(t), b_o.append(o), b_ratio.append(t / o)
    sample = pool[::2][:2000]
    cos = np.sum(torch_e.encode(sample) * onnx_e.encode(sample), axis=1)

    rows = []
    for f in sorted(SHARED.glob("*.jsonl")) if SHARED.is_dir() else []:
        rows += [json.loads(line) for line in f.open(encoding="utf-8")]
    if max_rows:
        rows = rows[::max(1, len(rows) // max_rows)][:max_rows]
    flips: dict[str, int] = {}
    examples = []
    if rows:
        texts = [r["text"] for r in rows]
        dt = Engine.from_path(DEFAULT, embedder=torch_e).evaluate_many(texts)
        do = Engine.from_path(DEFAULT, embedder=onnx_e).evaluate_many(texts)
        for r, a, b in zip(rows, dt, do):
            if a.action != b.action:
                key = f"{a.action}->{b.action}"
                flips[key] = flips.get(key, 0) + 1
                if len(examples) < 8:
                    examples.append({"id": r["id"], "label": r["label"], "torch": [a.action, a.rule],
                                     "onnx": [b.action, b.rule]})
    blocked_t = sum(1 for d in dt if d.action == "block") if rows else 0
    blocked_o = sum(1 for d in do if d.action == "block") if rows else 0
    return {
        "runs": runs, "single_sentences": len(single), "batch_sentences": len(batch),
        "torch_single_msgs_per_s": round(len(single) / median(s_t), 1),
        "onnx_single_msgs_per_s": round(len(single) / median(s_o), 1),
        "speedup_single": round(median(s_ratio), 2),
        "torch_batch32_msgs_per_s": round(len(batch) / median(b_t), 1),
        "onnx_batch32_msgs_per_s": round(len(batch) / median(b_o), 1),
        "speedup_batch32": round(median(b_ratio), 2),
        "cosine_mean": round(float(cos.mean()), 4), "cosine_min": round(float(cos.min()), 4),
        "cosine_p01": round(float(np.percentile(cos, 1)), 4), "cosine_texts": len(sample),
        "rows": len(rows), "decisions_flipped": sum(flips.values()), "flips": flips,
        "blocked_torch": blocked_t, "blocked_onnx": blocked_o, "flip_examples": examples,
    }
