"""An LRU cache of chunk embeddings, keyed by the exact (normalised) chunk text that is embedded.

Off by default (size 0). Chat traffic repeats itself ("hi", "thanks", pasted boilerplate): with a cache those
chunks skip the model. Thread-safe; the wrapped embedder is called once per batch with only the missing texts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np


class CachedEmbedder:
    def __init__(self, embedder: Any, size: int):
        if size < 1:
            raise ValueError("embedding cache size must be >= 1")
        self.inner = embedder
        self.model_id = embedder.model_id
        self.backend = getattr(embedder, "backend", "torch")
        self.size = size
        self.hits = 0
        self.misses = 0
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        rows: list[np.ndarray | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                v = self._lru.get(t)
                if v is not None:
                    self._lru.move_to_end(t)
                    rows[i] = v
                else:
                    missing.setdefault(t, []).append(i)
            self.hits += len(texts) - sum(len(v) for v in missing.values())
            self.misses += len(missing)
        if missing:
            order = list(missing)
            vecs = self.inner.encode(order)
            with self._lock:
                for t, v in zip(order, vecs):
                    for i in missing[t]:
                        rows[i] = v
                    self._lru[t] = v
                    self._lru.move_to_end(t)
                while len(self._lru) > self.size:
                    self._lru.popitem(last=False)
        if not texts:
            return self.inner.encode([])
        return np.ascontiguousarray(np.stack(rows), dtype=np.float32)  # type: ignore[arg-type]
