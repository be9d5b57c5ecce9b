"""Concept similarity: exemplar embeddings in FAISS inner-product indexes, built once per compiled policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..compiler import ConceptSpec
from .embedders import Embedder


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

        self.concepts = concepts
        self.embedder = embedder
        texts = sorted({t for c in concepts.values() for t in (*c.examples, *c.counter)})
        vecs = embedder.encode(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        row = {t: i for i, t in enumerate(texts)}
        self._indexes: dict[str, tuple[object, object | None]] = {}
        for name, c in concepts.items():
            ex = faiss.IndexFlatIP(vecs.shape[1])
            ex.add(vecs[[row[t] for t in c.examples]])
            ctr = None
            if c.counter:
                ctr = faiss.IndexFlatIP(vecs.shape[1])
                ctr.add(vecs[[row[t] for t in c.counter]])
            self._indexes[name] = (ex, ctr)

    def score(self, concept: str, chunk_vecs: np.ndarray) -> ConceptScores:
        ex, ctr = self._indexes[concept]
        n = chunk_vecs.shape[0]
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
