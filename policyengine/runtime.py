"""Compiled policies: what compiling a policy computes once, kept by digest so a new process does not compute it again.

Building an Engine for a policy that uses concepts embeds every example and counter-example (~8 s for the default
pack on torch), may train a `+contrastive` intent map, and compiles the Hyperscan databases. All of that is a
function of the policy's digest (its content and its imports' content by relative path), the model id and the
embedding space (backend + the weights' sha256). It is written once to an *artifact* and read back by every later
Engine for the same policy: the compiled-policy cache ($POLICYENGINE_CACHE/compiled/<key>/, default
~/.cache/policyengine) and the bundles of `policyengine compile` (policyengine/bundle.py) hold the same artifact.

An artifact is a manifest plus named arrays and blobs; on disk (a cache folder, or inside a bundle's zip):

    manifest.json            {"format": "policyengine-compiled/1", "key", "policy": {name, digest, ...},
                              "model": {id, backend, space, weights_sha256, onnx}, "exemplars": [texts...],
                              "intent": {digest, config} | absent, "regex": {engine, databases: [meta...]},
                              "concept_data": {concept: {key: JSON value}}, "meta": {name: JSON value}}
    arrays/<name>.npy        float32/int arrays, np.save without pickle; <name> may hold '/' (sub-folders)
                             - "exemplars": [n, d] raw embeddings of manifest["exemplars"] (examples, counters and,
                               for +contrastive, the background sentences), in that order
                             - "intent/map": [d, d] the contrastive intent map (manifest["intent"]["digest"])
                             - "concepts/<concept>/<key>": per-concept data (see Artifact.put_concept)
    blobs/<name>             bytes: "regex/<i>.hs" serialised Hyperscan databases

Adding per-concept data (e.g. a trained concept's logistic-regression head) takes two functions registered once with
`register(writer=..., reader=...)`: the writer runs when a policy is compiled (cache miss, or `policyengine compile`)
and gets the fresh Engine and the Artifact to fill (`art.put_concept(name, "head_w", w)`,
`art.put_concept(name, "train_ids", ["r1", ...])`); the reader runs before an Engine is built from a cached or
bundled artifact and gets (artifact, policy) to hand the data over (`art.concept(name, "head_w")`), the way
intent/contrastive.preload hands over the intent map. Arrays are stored as .npy files, JSON values in the manifest.
No pickle anywhere: an artifact holds data only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .errors import PolicyEngineError

FORMAT = "policyengine-compiled/1"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


class ArtifactError(PolicyEngineError, RuntimeError):
    """An artifact is unreadable or incomplete."""


def _check_name(name: str) -> str:
    if not _NAME.match(name) or any(part in (".", "..") for part in name.split("/")):
        raise ValueError(f"artifact entry name {name!r}: use letters, digits, '_', '-', '.' and '/' between parts")
    return name


class Artifact:
    """A manifest (JSON) plus named numpy arrays and byte blobs. See the module docstring for the layout."""

    def __init__(self, manifest: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None,
                 blobs: dict[str, bytes] | None = None):
        self.manifest: dict[str, Any] = manifest if manifest is not None else {"format": FORMAT}
        self.arrays: dict[str, np.ndarray] = dict(arrays or {})
        self.blobs: dict[str, bytes] = dict(blobs or {})

    # -- entries -----------------------------------------------------------------------------------
    def put_array(self, name: str, value: np.ndarray) -> None:
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"artifact array {name!r}: object arrays are not stored (no pickle)")
        self.arrays[_check_name(name)] = arr

    def array(self, name: str) -> np.ndarray:
        try:
            return self.arrays[name]
        except KeyError:
            raise ArtifactError(f"compiled artifact has no array {name!r}") from None

    def put_blob(self, name: str, data: bytes) -> None:
        self.blobs[_check_name(name)] = bytes(data)

    def put_concept(self, concept: str, key: str, value: Any) -> None:
        """Per-concept data by name: a numpy array goes to arrays/concepts/<concept>/<key>.npy, anything else must be
        JSON (e.g. lists of training-row ids or texts) and goes to manifest["concept_data"][concept][key]."""
        _check_name(f"{concept}/{key}")
        if isinstance(value, np.ndarray):
            self.put_array(f"concepts/{concept}/{key}", value)
            self.manifest.setdefault("concept_data", {}).setdefault(concept, {}).pop(key, None)
        else:
            json.dumps(value)  # TypeError now rather than at save time
            self.manifest.setdefault("concept_data", {}).setdefault(concept, {})[key] = value
            self.arrays.pop(f"concepts/{concept}/{key}", None)

    def concept(self, concept: str, key: str, default: Any = None) -> Any:
        """The value put_concept stored (an array or a JSON value), or `default`."""
        arr = self.arrays.get(f"concepts/{concept}/{key}")
        if arr is not None:
            return arr
        return self.manifest.get("concept_data", {}).get(concept, {}).get(key, default)

    def concept_keys(self, concept: str) -> list[str]:
        prefix = f"concepts/{concept}/"
        keys = {n[len(prefix):] for n in self.arrays if n.startswith(prefix)}
        keys |= set(self.manifest.get("concept_data", {}).get(concept, {}))
        return sorted(keys)

    # -- storage -----------------------------------------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """Every file of the artifact by relative path (manifest.json, arrays/*.npy, blobs/*)."""
        out = {"manifest.json": json.dumps(self.manifest, indent=1, ensure_ascii=False).encode("utf-8")}
        for name, arr in sorted(self.arrays.items()):
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
            out[f"arrays/{name}.npy"] = buf.getvalue()
        for name, data in sorted(self.blobs.items()):
            out[f"blobs/{name}"] = data
        return out

    @classmethod
    def from_files(cls, names: Iterable[str], read: Callable[[str], bytes], prefix: str = "") -> "Artifact":
        try:
            manifest = json.loads(read(prefix + "manifest.json"))
        except (KeyError, OSError, ValueError) as e:
            raise ArtifactError(f"no readable manifest.json ({e})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArtifactError(f"unsupported compiled-artifact format {manifest.get('format')!r} "
                                f"(expected {FORMAT!r})" if isinstance(manifest, dict) else "manifest is not an object")
        arrays, blobs = {}, {}
        for n in names:
            if not n.startswith(prefix):
                continue
            rel = n[len(prefix):]
            try:
                if rel.startswith("arrays/") and rel.endswith(".npy"):
                    arrays[_check_name(rel[len("arrays/"):-len(".npy")])] = np.load(io.BytesIO(read(n)),
                                                                                    allow_pickle=False)
                elif rel.startswith("blobs/") and not rel.endswith("/"):
                    blobs[_check_name(rel[len("blobs/"):])] = read(n)
            except (ValueError, OSError, KeyError) as e:
                raise ArtifactError(f"unreadable entry {rel!r} ({e})") from None
        return cls(manifest, arrays, blobs)

    def save_dir(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: a temporary folder renamed into place (a concurrent writer of the same key wins or
        loses as a whole; readers never see half an artifact)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        for rel, data in self.files().items():
            f = tmp / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)
        try:
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (path / "manifest.json").is_file():
                raise
        return path

    @classmethod
    def load_dir(cls, path: str | os.PathLike[str]) -> "Artifact":
        path = Path(path)
        names = [f.relative_to(path).as_posix() for f in path.rglob("*") if f.is_file()]
        return cls.from_files(names, lambda n: (path / n).read_bytes())

    def write_zip(self, z: zipfile.ZipFile, prefix: str = "") -> None:
        for rel, data in self.files().items():
            z.writestr(prefix + rel, data)

    @classmethod
    def from_zip(cls, z: zipfile.ZipFile, prefix: str = "") -> "Artifact":
        return cls.from_files(z.namelist(), z.read, prefix)


# -- extension hooks (per-concept data of other compilers, e.g. trained concepts) -------------------------------

Writer = Callable[[Any, Artifact], None]  # (engine just compiled, artifact being written)
Reader = Callable[[Artifact, Any], None]  # (artifact being loaded, CompiledPolicy) -> hand data over
_WRITERS: list[Writer] = []
_READERS: list[Reader] = []


def register(writer: Writer | None = None, reader: Reader | None = None) -> None:
    """Add a writer (called with (engine, artifact) after a policy is compiled, to store more entries) and/or a reader
    (called with (artifact, policy) before an Engine is built from a stored artifact). Idempotent per function."""
    if writer is not None and writer not in _WRITERS:
        _WRITERS.append(writer)
    if reader is not None and reader not in _READERS:
        _READERS.append(reader)


# trained concepts (matchers/heads.py): each head's weights, bias, digest and training-row vectors (in the head's
# space, for the nearest-row explanations) go into the artifact by concept name; at load they are handed to
# heads.preload, so a warm start or a bundle neither embeds the training rows nor imports scikit-learn.

def _write_heads(engine: Any, art: "Artifact") -> None:
    for name, head in sorted((getattr(engine._index, "heads", None) or {}).items()):
        art.put_concept(name, "head_w", np.asarray(head.w, dtype=np.float32))
        art.put_concept(name, "head_b", float(head.b))
        art.put_concept(name, "head_digest", head.digest)
        art.put_concept(name, "row_vecs", np.asarray(head.vecs, dtype=np.float32))
        art.put_concept(name, "row_ids", [r.id for r in head.rows])


def _read_heads(art: "Artifact", policy: Any) -> None:
    for name, c in policy.concepts.items():
        digest = art.concept(name, "head_digest")
        if not getattr(c, "trained", False) or not isinstance(digest, str):
            continue
        w, b, vecs = art.concept(name, "head_w"), art.concept(name, "head_b"), art.concept(name, "row_vecs")
        if isinstance(w, np.ndarray) and isinstance(b, (int, float)) and isinstance(vecs, np.ndarray):
            from .matchers import heads

            heads.preload(digest, w, float(b), vecs)


register(writer=_write_heads, reader=_read_heads)


# -- the cache ----------------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """The cache root (policyengine/cache.py); compiled artifacts live in its `compiled` folder."""
    from .cache import cache_dir as root

    return root()


def cache_enabled() -> bool:
    """$POLICYENGINE_COMPILED_CACHE=0 turns the compiled-policy cache off (every Engine embeds its exemplars)."""
    return os.environ.get("POLICYENGINE_COMPILED_CACHE", "1").strip().lower() not in ("0", "off", "false", "no")


def cache_key(policy: Any, space_id: str) -> str:
    """What a compiled artifact depends on: format, policy digest, model id (with its +space), embedding space."""
    h = hashlib.sha256("\0".join((FORMAT, policy.digest, policy.model, space_id)).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def entry_dir(key: str) -> Path:
    return cache_dir() / "compiled" / key[:32]


def load_cached(key: str) -> Artifact | None:
    """The cached artifact for `key`, or None (missing, or unreadable: then it is rebuilt, never trusted)."""
    path = entry_dir(key)
    if not (path / "manifest.json").is_file():
        return None
    try:
        art = Artifact.load_dir(path)
    except (ArtifactError, OSError):
        return None
    return art if art.manifest.get("key") == key else None


def store_cached(key: str, art: Artifact) -> Path | None:
    try:
        return art.save_dir(entry_dir(key))
    except OSError:  # read-only or full cache: compile again next time
        return None


# -- building and applying ----------------------------------------------------------------------------------------

class Recorder:
    """Wraps an embedder and remembers the vectors of the texts it was asked for while the policy is compiled."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.model_id = inner.model_id
        self.seen: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        vecs = self.inner.encode(texts)
        for t, v in zip(texts, vecs):
            self.seen.setdefault(t, v)
        return vecs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["inner"], name)


class Precomputed:
    """Serves stored vectors for texts compiled before; any other text goes to the real embedder."""

    def __init__(self, inner: Any, table: Mapping[str, np.ndarray]):
        self.inner = inner
        self.model_id = inner.model_id
        self.table = table

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if texts and all(t in self.table for t in texts):
            return np.ascontiguousarray(np.stack([self.table[t] for t in texts]), dtype=np.float32)
        return self.inner.encode(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["inner"], name)


def model_record(policy: Any, embedder: Any) -> dict[str, Any]:
    """Which model and embedding space the vectors come from; for ONNX, where the exported model lives in the cache
    (content-addressed by the weights' sha256)."""
    space = getattr(embedder, "space_id", None)
    backend = getattr(embedder, "backend", "torch")
    weights = space.split(":", 1)[1] if space and ":" in space else None
    rec: dict[str, Any] = {"id": policy.model, "backend": backend, "space": space, "weights_sha256": weights}
    if backend.startswith("onnx") and weights:
        rec["onnx"] = f"onnx/{weights[:16]}/" + ("model-int8.onnx" if backend.endswith("int8") else "model-fp32.onnx")
    return rec


def build_artifact(engine: Any, recorder: Recorder | None, key: str | None = None) -> Artifact:
    """The artifact of an Engine just built with `recorder` as its index embedder."""
    policy = engine.policy
    art = Artifact()
    m = art.manifest
    m["key"] = key
    m["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    m["policy"] = {"name": policy.name, "version": policy.version, "digest": policy.digest, "model": policy.model}
    m["model"] = model_record(policy, recorder.inner) if recorder is not None else None
    texts = sorted(recorder.seen) if recorder is not None else []
    m["exemplars"] = texts
    if texts:
        art.put_array("exemplars", np.stack([recorder.seen[t] for t in texts]).astype(np.float32))  # type: ignore[union-attr]
    index = engine._index
    if index is not None and index.space_map is not None:
        m["intent"] = {"digest": index.space_info["digest"], "config": index.space_info["config"],
                       "trained_seconds": index.space_info.get("seconds")}
        art.put_array("intent/map", index.space_map)
    scanner = engine.scanner
    states = scanner.to_state() if scanner is not None else []
    m["regex"] = {"engine": scanner.engine if scanner else "re", "requested": engine.regex_engine,
                  "fallbacks": [[f.name, f.reason] for f in scanner.fallbacks] if scanner else [],
                  "databases": [{k: v for k, v in st.items() if k != "db"} for st in states]}
    for i, st in enumerate(states):
        art.put_blob(f"regex/{i}.hs", st["db"])
    for w in _WRITERS:
        w(engine, art)
    return art


def apply_artifact(art: Artifact, policy: Any, regex_engine: str) -> dict[str, np.ndarray]:
    """Hand a stored artifact's data over before an Engine is built from it: the intent map, the regex databases,
    the registered readers' data. Returns the exemplar table (text -> raw vector) for Precomputed."""
    m = art.manifest
    if m.get("policy", {}).get("digest") != policy.digest:
        raise ArtifactError(f"compiled for policy {m.get('policy', {}).get('digest')}, not {policy.digest}")
    texts = m.get("exemplars") or []
    vecs = art.arrays.get("exemplars")
    if texts and (vecs is None or len(vecs) != len(texts)):
        raise ArtifactError(f"{len(texts)} exemplars but {0 if vecs is None else len(vecs)} vectors")
    if m.get("intent") and "intent/map" in art.arrays:
        from .intent import contrastive

        contrastive.preload(m["intent"]["digest"], art.arrays["intent/map"])
    dbs = m.get("regex", {}).get("databases") or []
    if dbs and regex_engine != "re":
        from .matchers.multiregex import PolicyScanner

        states = []
        for i, meta in enumerate(dbs):
            blob = art.blobs.get(f"regex/{i}.hs")
            if blob is None:
                raise ArtifactError(f"regex database {i} is missing")
            states.append({**meta, "db": blob})
        PolicyScanner.preload(policy.patterns, regex_engine, states)
    for r in _READERS:
        r(art, policy)
    return dict(zip(texts, vecs)) if texts else {}


def cached_encode(embedder: Any, texts: Sequence[str], tag: str) -> np.ndarray:
    """`embedder.encode(texts)`, kept in the compiled cache under sha256(format, tag, embedding space, texts): for
    tools that embed the same fixed texts on every run (lint's semantic rules: a policy's examples and the benign
    corpus). Embedders that do not name their space (`space_id`) are called directly."""
    texts = list(texts)
    space = getattr(embedder, "space_id", None)
    if not isinstance(space, str) or not texts or not cache_enabled():
        return embedder.encode(texts)
    h = hashlib.sha256("\0".join((FORMAT, tag, space)).encode("utf-8", "surrogatepass"))
    h.update("\1".join(texts).encode("utf-8", "surrogatepass"))
    key = h.hexdigest()
    art = load_cached(key)
    if art is not None and art.manifest.get("count") == len(texts) and "vectors" in art.arrays \
            and len(art.arrays["vectors"]) == len(texts):
        return art.arrays["vectors"]
    vecs = np.ascontiguousarray(embedder.encode(texts), dtype=np.float32)
    art = Artifact()
    art.manifest.update({"key": key, "tag": tag, "space": space, "count": len(texts),
                         "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    art.put_array("vectors", vecs)
    store_cached(key, art)
    return vecs
