"""Shared fixtures: a deterministic fake embedder for fast unit tests, and engines built with the real model."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from typing import Callable, Iterator, Sequence

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from policyengine.compiler import DEFAULT_MODEL  # noqa: E402
from policyengine.engine import Engine  # noqa: E402

_TOKEN = re.compile(r"[a-z0-9]+")


class FakeEmbedder:
    """Bag-of-words embedder: every lower-cased token is hashed (sha1, so stable across processes) into one
    of `dim` buckets; rows are L2-normalised float32. Texts sharing words get a high cosine similarity, texts
    with no words in common score ~0. Counts its calls so tests can check batching."""

    def __init__(self, dim: int = 256, model_id: str = "fake/bag-of-words"):
        self.dim = dim
        self.model_id = model_id
        self.calls: list[list[str]] = []

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for tok in _TOKEN.findall(text.lower()):
            h = int.from_bytes(hashlib.sha1(tok.encode()).digest()[:4], "little")
            v[h % self.dim] += 1.0
        norm = float(np.linalg.norm(v))
        return v / norm if norm else v

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        self.calls.append(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.stack([self._vec(t) for t in texts]), dtype=np.float32)


class BrokenEmbedder(FakeEmbedder):
    """Works while the engine indexes the concept examples, then fails on every message (set `.broken`)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.broken:
            raise RuntimeError("embedding backend exploded")
        return super().encode(texts)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def make_engine(fake_embedder: FakeEmbedder) -> Callable[..., Engine]:
    """Build an engine from source text with the fake embedder: make_engine(text, name="x.policy", **kw)."""

    def build(text: str, name: str = "x.policy", **kwargs) -> Engine:
        kwargs.setdefault("embedder", fake_embedder)
        return Engine.from_source(text, name=name, **kwargs)

    return build


@pytest.fixture(scope="session")
def real_embedder():
    """The real all-MiniLM-L6-v2 model, loaded once per process (load_embedder caches it)."""
    from policyengine.matchers.embedders import load_embedder

    return load_embedder(DEFAULT_MODEL, threads=1)


@pytest.fixture(scope="session")
def real_engine(real_embedder) -> Callable[..., Engine]:
    """Build engines from source text with the real model; engines for the same text are cached per session."""
    cache: dict[tuple[str, str], Engine] = {}

    def build(text: str, name: str = "x.policy") -> Engine:
        key = (text, name)
        if key not in cache:
            cache[key] = Engine.from_source(text, name=name, embedder=real_embedder)
        return cache[key]

    return build


@contextlib.contextmanager
def engines_in_fresh_cache(tmp_path_factory, *sources: str) -> Iterator[tuple[Engine, ...]]:
    """Engines for `sources` with the real model and an empty $POLICYENGINE_CACHE, so a derived space ("+contrastive",
    "+finetune") is trained here, once per module fixture."""
    mp = pytest.MonkeyPatch()
    mp.setenv("POLICYENGINE_CACHE", str(tmp_path_factory.mktemp("pecache")))
    try:
        yield tuple(Engine.from_source(text) for text in sources)
    finally:
        mp.undo()
