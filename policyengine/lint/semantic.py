"""Embeddings for the semantic lint rules: every example, counter-example and benign sentence, encoded once.

The model is loaded only when a semantic rule runs (never at import, never for the other rules)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import numpy as np

from .. import nodes as n


def benign_corpus() -> list[str]:
    """The shipped sample of ordinary text (policyengine/lint/data/benign.txt; see its header for origin)."""
    text = resources.files(__package__).joinpath("data/benign.txt").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


@dataclass(frozen=True)
class ConceptView:
    name: str
    node: n.ConceptDef
    examples: tuple[str, ...]
    counter: tuple[str, ...]
    threshold: float | None
    margin: float


class SemanticIndex:
    def __init__(self, embedder, concepts: Sequence[n.ConceptDef], benign: Sequence[str]):  # type: ignore[no-untyped-def]
        self.model_id = getattr(embedder, "model_id", "?")
        self.concepts = [ConceptView(c.name.value, c, tuple(t.value for t in c.examples),
                                     tuple(t.value for t in c.counter), c.threshold, float(c.margin or 0.0))
                         for c in concepts]
        self.benign = list(benign)
        texts = sorted({t for c in self.concepts for t in (*c.examples, *c.counter)} | set(self.benign))
        if texts:  # kept in the compiled-policy cache: the same texts are not embedded again on the next run
            from ..runtime import cached_encode

            vecs = cached_encode(embedder, texts, "lint-semantic")
        else:
            vecs = np.zeros((0, 1), dtype=np.float32)
        self._row = {t: i for i, t in enumerate(texts)}
        self._vecs = np.asarray(vecs, dtype=np.float32)

    def vecs(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._vecs.shape[1] if self._vecs.size else 1), dtype=np.float32)
        return self._vecs[[self._row[t] for t in texts]]

    def sims(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Cosine similarities (rows: a, columns: b); embeddings are L2-normalised."""
        return self.vecs(a) @ self.vecs(b).T
