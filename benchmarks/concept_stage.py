"""2. Concept stage: engine.evaluate_many on the default pack vs SentenceTransformer.encode + FAISS search called
directly on the same chunks with the same batch size (the engine's overhead: chunking, normalisation, regex stage,
rules, explanations)."""

from __future__ import annotations

from .common import median, timed
from .corpus import sentences

DEFAULT = "policies/default.policy"


def run(runs: int = 3, n_messages: int = 400) -> dict:
    import faiss
    import numpy as np

    from policyengine.engine import Engine
    from policyengine.evaluator import embeddable

    msgs = sentences()[::7][:n_messages]
    engine = Engine.from_path(DEFAULT)
    model = engine._embedder._model  # the same SentenceTransformer the engine uses
    batch = engine._embedder.batch_size
    index = engine._index
    # the exact chunk texts the engine embeds (all concept pipelines), computed once outside the timing
    prepared = engine._prepare_many([])  # warm-up import paths
    views = [engine._evaluator.view("input", m, None) for m in msgs]
    chunk_texts = [embeddable(c.text) for v in views for c in v.chunks]
    order = sorted(range(len(chunk_texts)), key=lambda i: len(chunk_texts[i]))
    sorted_texts = [chunk_texts[i] for i in order]
    flat = {name: idx for name, idx in index._indexes.items()}

    def direct() -> None:  # one encode call (sentence-transformers sorts by length and batches), then FAISS
        vecs = model.encode(chunk_texts, batch_size=batch, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=False).astype(np.float32)
        vecs = index.to_space(vecs)  # the policy's "+contrastive" space (identity for a plain model id)
        for i in range(0, len(vecs), batch):  # searched `batch` rows at a time (FAISS's fast path)
            for ex, ctr in flat.values():
                ex.search(vecs[i:i + batch], 1)
                if ctr is not None:
                    ctr.search(vecs[i:i + batch], 1)

    def eng() -> None:
        engine.evaluate_many(msgs)

    direct()
    eng()  # warm both
    d_s, e_s = [], []
    for _ in range(runs):
        d_s.append(timed(direct))
        e_s.append(timed(eng))
    del prepared
    return {"messages": len(msgs), "chunks": len(chunk_texts), "batch_size": batch, "concepts": len(flat),
            "runs": runs, "direct_chunks_per_s": round(len(chunk_texts) / median(d_s), 1),
            "engine_msgs_per_s": round(len(msgs) / median(e_s), 1),
            "ratio_engine_vs_direct": round(median([d / e for d, e in zip(d_s, e_s)]), 3),
            "seconds": {"direct": [round(x, 3) for x in d_s], "engine": [round(x, 3) for x in e_s]},
            "faiss_threads": faiss.omp_get_max_threads()}
