"""The policy being served: compiled in the background, swapped atomically, never half-loaded.

`PolicyHolder.engine` is a plain attribute holding an immutable, fully prepared Engine; a request reads it once and
uses that engine to the end, so a reload can never show a request a half-loaded policy. Reloads (SIGHUP or a
file change) are serialised; a policy that fails to compile is logged with its diagnostics and the old engine keeps
serving.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..diagnostics import PolicyError
from ..engine import Engine

log = logging.getLogger("policyengine.server")


@dataclass(frozen=True)
class ReloadResult:
    status: str  # "loaded" | "unchanged" | "error"
    digest: str | None
    seconds: float
    error: str | None = None


class PolicyHolder:
    def __init__(self, path: str, *, threads: int = 1, embedder: Any = None, limits: Any = None,
                 on_swap: Callable[[Engine | None, Engine], None] | None = None,
                 on_reload: Callable[[ReloadResult], None] | None = None):
        self.path = path
        self.threads = threads
        self.limits = limits  # evaluator.Limits or None (defaults)
        self._embedder = embedder
        self._on_swap = on_swap
        self._on_reload = on_reload
        self._lock = threading.Lock()
        self.engine: Engine | None = None
        self.last_error: str | None = None
        self.generation = 0
        self._bundle_stamp: tuple[str, str] | None = None  # (policy digest, created) of the bundle in service

    @property
    def ready(self) -> bool:
        return self.engine is not None

    def _build(self) -> Engine:
        from ..bundle import is_bundle

        if is_bundle(self.path):
            return self._build_from_bundle()
        from ..compiler import compile_policy

        policy = compile_policy(self.path)
        current = self.engine
        if current is not None and current.policy.digest == policy.digest:
            return current
        kwargs: dict[str, Any] = {"threads": self.threads, "limits": self.limits}
        if policy.used_concepts:
            embedder = self._embedder
            if embedder is None:
                from ..engine import policy_embedder

                # the default backend (ONNX fp32 when installed), once per process; with the compiled-policy cache
                embedder = policy_embedder(policy, None, self.threads)
            kwargs["embedder"] = SlicedEmbedder(embedder)
        return Engine(policy, **kwargs)

    def _build_from_bundle(self) -> Engine:
        """A bundle from `policyengine compile`: no re-embedding and no intent-map training at (re)load. Deploy a new
        policy by writing a new bundle over the old one; a bundle whose sources changed since it was built is
        refused as stale (BundleError) and the engine in service stays."""
        from ..bundle import fresh_policy, load_engine, read_manifest

        manifest = read_manifest(self.path)
        stamp = (manifest["policy"]["digest"], manifest["created"])
        if self.engine is not None and self._bundle_stamp == stamp:
            fresh_policy(self.path, manifest)  # same bundle: only report it if edited sources made it stale
            return self.engine
        embedder = self._embedder
        # without an embedder given, load_engine loads the bundle's own (its ONNX model, or the tuned model of a
        # "+finetune" bundle, or the installed weights once checked): nothing is embedded at load either way
        engine = load_engine(self.path, threads=self.threads, limits=self.limits,
                             embedder=SlicedEmbedder(embedder) if embedder is not None else None)
        self._bundle_stamp = stamp
        return engine

    def reload(self, reason: str = "reload") -> ReloadResult:
        """Compile the policy file again and swap it in if it compiles. Safe to call from any thread."""
        with self._lock:
            t0 = time.perf_counter()
            old = self.engine
            try:
                new = self._build()
            except PolicyError as e:
                result = ReloadResult("error", old.policy.digest if old else None, time.perf_counter() - t0,
                                      e.render())
                self.last_error = result.error
                log.error("policy %s rejected (%s); %s\n%s", self.path, reason,
                          "keeping the policy in service" if old else "no policy in service yet", e.render())
            except Exception as e:  # noqa: BLE001 - a model or I/O failure must not kill the server either
                result = ReloadResult("error", old.policy.digest if old else None, time.perf_counter() - t0,
                                      f"{type(e).__name__}: {e}")
                self.last_error = result.error
                log.error("policy %s could not be loaded (%s): %s", self.path, reason, result.error)
            else:
                if new is old:
                    result = ReloadResult("unchanged", new.policy.digest, time.perf_counter() - t0)
                    log.debug("policy %s unchanged (%s, %s)", self.path, reason, new.policy.digest[:19])
                else:
                    self.engine = new  # the atomic swap: one reference assignment
                    self.generation += 1
                    self.last_error = None
                    result = ReloadResult("loaded", new.policy.digest, time.perf_counter() - t0)
                    log.info("policy %s %s (%s) in %.2fs: %s", self.path, "reloaded" if old else "loaded", reason,
                             result.seconds, new.policy.digest)
                    if self._on_swap:
                        self._on_swap(old, new)
            if self._on_reload:
                self._on_reload(result)
            return result


class SlicedEmbedder:
    """Encode in slices, yielding between them: indexing a pack's concept examples during a reload then takes
    turns with the requests being served instead of holding the model for seconds."""

    def __init__(self, inner: Any, slice_size: int = 32):
        self.inner = inner
        self.model_id = inner.model_id
        self.slice_size = slice_size

    def encode(self, texts: Any) -> Any:
        import numpy as np

        texts = list(texts)
        if len(texts) <= self.slice_size:
            return self.inner.encode(texts)
        parts = []
        for i in range(0, len(texts), self.slice_size):
            parts.append(self.inner.encode(texts[i:i + self.slice_size]))
            time.sleep(0.002)  # let a waiting request batch take the model
        return np.concatenate(parts, axis=0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def is_relevant_change(path: str, ignore_prefix: str | None = None) -> bool:
    """Ignore editor droppings, hidden files, logs and our own decision log; any other file in a watched folder may
    be a policy, an import or a word list (the policy digest decides whether anything actually changed)."""
    name = path.rsplit("/", 1)[-1]
    if ignore_prefix and path.startswith(ignore_prefix):
        return False
    return not (name.startswith((".", "#")) or name.endswith(("~", ".swp", ".swx", ".tmp", ".log", ".jsonl"))
                or ".jsonl." in name or "/__pycache__/" in path)
