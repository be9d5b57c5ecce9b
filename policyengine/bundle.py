"""Compiled bundles: a policy's exemplar embeddings and regex database, computed once by `policyengine compile`.

A bundle is a zip file:
  manifest.json   format, policy name/digest/entry path, every source file's sha256, model id, embedding backend,
                  sha256 of the model weights, per-concept exemplar counts, regex engine and its fallbacks
  exemplars.npy   float32 [n, d] embeddings of every example and counter-example of the concepts rules use,
                  rows in the order of manifest["exemplars"]; the FAISS inner-product indexes are rebuilt from them
                  at load (IndexFlatIP.add of a few thousand rows: ~1 ms, less than reading a serialised index)
  regex/N.hs      serialised Hyperscan databases (rebuilt instead when this CPU cannot load them)
  intent/map.npy  float32 [d, d] contrastive intent map when the model is "<base>+contrastive" (docs/intent.md),
                  stamped in manifest["intent"] with its training digest; used at load only when the digest
                  recomputed from the policy still matches, so a bundle never needs the training run or its cache
  finetune/*      the fine-tuned model's files when the model is "<base>+finetune" (docs/intent.md), stamped in
                  manifest["finetune"] with its training digest; unpacked at load into the fine-tune cache (or a
                  temporary directory) and used only for that digest; exemplars.npy then holds tuned vectors

`Engine.from_bundle(path)` compiles the policy from its files (the digest must equal the bundle's), checks the
installed model weights against the recorded sha256, and builds the engine without embedding any exemplar.
A bundle is never trusted blindly: when the policy or the model changed, loading fails with BundleError saying what
changed and how to rebuild. No pickle: a bundle holds data only.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import PolicyEngineError

FORMAT = "policyengine-bundle/1"


class BundleError(PolicyEngineError, RuntimeError):
    """The bundle cannot be used: unreadable, built for another policy/model, or stale."""


class _Wrapped:
    """An embedder around another: model id and backend of the inner one, anything else (e.g. a tuned model's
    `tuned` and `info`) looked up on it."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.model_id = inner.model_id
        self.backend = getattr(inner, "backend", "torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["inner"], name)


class _Recorder(_Wrapped):
    """Wraps an embedder and remembers the vectors of the texts it was asked for (the concept exemplars)."""

    def __init__(self, inner: Any):
        super().__init__(inner)
        self.seen: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vecs = self.inner.encode(texts)
        for t, v in zip(texts, vecs):
            self.seen.setdefault(t, v)
        return vecs


class _Precomputed(_Wrapped):
    """Serves the bundle's exemplar vectors; anything else goes to the real embedder."""

    def __init__(self, inner: Any, table: dict[str, np.ndarray]):
        super().__init__(inner)
        self.table = table

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if texts and all(t in self.table for t in texts):
            return np.ascontiguousarray(np.stack([self.table[t] for t in texts]), dtype=np.float32)
        return self.inner.encode(texts)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _source_hashes(policy: Any) -> dict[str, str]:
    """sha256 of every file the policy was compiled from (policy files and word-list files), by real path."""
    from . import nodes as n

    out = {}
    for f in policy.files:
        p = Path(os.path.realpath(f.path))
        if not p.is_file():
            continue
        out[str(p)] = _sha256(p.read_bytes())
        for item in f.of(n.WordsDef):
            if item.file is not None:
                w = Path(os.path.realpath(p.parent / item.file.value))
                if w.is_file():
                    out[str(w)] = _sha256(w.read_bytes())
    return dict(sorted(out.items()))


def _weights_sha256(model_id: str) -> str:
    from .matchers.embedders import resolve_model_path, split_model_id
    from .matchers.onnx_backend import weights_digest

    return weights_digest(resolve_model_path(split_model_id(model_id)[0]))


def write_bundle(policy_path: str | os.PathLike[str], out: str | os.PathLike[str], *, backend: str = "torch",
                 threads: int | None = None, regex_engine: str = "auto", embedder: Any | None = None) -> dict[str, Any]:
    """Compile `policy_path`, embed its exemplars, and write the bundle to `out`. Returns the manifest."""
    from . import __version__
    from .compiler import compile_policy
    from .engine import Engine, policy_embedder

    policy = compile_policy(policy_path)
    needed = {k for k in policy.concepts if k in policy.used_concepts}
    recorder = None
    kwargs: dict[str, Any] = {"threads": threads, "regex_engine": regex_engine}
    if needed:
        recorder = _Recorder(policy_embedder(policy, backend, threads or 1, given=embedder))
        kwargs["embedder"] = recorder
    engine = Engine(policy, **kwargs)
    texts = sorted(recorder.seen) if recorder else []
    vecs = np.stack([recorder.seen[t] for t in texts]).astype(np.float32) if texts else np.zeros((0, 0), np.float32)
    scanner = engine.scanner
    regex_states = scanner.to_state() if scanner is not None else []
    manifest = {
        "format": FORMAT, "policyengine": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "policy": {"name": policy.name, "version": policy.version, "digest": policy.digest, "entry": policy.entry,
                   "entry_abspath": os.path.realpath(policy_path), "sources": _source_hashes(policy)},
        "model": {"id": policy.model, "backend": getattr(recorder.inner, "backend", backend) if recorder else backend,
                  "weights_sha256": _weights_sha256(policy.model) if embedder is None else "(embedder given)"}
        if needed else None,
        "concepts": {k: {"examples": len(policy.concepts[k].examples), "counter": len(policy.concepts[k].counter)}
                     for k in sorted(needed)},
        "exemplars": texts,
        "regex": {"engine": scanner.engine if scanner else "re", "requested": regex_engine,
                  "fallbacks": [[f.name, f.reason] for f in scanner.fallbacks] if scanner else [],
                  "databases": [{k: v for k, v in st.items() if k != "db"} for st in regex_states]},
    }
    index = engine._index
    space = index.space_map if index is not None else None
    if space is not None:  # the contrastive intent map is an artifact of compilation: ship it with the bundle
        manifest["intent"] = {"digest": index.space_info["digest"], "config": index.space_info["config"],
                              "trained_seconds": index.space_info["seconds"]}
    tuned = getattr(recorder.inner, "directory", None) if recorder else None
    if tuned is not None:  # the fine-tuned model is an artifact of compilation too
        info = recorder.inner.info  # type: ignore[union-attr]
        manifest["finetune"] = {"digest": info["digest"], "config": info["config"],
                                "trained_seconds": info.get("seconds")}
    buf = io.BytesIO()
    np.save(buf, vecs, allow_pickle=False)
    tmp = Path(str(out) + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False))
        z.writestr("exemplars.npy", buf.getvalue())
        for i, st in enumerate(regex_states):
            z.writestr(f"regex/{i}.hs", st["db"])
        if space is not None:
            mbuf = io.BytesIO()
            np.save(mbuf, space, allow_pickle=False)
            z.writestr("intent/map.npy", mbuf.getvalue())
        if tuned is not None:
            for f in sorted(Path(tuned).rglob("*")):
                if f.is_file():
                    # weights barely deflate; storing them keeps compile and load fast
                    z.write(f, "finetune/" + f.relative_to(tuned).as_posix(), compress_type=zipfile.ZIP_STORED)
    os.replace(tmp, out)
    return manifest


def is_bundle(path: str | os.PathLike[str]) -> bool:
    """True for a file that starts like a zip archive (what `policyengine compile` writes); False otherwise."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as z:
            manifest = json.loads(z.read("manifest.json"))
    except FileNotFoundError:
        raise BundleError(f"{path}: bundle not found") from None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as e:
        raise BundleError(f"{path}: not a policyengine bundle ({e})") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: unsupported bundle format {manifest.get('format')!r} (expected {FORMAT!r}); "
                          "rebuild it with `policyengine compile`")
    return manifest


def fresh_policy(path: str | os.PathLike[str], manifest: dict[str, Any],
                 policy_path: str | os.PathLike[str] | None = None) -> Any:
    """Compile the policy a bundle was built from; BundleError if it is missing or its sources changed since."""
    from .compiler import compile_policy

    entry = Path(policy_path) if policy_path else Path(manifest["policy"]["entry_abspath"])
    if not entry.is_file():
        raise BundleError(f"{path}: the policy it was built from, {str(entry)!r}, is missing "
                          "(pass policy_path= / --policy to say where it is now)")
    policy = compile_policy(entry)
    before, now = manifest["policy"]["sources"], _source_hashes(policy)
    if before != now:  # the digest also covers display paths; sources compare content only
        changed = sorted(f for f in set(before) | set(now) if before.get(f) != now.get(f))
        raise BundleError(f"{path}: stale bundle: the policy changed since it was compiled "
                          f"({', '.join(changed)}); rebuild it: policyengine compile POLICY -o {path}")
    return policy


def load_engine(path: str | os.PathLike[str], *, policy_path: str | os.PathLike[str] | None = None,
                threads: int | None = None, embedder: Any | None = None, **kwargs: Any) -> Any:
    """Engine.from_bundle: see the module docstring."""
    from .engine import Engine, policy_embedder
    from .matchers.multiregex import PolicyScanner

    manifest = read_manifest(path)
    rebuild = f"rebuild it: policyengine compile POLICY -o {path}"
    policy = fresh_policy(path, manifest, policy_path)
    with zipfile.ZipFile(path) as z:
        vecs = np.load(io.BytesIO(z.read("exemplars.npy")), allow_pickle=False)
        db_names = sorted(n for n in z.namelist() if n.startswith("regex/"))
        blobs = [z.read(n) for n in db_names]
        space = (np.load(io.BytesIO(z.read("intent/map.npy")), allow_pickle=False)
                 if manifest.get("intent") and "intent/map.npy" in z.namelist() else None)
        if manifest.get("finetune"):
            _unpack_finetune(z, manifest["finetune"]["digest"], path)
    if space is not None:
        from .intent import contrastive

        # used only if the policy's training digest is unchanged; otherwise the map is trained (or read from
        # the cache) as for any policy
        contrastive.preload(manifest["intent"]["digest"], space)
    regex_engine = kwargs.pop("regex_engine", manifest["regex"]["requested"])
    if blobs and regex_engine != "re":
        states = [{**meta, "db": blob} for meta, blob in zip(manifest["regex"]["databases"], blobs)]
        PolicyScanner.preload(policy.patterns, regex_engine, states)
    model = manifest.get("model")
    if model:
        if model["id"] != policy.model:
            raise BundleError(f"{path}: built for model {model['id']!r}, the policy now uses {policy.model!r}; {rebuild}")
        if embedder is None:
            now = _weights_sha256(policy.model)
            if now != model["weights_sha256"]:
                raise BundleError(f"{path}: stale bundle: the installed weights of {policy.model!r} changed since it "
                                  f"was compiled (sha256 {model['weights_sha256'][:12]}..., now {now[:12]}...); "
                                  f"{rebuild}")
            # for "+finetune", the tuned model unpacked above: loaded, never trained
            embedder = policy_embedder(policy, model["backend"], threads or 1)
        elif getattr(embedder, "backend", "torch") != model["backend"]:
            raise BundleError(f"{path}: built with the {model['backend']} backend, the given embedder is "
                              f"{getattr(embedder, 'backend', 'torch')}; {rebuild}")
        texts = manifest["exemplars"]
        if len(texts) != len(vecs):
            raise BundleError(f"{path}: corrupt bundle ({len(texts)} exemplars, {len(vecs)} vectors); {rebuild}")
        embedder = _Precomputed(embedder, dict(zip(texts, vecs)))
    engine = Engine(policy, embedder=embedder, threads=threads, regex_engine=regex_engine, **kwargs)
    engine.bundle = str(path)
    return engine


def _unpack_finetune(z: zipfile.ZipFile, digest: str, path: str | os.PathLike[str]) -> None:
    """Make the bundle's fine-tuned model available for `digest`: unpacked into the fine-tune cache (where a later
    compile finds it too) unless it is already there, or into a temporary directory when the cache is read-only."""
    from .intent import finetune

    names = [n for n in z.namelist() if n.startswith("finetune/") and not n.endswith("/")]
    if any(".." in Path(n).parts or Path(n).is_absolute() or "\\" in n for n in names):
        raise BundleError(f"{path}: corrupt bundle (a file of its fine-tuned model points outside its folder); "
                          f"rebuild it: policyengine compile POLICY -o {path}")
    if "finetune/policyengine.json" not in names:
        raise BundleError(f"{path}: corrupt bundle (its fine-tuned model is incomplete); "
                          f"rebuild it: policyengine compile POLICY -o {path}")
    target = finetune.entry(digest)
    if not finetune.stamped(target, digest):

        def write(d: Path) -> None:
            for n in names:
                dest = d / n[len("finetune/"):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(z.read(n))

        target = finetune.install(digest, write)
    finetune.preload(digest, target)
