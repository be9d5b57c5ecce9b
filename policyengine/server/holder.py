"""The policy being served: compiled in the background, swapped atomically, never half-loaded.

`PolicyHolder.engine` is a plain attribute holding an immutable, fully prepared Engine; a request reads it once and
uses that engine to the end, so a reload can never show a request a half-loaded policy. Reloads (SIGHUP or a
file change) are serialised; a policy that fails to compile is logged with its diagnostics and the old engine keeps
serving.
"""

from __future__ import annotations

import logging
import os
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
        # real paths of the files the policy in service was read from: what a file change may reload
        self.files: frozenset[str] = frozenset({os.path.realpath(path)})

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
                _building.active = True
                try:
                    new = self._build()
                finally:
                    _building.active = False
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
                self.last_error = None  # a reload that compiles clears the error of an earlier rejected one
                self.files = policy_files(self.path, new)
                if new is old:
                    result = ReloadResult("unchanged", new.policy.digest, time.perf_counter() - t0)
                    log.debug("policy %s unchanged (%s, %s)", self.path, reason, new.policy.digest[:19])
                else:
                    self.engine = new  # the atomic swap: one reference assignment
                    self.generation += 1
                    result = ReloadResult("loaded", new.policy.digest, time.perf_counter() - t0)
                    log.info("policy %s %s (%s) in %.2fs: %s", self.path, "reloaded" if old else "loaded", reason,
                             result.seconds, new.policy.digest)
                    if self._on_swap:
                        self._on_swap(old, new)
            if self._on_reload:
                self._on_reload(result)
            return result


_building = threading.local()  # set while a reload builds an engine in this thread


class SlicedEmbedder:
    """Encode in slices of similar length: the model pads a batch to its longest text, so one batch of 50 chunks with
    one long outlier costs as much as ~2x the same chunks in length-sorted slices (measured on the default pack:
    ~39 vs ~80 messages/s of CPU time for a 32-message micro-batch). A slice holds at most `max_slice` texts and at
    most `budget` padded characters. While a reload indexes a pack's concept examples (a thread inside
    PolicyHolder._build), it yields between slices so that live request batches take turns with it instead of
    waiting seconds for the model."""

    def __init__(self, inner: Any, max_slice: int = 16, budget: int = 1024):
        self.inner = inner
        self.model_id = inner.model_id
        self.max_slice = max_slice
        self.budget = budget

    def slices(self, texts: list[str]) -> list[list[int]]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            width = max(len(texts[i]), 16)  # sorted: the newest text is the longest of its slice
            if cur and (len(cur) >= self.max_slice or (len(cur) + 1) * width > self.budget):
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
        return out

    def encode(self, texts: Any) -> Any:
        import numpy as np

        texts = list(texts)
        groups = self.slices(texts)
        if len(groups) <= 1:
            return self.inner.encode(texts)
        building = getattr(_building, "active", False)
        out = None
        for k, g in enumerate(groups):
            vecs = self.inner.encode([texts[i] for i in g])
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=vecs.dtype)
            out[g] = vecs
            if building and k + 1 < len(groups):
                time.sleep(0.002)  # let a waiting request batch take the model
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def policy_files(path: str, engine: Engine) -> frozenset[str]:
    """Real paths of the files a served policy is read from: a bundle file; or the entry .policy, its imports, the
    word-list and training files they read and the NAME.cases.yaml next to each policy file."""
    from ..bundle import is_bundle

    if is_bundle(path):
        return frozenset({os.path.realpath(path)})
    from .. import nodes as n

    out = {os.path.realpath(path)}
    for f in engine.policy.files:
        p = os.path.realpath(f.path)
        out.add(p)
        folder, name = os.path.split(p)
        out.add(os.path.join(folder, name.rsplit(".", 1)[0] + ".cases.yaml"))
        for item in f.of(n.WordsDef):
            if item.file is not None:
                out.add(os.path.realpath(os.path.join(os.path.dirname(f.path), item.file.value)))
        for concept in f.of(n.ConceptDef):
            for src in concept.train:  # a trained concept's rows: editing them retrains it
                out.add(os.path.realpath(os.path.join(os.path.dirname(f.path), src.path.value)))
    return frozenset(out)


def is_relevant_change(path: str, files: frozenset[str] | set[str], bundle: bool = False) -> bool:
    """Only the policy's own files reload it (`files`, from policy_files): a log, a decision log or any other file
    written into the policy's folder never does. Also any new `*.policy` file (not for a bundle): an import added
    before its file existed was rejected, and creating the file must bring the policy in."""
    real = os.path.realpath(path)
    if real in files:
        return True
    name = real.rsplit("/", 1)[-1]
    return not bundle and name.endswith(".policy") and not name.startswith(".")
