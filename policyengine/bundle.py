"""Compiled bundles: a policy, its sources and everything compiling it computed, in one portable file.

A bundle is a zip file:
  manifest.json       format, policy name/version/digest, the entry file's name as compiled (`entry`), where the
                      entry was relative to the bundle's folder (`entry_from_bundle`), every source file's sha256 by
                      path relative to the entry's folder, model id/backend/weights sha256, concept exemplar counts,
                      the exemplar texts, regex engine and fallbacks, intent/finetune stamps
  sources/<relpath>   the policy files and word lists, by path relative to the entry file's folder
  compiled/...        the compiled artifact (policyengine/runtime.py): exemplar vectors, the contrastive intent map,
                      the Hyperscan databases and any per-concept data registered with runtime.register
  model/              the ONNX model the vectors were computed with (model-fp32.onnx, tokenizer.json, meta.json),
                      for bundles of the onnx backends: a bundle then needs neither torch nor the model package
  finetune/*          the fine-tuned model's files when the model is "<base>+finetune" (docs/intent.md): unpacked at
                      load into the fine-tune cache (or a temporary directory); exemplars then hold tuned vectors

`Engine.from_bundle(path)` loads anywhere: the policy is compiled from the bundle's own copy of its sources (same
digest: the digest hashes content and relative paths only), nothing is embedded or trained again. When the sources
are present beside the bundle (the entry file at `entry_from_bundle` from the bundle's folder, or `policy_path=`),
they must still be what the bundle was compiled from, or loading fails with BundleError ("stale bundle") naming the
changed files. No pickle: a bundle holds data only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from .errors import PolicyEngineError

FORMAT = "policyengine-bundle/2"


class BundleError(PolicyEngineError, RuntimeError):
    """The bundle cannot be used: unreadable, built for another policy/model, or stale."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _source_files(policy: Any, entry: str | os.PathLike[str]) -> dict[str, Path]:
    """Every file the policy was compiled from (policy files and word lists): relative path (to the entry file's
    folder, '/'-separated) -> real path. `entry` is the path the policy was compiled from."""
    from . import nodes as n

    root = Path(os.path.realpath(entry)).parent
    base_display = os.path.dirname(policy.entry)
    out: dict[str, Path] = {}
    for i, f in enumerate(policy.files):
        if i == 0:
            real = Path(os.path.realpath(entry))
        else:  # imports are shown relative to the entry's display folder (compiler._load)
            real = Path(os.path.realpath(root / os.path.relpath(f.path, base_display or ".")))
        if not real.is_file():
            continue
        out[Path(os.path.relpath(real, root)).as_posix()] = real
        files = [item.file.value for item in f.of(n.WordsDef) if item.file is not None]
        files += [t.path.value for item in f.of(n.ConceptDef) for t in (getattr(item, "train", None) or ())]
        for value in files:  # word lists and training files, relative to the file that names them
            w = Path(os.path.realpath(real.parent / value))
            if w.is_file():
                out[Path(os.path.relpath(w, root)).as_posix()] = w
    return dict(sorted(out.items()))


def _weights_sha256(model_id: str) -> str:
    from .matchers.embedders import resolve_model_path, split_model_id
    from .matchers.onnx_backend import weights_digest

    return weights_digest(resolve_model_path(split_model_id(model_id)[0]))


def _onnx_files(embedder: Any) -> dict[str, Path] | None:
    """The exported ONNX model behind an embedder of the onnx backends (the file, its tokenizer and meta)."""
    space = getattr(embedder, "space_id", None)
    backend = getattr(embedder, "backend", "")
    if not (isinstance(space, str) and backend.startswith("onnx") and ":" in space):
        return None
    from .matchers.onnx_backend import model_dir

    d = model_dir(space.split(":", 1)[1])
    name = "model-int8.onnx" if backend.endswith("int8") else "model-fp32.onnx"
    files = {name: d / name, "tokenizer.json": d / "tokenizer.json", "meta.json": d / "meta.json"}
    return files if all(f.is_file() for f in files.values()) else None


def write_bundle(policy_path: str | os.PathLike[str], out: str | os.PathLike[str], *, backend: str | None = None,
                 threads: int | None = None, regex_engine: str = "auto", embedder: Any | None = None,
                 include_model: bool = True) -> dict[str, Any]:
    """Compile `policy_path` (from the compiled-policy cache when it holds it), and write the bundle to `out`.
    `include_model`: carry the ONNX model for the onnx backends (~90 MB fp32), so the bundle loads where neither
    torch nor the model package is installed. Returns the manifest."""
    from . import __version__, runtime
    from .compiler import compile_policy
    from .engine import Engine, default_backend, policy_embedder

    policy = compile_policy(policy_path)
    needed = {k for k in policy.concepts if k in policy.used_concepts}
    kwargs: dict[str, Any] = {"threads": threads, "regex_engine": regex_engine}
    model_embedder = None
    recorder = None
    if needed:
        model_embedder = policy_embedder(policy, backend, threads or 1, given=embedder)
    if model_embedder is not None and isinstance(getattr(model_embedder, "space_id", None), str):
        engine = Engine(policy, embedder=model_embedder, cache=True, **kwargs)  # the cache's artifact, or a new one
        art = engine.artifact
    else:
        if model_embedder is not None:
            recorder = runtime.Recorder(model_embedder)
            kwargs["embedder"] = recorder
        engine = Engine(policy, cache=False, **kwargs)
        art = runtime.build_artifact(engine, recorder)
    sources = _source_files(policy, policy_path)
    m = art.manifest
    try:
        entry_from_bundle: str | None = Path(os.path.relpath(os.path.realpath(policy_path),
                                                             os.path.dirname(os.path.abspath(out)))).as_posix()
    except ValueError:  # another drive (Windows)
        entry_from_bundle = None
    model = None
    if needed:
        model = {"id": policy.model,
                 "backend": getattr(model_embedder, "backend",
                                    "torch" if embedder is not None else backend or default_backend()),
                 "weights_sha256": (m.get("model") or {}).get("weights_sha256")
                 or (_weights_sha256(policy.model) if embedder is None else "(embedder given)")}
    onnx = _onnx_files(model_embedder) if include_model and needed and not getattr(model_embedder, "tuned", False) \
        else None
    manifest = {
        "format": FORMAT, "policyengine": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "policy": {"name": policy.name, "version": policy.version, "digest": policy.digest, "entry": policy.entry,
                   "entry_file": Path(os.path.realpath(policy_path)).name, "entry_from_bundle": entry_from_bundle,
                   "sources": {rel: _sha256(f.read_bytes()) for rel, f in sources.items()}},
        "model": model,
        "concepts": {k: {"examples": len(policy.concepts[k].examples), "counter": len(policy.concepts[k].counter)}
                     for k in sorted(needed)},
        "exemplars": m.get("exemplars", []),
        "regex": m.get("regex"),
        "onnx": {"file": "model/" + next(n for n in onnx if n.endswith(".onnx"))} if onnx else None,
    }
    if m.get("intent"):
        manifest["intent"] = m["intent"]
    tuned = getattr(model_embedder, "directory", None) if model_embedder is not None else None
    if tuned is not None:  # the fine-tuned model is an artifact of compilation too
        info = model_embedder.info  # type: ignore[union-attr]
        manifest["finetune"] = {"digest": info["digest"], "config": info["config"],
                                "trained_seconds": info.get("seconds")}
    tmp = Path(str(out) + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False))
            for rel, f in sources.items():
                z.write(f, "sources/" + rel)
            art.write_zip(z, "compiled/")
            if onnx:
                for name, f in onnx.items():  # weights barely deflate; storing them keeps compile and load fast
                    z.write(f, "model/" + name, compress_type=zipfile.ZIP_STORED)
            if tuned is not None:
                for f in sorted(Path(tuned).rglob("*")):
                    if f.is_file():
                        z.write(f, "finetune/" + f.relative_to(tuned).as_posix(), compress_type=zipfile.ZIP_STORED)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{path}: unsupported bundle format {got!r} (expected {FORMAT!r}); "
                          "rebuild it with `policyengine compile`")
    return manifest


def _rebuild(path: Any) -> str:
    return f"rebuild it: policyengine compile POLICY -o {path}"


def _beside(path: str | os.PathLike[str], manifest: dict[str, Any]) -> Path | None:
    """The entry file the bundle was compiled from, if it is still where it was relative to the bundle's folder."""
    rel = manifest["policy"].get("entry_from_bundle")
    if not rel:
        return None
    cand = Path(os.path.dirname(os.path.abspath(path))) / rel
    return cand if cand.is_file() else None


def fresh_policy(path: str | os.PathLike[str], manifest: dict[str, Any],
                 policy_path: str | os.PathLike[str] | None = None) -> Any:
    """The policy of a bundle, compiled. From `policy_path`, or the sources beside the bundle when they are there
    (BundleError "stale bundle" when they changed since), else from the bundle's own copy of its sources."""
    from .compiler import compile_policy
    from .diagnostics import PolicyError

    info = manifest["policy"]
    entry = Path(policy_path) if policy_path else _beside(path, manifest)
    if policy_path and not entry.is_file():  # type: ignore[union-attr]
        raise BundleError(f"{path}: policy_path {str(policy_path)!r} is missing")
    if entry is not None:
        root = Path(os.path.realpath(entry)).parent
        before: dict[str, str] = info["sources"]
        now = {rel: _sha256((root / rel).read_bytes()) for rel in before if (root / rel).is_file()}
        changed = sorted(rel for rel in before if before[rel] != now.get(rel))
        if changed:
            raise BundleError(f"{path}: stale bundle: the policy changed since it was compiled "
                              f"({', '.join(changed)}); {_rebuild(path)}")
        policy = compile_policy(entry, display=info.get("entry"))
        if policy.digest != info["digest"]:  # e.g. a new import or word list beside the bundle
            raise BundleError(f"{path}: stale bundle: the policy changed since it was compiled (digest "
                              f"{info['digest'][:19]}, now {policy.digest[:19]}); {_rebuild(path)}")
        return policy
    try:
        with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory(prefix="pe-bundle-") as tmp:
            names = [n for n in z.namelist() if n.startswith("sources/") and not n.endswith("/")]
            for n in names:
                rel = n[len("sources/"):]
                if ".." in Path(rel).parts or Path(rel).is_absolute() or "\\" in rel:
                    raise BundleError(f"{path}: corrupt bundle (a source file points outside its folder); "
                                      f"{_rebuild(path)}")
                data = z.read(n)
                if info["sources"].get(rel) != _sha256(data):
                    raise BundleError(f"{path}: corrupt bundle (source {rel} does not match its sha256); "
                                      f"{_rebuild(path)}")
                dest = Path(tmp) / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            entry_file = Path(tmp) / info.get("entry_file", "")
            if not entry_file.is_file():
                raise BundleError(f"{path}: corrupt bundle (its policy sources are missing); {_rebuild(path)}")
            try:
                policy = compile_policy(entry_file, display=info.get("entry"))
            except PolicyError as e:
                raise BundleError(f"{path}: the bundle's policy does not compile with this version of policyengine:"
                                  f"\n{e.render()}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(f"{path}: not a policyengine bundle ({e})") from None
    if policy.digest != info["digest"]:
        raise BundleError(f"{path}: corrupt bundle (its sources compile to digest {policy.digest[:19]}, the manifest "
                          f"says {info['digest'][:19]}); {_rebuild(path)}")
    return policy


def _bundle_onnx_embedder(z: zipfile.ZipFile, manifest: dict[str, Any], path: Any, threads: int) -> Any:
    """The ONNX model carried by the bundle: installed into the cache's content-addressed model folder (unless the
    same export is already there), or a temporary folder when the cache is read-only; loaded once per process."""
    from .matchers.embedders import shared_embedder
    from .matchers.onnx_backend import OnnxEmbedder, model_dir

    meta = json.loads(z.read("model/meta.json"))
    weights = meta["weights_sha256"]
    name = manifest["onnx"]["file"].split("/", 1)[1]
    target = model_dir(weights)
    have = target / name
    ok = False
    if have.is_file() and (target / "tokenizer.json").is_file():
        try:
            ok = json.loads((target / "meta.json").read_text()).get("weights_sha256") == weights
        except (OSError, ValueError):
            ok = False
        ok = ok and have.stat().st_size == z.getinfo(manifest["onnx"]["file"]).file_size
    if not ok:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError:
            target = Path(tempfile.mkdtemp(prefix="pe-onnx-"))
        for n in (name, "tokenizer.json"):
            tmp = target / f".{n}.{os.getpid()}.tmp"
            with z.open("model/" + n) as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            os.replace(tmp, target / n)
        if not (target / "meta.json").is_file():
            (target / "meta.json").write_bytes(z.read("model/meta.json"))
    file = target / name
    backend = "onnx-int8" if name.endswith("int8.onnx") else "onnx"
    return shared_embedder(f"{backend}@{file}", manifest["model"]["id"], threads,
                           lambda base, t: OnnxEmbedder(base, threads=t, model_file=file,
                                                        quantized=backend == "onnx-int8"))


def load_engine(path: str | os.PathLike[str], *, policy_path: str | os.PathLike[str] | None = None,
                threads: int | None = None, embedder: Any | None = None, **kwargs: Any) -> Any:
    """Engine.from_bundle: see the module docstring."""
    from . import runtime
    from .engine import Engine, policy_embedder

    manifest = read_manifest(path)
    policy = fresh_policy(path, manifest, policy_path)
    regex_engine = kwargs.pop("regex_engine", (manifest.get("regex") or {}).get("requested", "auto"))
    kwargs.pop("backend", None)
    kwargs.pop("cache", None)
    try:
        with zipfile.ZipFile(path) as z:
            art = runtime.Artifact.from_zip(z, "compiled/")
            table = runtime.apply_artifact(art, policy, regex_engine)
            if manifest.get("finetune"):
                _unpack_finetune(z, manifest["finetune"]["digest"], path)
            model = manifest.get("model")
            if model:
                if model["id"] != policy.model:
                    raise BundleError(f"{path}: built for model {model['id']!r}, the policy now uses "
                                      f"{policy.model!r}; {_rebuild(path)}")
                if embedder is None and manifest.get("onnx") and not manifest.get("finetune"):
                    embedder = _bundle_onnx_embedder(z, manifest, path, threads or 1)
                elif embedder is None:
                    now = _weights_sha256(policy.model)
                    if now != model["weights_sha256"]:
                        raise BundleError(f"{path}: stale bundle: the installed weights of {policy.model!r} changed "
                                          f"since it was compiled (sha256 {model['weights_sha256'][:12]}..., now "
                                          f"{now[:12]}...); {_rebuild(path)}")
                    # for "+finetune", the tuned model unpacked above: loaded, never trained
                    embedder = policy_embedder(policy, model["backend"], threads or 1)
                elif getattr(embedder, "backend", "torch") != model["backend"]:
                    raise BundleError(f"{path}: built with the {model['backend']} backend, the given embedder is "
                                      f"{getattr(embedder, 'backend', 'torch')}; {_rebuild(path)}")
                embedder = runtime.Precomputed(embedder, table)
    except runtime.ArtifactError as e:
        raise BundleError(f"{path}: corrupt bundle ({e}); {_rebuild(path)}") from None
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise BundleError(f"{path}: corrupt bundle ({e}); {_rebuild(path)}") from None
    engine = Engine(policy, embedder=embedder, threads=threads, regex_engine=regex_engine, cache=False, **kwargs)
    engine.bundle = str(path)
    engine.artifact = art
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
