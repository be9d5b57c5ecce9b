"""Run engines over labelled rows: one embedding per distinct chunk text per process, a progress bar on long runs."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .data import Row

if TYPE_CHECKING:  # pragma: no cover
    from ..compiler import CompiledPolicy
    from ..engine import ConceptScore, Engine
    from ..models import Decision

BATCH = 256
PROGRESS_MIN_ROWS = 500  # below this a bar is noise


class CachingEmbedder:
    """Wraps the real embedder: the model loads on the first encode (never for a policy without concepts), and
    every distinct text is embedded once, so two policies (diff) or many thresholds (calibrate) share one pass."""

    def __init__(self, model_id: str, threads: int = 1, inner: Any = None):
        self.model_id = model_id
        self.threads = threads
        self._inner: Any = inner
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.encoded = 0  # texts actually sent to the model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                if self._inner is None:
                    from ..engine import load_backend

                    # the default backend (ONNX Runtime fp32 when installed: the same vectors as torch, no torch)
                    self._inner = load_backend(self.model_id, None, self.threads)
                vecs = self._inner.encode(missing)
                self.encoded += len(missing)
                for t, v in zip(missing, vecs):
                    self._cache[t] = v
            if not texts:
                dim = next(iter(self._cache.values())).shape[0] if self._cache else 384
                return np.zeros((0, dim), dtype=np.float32)
            return np.ascontiguousarray(np.stack([self._cache[t] for t in texts]), dtype=np.float32)

    @property
    def tuned(self) -> bool:  # wrapping a "+finetune" policy's tuned model: the Engine keeps it (and this cache)
        return bool(getattr(self._inner, "tuned", False))

    @property
    def info(self) -> Any:
        return getattr(self._inner, "info", None)


_EMBEDDERS: dict[tuple[str, int], CachingEmbedder] = {}


def shared_embedder(model_id: str, threads: int = 1) -> CachingEmbedder:
    key = (model_id, threads)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = CachingEmbedder(model_id, threads)
    return _EMBEDDERS[key]


def policy_shared_embedder(policy: "CompiledPolicy", threads: int) -> CachingEmbedder:
    """shared_embedder for the policy's model; for a "+finetune" policy, for its tuned model (one cache per training
    digest, so versions of a policy that differ only in thresholds share their embeddings)."""
    from ..matchers.embedders import split_model_id

    if split_model_id(policy.model)[1] != "finetune" or not policy.used_concepts:
        return shared_embedder(policy.model, threads)
    from ..engine import policy_embedder

    tuned = policy_embedder(policy, "torch", threads)
    key = (f"{policy.model}@{tuned.info['digest']}", threads)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = CachingEmbedder(policy.model, threads, inner=tuned)
    return _EMBEDDERS[key]


def build_engine(policy: "CompiledPolicy | str", *, threads: int = 1, embedder: Any = None) -> "Engine":
    """An engine whose embeddings are shared with every other engine built here for the same model."""
    from ..compiler import compile_policy
    from ..engine import Engine

    compiled = compile_policy(policy) if isinstance(policy, str) else policy
    return Engine(compiled, embedder=embedder or policy_shared_embedder(compiled, threads), threads=threads)


def leave_out_engine(policy_path: str, data_path: str, rows: Sequence[Row], threads: int = 1) -> "Engine":
    """An engine for `policy_path` whose trained concepts are retrained without the rows of `data_path`: training
    rows from a training file with the same file name, and training rows whose text is one of `rows`' texts
    (leave-one-file-out measurement: no figure on a row the policy trained on)."""
    import os

    from ..compiler import compile_policy

    name = os.path.basename(data_path)
    texts = {r.text for r in rows}
    policy = compile_policy(policy_path, training_filter=lambda t: os.path.basename(t.file) != name
                            and t.text not in texts)
    return build_engine(policy, threads=threads)


@dataclass(frozen=True)
class RowResult:
    row: Row
    decision: "Decision"
    scores: dict[str, "ConceptScore"]  # per concept, on the row's text (input)

    @property
    def action(self) -> str:
        return self.decision.action

    @property
    def blocked(self) -> bool:
        return self.decision.action == "block"


def run_rows(engine: "Engine", rows: Sequence[Row], *, progress: bool | None = None, desc: str = "rows") -> list[RowResult]:
    """Decide on every row (batched), keeping the threshold-free concept scores. `progress` None = a bar on stderr
    when it is a terminal and there are many rows."""
    from ..evaluator import ContextError, check_context

    for r in rows:
        try:
            check_context(engine.policy, r.context)
        except ContextError as e:
            from .data import DataError

            raise DataError(f"{r.file}:{r.line}:1: error: {e}") from None
    show = progress if progress is not None else (len(rows) >= PROGRESS_MIN_ROWS and sys.stderr.isatty())
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=len(rows), desc=desc, unit="row", file=sys.stderr, leave=False)
    out: list[RowResult] = []
    try:
        for i in range(0, len(rows), BATCH):
            chunk = rows[i:i + BATCH]
            for r, (d, sc) in zip(chunk, engine.evaluate_with_scores([r.item() for r in chunk])):
                out.append(RowResult(r, d, sc.get("input", {})))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return out
