"""Concept similarity: exemplar embeddings in FAISS inner-product indexes, built once per compiled policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..compiler import ConceptSpec
from ..chunking import embeddable
from .embedders import Embedder

if TYPE_CHECKING:
    from .heads import TrainedHead




@dataclass(frozen=True)
class ConceptScores:
    """Per chunk: best example score/index and best counter-example score/index (-1 when no counters)."""

    ex_score: np.ndarray
    ex_index: np.ndarray
    ctr_score: np.ndarray
    ctr_index: np.ndarray


class ConceptIndex:
    def __init__(self, concepts: dict[str, ConceptSpec], embedder: Embedder):
        import faiss

        from .embedders import split_model_id

        self.concepts = concepts
        self.embedder = embedder
        trained = {k: c for k, c in concepts.items() if c.trained}
        nearest = {k: c for k, c in concepts.items() if not c.trained}
        texts = sorted({t for c in nearest.values() for t in (*c.examples, *c.counter)})
        vecs = embedder.encode(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        row = {t: i for i, t in enumerate(texts)}
        #: the contrastive intent map (d x d) when the policy's model is "<base>+contrastive", else None
        self.space_map: np.ndarray | None = None
        self.space_info: dict[str, object] = {}
        if texts and split_model_id(getattr(embedder, "model_id", ""))[1] == "contrastive":
            self.space_map = self._train_space(nearest, embedder, vecs, row)
            vecs = self._to_space(vecs)
        self._indexes: dict[str, tuple[object, object | None]] = {}
        #: trained concepts' classifiers (matchers/heads.py), built after the space they decide in
        self.heads: dict[str, "TrainedHead"] = self._build_heads(trained, embedder) if trained else {}
        for name, c in nearest.items():
            ex = faiss.IndexFlatIP(vecs.shape[1])
            ex.add(vecs[[row[t] for t in c.examples]])
            ctr = None
            if c.counter:
                ctr = faiss.IndexFlatIP(vecs.shape[1])
                ctr.add(vecs[[row[t] for t in c.counter]])
            self._indexes[name] = (ex, ctr)

    def _train_space(self, concepts: dict[str, ConceptSpec], embedder: Embedder, vecs: np.ndarray,
                     row: dict[str, int]) -> np.ndarray:
        import time

        from ..intent import contrastive as ic

        base_id = embedder.model_id.rpartition("+")[0]
        background = ic.background_texts()
        config = ic.TrainConfig()
        digest = ic.training_digest(base_id, {k: (c.examples, c.counter) for k, c in concepts.items()},
                                    background, config)
        pairs = {k: (vecs[[row[t] for t in c.examples]], vecs[[row[t] for t in c.counter]]
                     if c.counter else np.zeros((0, vecs.shape[1]), dtype=np.float32)) for k, c in concepts.items()}
        t0 = time.perf_counter()
        W, cached = ic.load_or_train(digest, pairs, embedder.encode(list(background)), config)
        self.space_info = {"digest": digest, "cached": cached, "seconds": round(time.perf_counter() - t0, 3),
                           "config": config.stamp(), "background": len(background)}
        return W

    def _build_heads(self, trained: dict[str, ConceptSpec], embedder: Embedder) -> dict[str, "TrainedHead"]:
        from ..normalize import normalize as normalize_text
        from .heads import build_heads

        info = getattr(embedder, "info", None)
        embed_key = getattr(embedder, "model_id", "") + (f"@{info['digest']}" if isinstance(info, dict)
                                                          and "digest" in info else "")
        space_key = embed_key + (f"|map:{self.space_info.get('digest')}" if self.space_map is not None else "")
        return build_heads({k: (c.examples, c.counter, c.training, c.normalize) for k, c in trained.items()},
                           lambda texts: embedder.encode([embeddable(t) for t in texts]), self._to_space,
                           embed_key, space_key, lambda t, p: normalize_text(t, p).text)

    def _to_space(self, vecs: np.ndarray) -> np.ndarray:
        if self.space_map is None or vecs.shape[0] == 0:
            return vecs
        from ..intent.contrastive import apply_map

        return apply_map(self.space_map, vecs)

    def to_space(self, vecs: np.ndarray) -> np.ndarray:
        """Chunk embeddings in the space the indexes live in (identity unless the model is "+contrastive"); map
        once per text and pass `mapped=True` to score(), instead of mapping again for every concept."""
        return self._to_space(vecs)

    def score(self, concept: str, chunk_vecs: np.ndarray, mapped: bool = False) -> ConceptScores:
        """Per chunk, the best example and counter-example. For a trained concept, `ex_score` is the classifier's
        probability and there are no counters (`ctr_score` -inf), so "fires at t" keeps one meaning: score >= t."""
        if not mapped:
            chunk_vecs = self._to_space(chunk_vecs)
        n = chunk_vecs.shape[0]
        head = self.heads.get(concept)
        if head is not None:
            none = np.full(n, -1, dtype=np.int64)
            return ConceptScores(head.probabilities(chunk_vecs), none, np.full(n, -np.inf, dtype=np.float32), none)
        ex, ctr = self._indexes[concept]
        if n == 0:
            empty = np.zeros(0, dtype=np.float32)
            return ConceptScores(empty, empty.astype(np.int64), empty, empty.astype(np.int64))
        d, i = ex.search(chunk_vecs, 1)  # type: ignore[attr-defined]
        if ctr is not None:
            cd, ci = ctr.search(chunk_vecs, 1)  # type: ignore[attr-defined]
        else:
            cd, ci = np.full((n, 1), -np.inf, dtype=np.float32), np.full((n, 1), -1, dtype=np.int64)
        return ConceptScores(d[:, 0], i[:, 0], cd[:, 0], ci[:, 0])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.encode(texts)
