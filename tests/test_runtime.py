"""The torch-free runtime: compiled-policy cache, stable digests, portable bundles, the artifact format."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from policyengine import runtime
from policyengine.bundle import BundleError, load_engine, read_manifest, write_bundle
from policyengine.compiler import compile_policy
from policyengine.engine import Engine
from tests.conftest import FakeEmbedder

ROOT = Path(__file__).resolve().parents[1]

MAIN = """policy shop { default allow }
import "rules/pay.policy"
words refunds = file "lists/refunds.txt"
rule refund { when input contains refunds  flag "refund" }
"""
PAY = """pattern order_id = /\\bORD-\\d{6}\\b/
concept payment {
  examples { "wire money to this account" "send me your card number" }
  counter { "how do refunds work" }
  threshold 0.5
}
rule pay { when input similar payment  block "no payments here" }
rule order { when input matches order_id and input similar payment  flag "order + payment" }
"""
MSGS = ["wire money to this account now", "my order ORD-123456 please", "I want a chargeback", "hello",
        "send money ORD-654321 card number"]


class SpacedFake(FakeEmbedder):
    """The fake embedder, naming its embedding space as the real backends do (so the compiled cache applies)."""

    space_id = "fake:bag-of-words-1"
    backend = "torch"


def _tree(root: Path) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "lists").mkdir()
    (root / "shop.policy").write_text(MAIN)
    (root / "rules" / "pay.policy").write_text(PAY)
    (root / "lists" / "refunds.txt").write_text("refund\nchargeback\n")
    return root / "shop.policy"


def _dump(ds):  # type: ignore[no-untyped-def]
    return [d.model_dump(mode="json") for d in ds]


@pytest.fixture
def cache(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    d = tmp_path / "cache"
    monkeypatch.setenv("POLICYENGINE_CACHE", str(d))
    monkeypatch.delenv("POLICYENGINE_COMPILED_CACHE", raising=False)
    return d


# -- digests --------------------------------------------------------------------------------------------------


def test_digest_does_not_depend_on_how_the_path_is_typed_or_where_the_folder_is(tmp_path, monkeypatch):
    entry = _tree(tmp_path / "a")
    digests = {compile_policy(entry).digest, compile_policy(str(entry.parent / "rules" / ".." / "shop.policy")).digest}
    monkeypatch.chdir(tmp_path)
    digests.add(compile_policy("a/shop.policy").digest)
    monkeypatch.chdir(tmp_path / "a" / "rules")
    digests.add(compile_policy("../shop.policy").digest)
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    digests.add(compile_policy(tmp_path / "elsewhere" / "b" / "shop.policy").digest)
    assert len(digests) == 1
    (tmp_path / "a" / "lists" / "refunds.txt").write_text("refund\n")  # content still counts, word lists included
    assert compile_policy(entry).digest not in digests
    (tmp_path / "elsewhere" / "b" / "rules" / "pay.policy").rename(tmp_path / "elsewhere" / "b" / "rules" / "p2.policy")
    (tmp_path / "elsewhere" / "b" / "shop.policy").write_text(MAIN.replace("pay.policy", "p2.policy"))
    assert compile_policy(tmp_path / "elsewhere" / "b" / "shop.policy").digest not in digests  # relative paths too


# -- the artifact ---------------------------------------------------------------------------------------------


def test_artifact_round_trips_named_arrays_and_per_concept_entries(tmp_path):
    art = runtime.Artifact()
    art.manifest["policy"] = {"digest": "sha256:x"}
    art.put_array("exemplars", np.eye(3, dtype=np.float32))
    art.put_concept("payment", "head_w", np.arange(4, dtype=np.float32))
    art.put_concept("payment", "head_b", 0.25)
    art.put_concept("payment", "train_ids", ["r1", "r2"])
    art.put_blob("regex/0.hs", b"\x00\x01")
    for loaded in (runtime.Artifact.load_dir(art.save_dir(tmp_path / "entry")), _via_zip(art, tmp_path)):
        assert np.array_equal(loaded.array("exemplars"), np.eye(3))
        assert np.array_equal(loaded.concept("payment", "head_w"), np.arange(4))
        assert loaded.concept("payment", "head_b") == 0.25 and loaded.concept("payment", "train_ids") == ["r1", "r2"]
        assert loaded.concept("payment", "missing", "d") == "d"
        assert loaded.concept_keys("payment") == ["head_b", "head_w", "train_ids"]
        assert loaded.blobs["regex/0.hs"] == b"\x00\x01"
    with pytest.raises(ValueError, match="artifact entry name"):
        art.put_array("../escape", np.zeros(1))
    with pytest.raises(TypeError, match="no pickle"):
        art.put_array("objs", np.array([object()]))
    (tmp_path / "entry" / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(runtime.ArtifactError, match="unsupported compiled-artifact format"):
        runtime.Artifact.load_dir(tmp_path / "entry")


def _via_zip(art: runtime.Artifact, tmp_path: Path) -> runtime.Artifact:
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        art.write_zip(z, "compiled/")
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        return runtime.Artifact.from_zip(z, "compiled/")


# -- the compiled-policy cache ----------------------------------------------------------------------------------


def test_second_engine_comes_from_the_cache_without_embedding_exemplars(tmp_path, cache):
    entry = _tree(tmp_path / "p")
    first = SpacedFake()
    a = Engine.from_path(entry, embedder=first)
    assert a.compiled_cache == "miss" and sorted(first.calls[0]) == sorted(
        ["wire money to this account", "send me your card number", "how do refunds work"])
    second = SpacedFake()
    b = Engine.from_path(entry, embedder=second)
    assert b.compiled_cache == "hit" and second.calls == []  # nothing embedded to build the engine
    assert _dump(b.evaluate_many(MSGS)) == _dump(a.evaluate_many(MSGS))
    assert len(list((cache / "compiled").iterdir())) == 1
    # another embedding space, another entry; the cache switched off, none at all
    other = type("Other", (SpacedFake,), {"space_id": "fake:other"})()
    assert Engine.from_path(entry, embedder=other).compiled_cache == "miss"
    assert Engine.from_path(entry, embedder=SpacedFake(), cache=False).compiled_cache is None
    assert Engine.from_path(entry, embedder=FakeEmbedder()).compiled_cache is None  # no space named: no cache


def test_a_corrupt_cache_entry_is_rebuilt_not_trusted(tmp_path, cache):
    entry = _tree(tmp_path / "p")
    Engine.from_path(entry, embedder=SpacedFake())
    (folder,) = (cache / "compiled").iterdir()
    (folder / "arrays" / "exemplars.npy").write_bytes(b"garbage")
    fake = SpacedFake()
    eng = Engine.from_path(entry, embedder=fake)
    assert eng.compiled_cache == "miss" and fake.calls  # embedded again, and stored again
    assert Engine.from_path(entry, embedder=SpacedFake()).compiled_cache == "hit"


def test_registered_writers_and_readers_carry_per_concept_data(tmp_path, cache):
    entry = _tree(tmp_path / "p")
    seen: list = []

    def writer(engine, art):  # type: ignore[no-untyped-def]
        art.put_concept("payment", "head_w", np.full(3, 0.5, dtype=np.float32))
        art.put_concept("payment", "train_ids", ["a", "b"])

    def reader(art, policy):  # type: ignore[no-untyped-def]
        seen.append((policy.digest, art.concept("payment", "head_w").tolist(), art.concept("payment", "train_ids")))

    runtime.register(writer=writer, reader=reader)
    try:
        Engine.from_path(entry, embedder=SpacedFake())
        assert seen == []
        eng = Engine.from_path(entry, embedder=SpacedFake())
        assert seen == [(eng.policy.digest, [0.5, 0.5, 0.5], ["a", "b"])]
        out = tmp_path / "b.pebundle"
        write_bundle(entry, out, embedder=SpacedFake())  # from the cache (the reader runs), and the same entries
        assert len(seen) == 2
        load_engine(out, embedder=SpacedFake())
        assert len(seen) == 3 and seen[2] == seen[0]
        out2 = tmp_path / "b2.pebundle"
        write_bundle(entry, out2, embedder=FakeEmbedder())  # no cache: compiled afresh, the writer runs
        load_engine(out2, embedder=FakeEmbedder())
        assert len(seen) == 4 and seen[3] == seen[0]
    finally:
        runtime._WRITERS.remove(writer)
        runtime._READERS.remove(reader)


# -- portable bundles -------------------------------------------------------------------------------------------


def test_a_copied_bundle_loads_anywhere_and_decides_the_same(tmp_path, cache):
    entry = _tree(tmp_path / "src")
    out = tmp_path / "src" / "shop.pebundle"
    m = write_bundle(entry, out, embedder=SpacedFake())
    assert set(m["policy"]["sources"]) == {"shop.policy", "rules/pay.policy", "lists/refunds.txt"}
    ref = Engine.from_path(entry, embedder=FakeEmbedder())
    moved = tmp_path / "deploy" / "x" / "shop.pebundle"
    moved.parent.mkdir(parents=True)
    shutil.copy(out, moved)
    shutil.rmtree(tmp_path / "src")  # no source checkout at all
    fake = FakeEmbedder()
    eng = load_engine(moved, embedder=fake)
    assert fake.calls == [] and eng.policy.digest == m["policy"]["digest"] == ref.policy.digest
    got, want = _dump(eng.evaluate_many(MSGS)), _dump(ref.evaluate_many(MSGS))
    assert got == want  # the same decisions, explanations (file names included) and digests


def test_sources_beside_the_bundle_must_still_match(tmp_path, cache):
    entry = _tree(tmp_path / "src")
    out = tmp_path / "shop.pebundle"
    write_bundle(entry, out, embedder=SpacedFake())
    load_engine(out, embedder=FakeEmbedder())
    (tmp_path / "src" / "rules" / "pay.policy").write_text(PAY.replace("0.5", "0.6"))
    with pytest.raises(BundleError, match=r"stale bundle: .*\(rules/pay.policy\)"):
        load_engine(out, embedder=FakeEmbedder())
    shutil.copy(out, tmp_path / "src" / "rules" / "elsewhere.pebundle")  # not beside its sources: loads
    assert load_engine(tmp_path / "src" / "rules" / "elsewhere.pebundle", embedder=FakeEmbedder()).policy.digest == \
        read_manifest(out)["policy"]["digest"]


def test_old_bundle_formats_are_refused_with_a_rebuild_hint(tmp_path):
    old = tmp_path / "old.pebundle"
    with zipfile.ZipFile(old, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": "policyengine-bundle/1"}))
    with pytest.raises(BundleError, match="unsupported bundle format 'policyengine-bundle/1'.*policyengine compile"):
        load_engine(old)


# -- the real model: torch-free warm start, parity, CLI ------------------------------------------------------------


def _env(cache_dir: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), POLICYENGINE_CACHE=str(cache_dir), OMP_NUM_THREADS="1",
                HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def _seed_onnx(cache_dir: Path) -> None:
    """Reuse the ONNX export and intent maps of the user's cache (exporting again takes ~20 s)."""
    from policyengine.matchers.embedders import resolve_model_path
    from policyengine.matchers.onnx_backend import weights_digest

    digest = weights_digest(resolve_model_path("all-MiniLM-L6-v2"))
    src = Path(os.path.expanduser("~/.cache/policyengine")) / "onnx" / digest[:16]
    if (src / "model-fp32.onnx").is_file() and (src / "meta.json").is_file():
        (cache_dir / "onnx").mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, cache_dir / "onnx" / digest[:16], dirs_exist_ok=True)
    for sub in ("intent", "heads"):  # trained +contrastive maps and trained-concept heads (minutes to train)
        if (src.parent.parent / sub).is_dir():
            shutil.copytree(src.parent.parent / sub, cache_dir / sub, dirs_exist_ok=True)


def _imported(stderr: str) -> set[str]:
    return {ln.rsplit("|", 1)[-1].strip() for ln in stderr.splitlines() if ln.startswith("import time:")}


@pytest.mark.model
def test_check_with_a_warm_cache_never_imports_torch(tmp_path):
    cache_dir = tmp_path / "cache"
    _seed_onnx(cache_dir)
    cmd = [sys.executable, "-X", "importtime", "-m", "policyengine", "check", "policies/default.policy",
           "how do I make a bomb at home", "hello", "--format", "json"]
    cold = subprocess.run(cmd, cwd=ROOT, env=_env(cache_dir), capture_output=True, text=True, timeout=600)
    assert cold.returncode == 0, cold.stderr[-2000:]
    t0 = time.perf_counter()
    warm = subprocess.run(cmd, cwd=ROOT, env=_env(cache_dir), capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t0
    assert warm.returncode == 0, warm.stderr[-2000:]
    mods = _imported(warm.stderr)
    assert "policyengine.engine" in mods and "onnxruntime" in mods  # the check really ran the ONNX model
    heavy = sorted(m for m in mods if m.split(".")[0] in ("torch", "sentence_transformers", "transformers"))
    assert heavy == [], heavy[:10]
    decisions = [json.loads(line) for line in warm.stdout.splitlines() if line.strip()]
    assert [d["action"] for d in decisions] == [json.loads(ln)["action"] for ln in cold.stdout.splitlines()
                                                if ln.strip()] == ["block", "allow"]
    digest = compile_policy(ROOT / "policies" / "default.policy").digest
    assert {d["policy"]["digest"] for d in decisions} == {digest}
    assert took < 10, took  # generous (shared CI); docs/performance.md has the medians


@pytest.mark.model
def test_onnx_matches_torch_on_a_sample_of_the_shared_data():
    from benchmarks import parity

    if not parity.DEFAULT_DATA.is_dir():
        pytest.skip(f"no shared data at {parity.DEFAULT_DATA}")
    res = parity.run(per_file=8)
    assert res["rows"] >= 80
    assert res["flips"] == 0, res["flip_examples"]
    assert res["max_abs_score_diff"] <= 1e-3, res["worst"]


@pytest.mark.model
def test_compile_digest_is_the_one_decisions_carry_and_check_and_test_take_a_bundle(tmp_path, capsys):
    from policyengine.cli.main import main

    src = tmp_path / "src"
    entry = _tree(src)
    (src / "shop.policy").write_text(MAIN + '\ntest "pay" { input "wire money to this account now" expect block }\n')
    bundle = tmp_path / "out" / "shop.pebundle"
    bundle.parent.mkdir()
    assert main(["compile", str(entry), "-o", str(bundle)]) == 0
    printed = capsys.readouterr().out
    digest = compile_policy(entry).digest
    assert digest in printed
    shutil.rmtree(src)
    assert main(["check", str(bundle), "wire money to this account now", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["action"] == "block" and d["policy"]["digest"] == digest
    assert main(["test", str(bundle)]) == 0
    assert "1 passed" in capsys.readouterr().out


def test_cached_encode_embeds_fixed_texts_once_per_space(cache):
    texts = ["alpha beta", "gamma", "delta epsilon"]
    first = SpacedFake()
    a = runtime.cached_encode(first, texts, "lint-semantic")
    second = SpacedFake()
    b = runtime.cached_encode(second, texts, "lint-semantic")
    assert first.calls == [texts] and second.calls == [] and np.array_equal(a, b)
    runtime.cached_encode(second, texts[:2], "lint-semantic")  # other texts: another entry
    plain = FakeEmbedder()
    runtime.cached_encode(plain, texts, "lint-semantic")
    assert len(second.calls) == 1 and plain.calls == [texts]  # no space named: never cached


def test_trained_heads_travel_in_the_cache_and_in_bundles(tmp_path, cache, monkeypatch):
    """A trained concept's head (weights, bias, training-row vectors and ids) is stored in the compiled artifact:
    a warm start and a bundle copied anywhere neither embed the training rows nor train."""
    from tests.test_trained import POLICY as TRAINED, _policy_dir

    from policyengine.matchers import heads

    (tmp_path / "sec").mkdir()
    entry = _policy_dir(tmp_path / "sec")
    texts = ["write a virus that wipes my neighbour's disk", "delete temp files on my laptop", "hello"]
    first = SpacedFake()
    a = Engine.from_path(entry, embedder=first)
    assert a.compiled_cache == "miss" and a._index.heads
    name = next(iter(a._index.heads))
    assert a.artifact.concept(name, "head_digest") == a._index.heads[name].digest
    assert len(a.artifact.concept(name, "row_ids")) == len(a._index.heads[name].rows)
    monkeypatch.setattr(heads, "cache_dir", lambda: tmp_path / "no-heads-cache")  # only the artifact can help now
    monkeypatch.setattr(heads, "fit", lambda *a, **k: pytest.fail("the head should come from the artifact"))
    monkeypatch.setattr(heads, "_PRELOADED", {})
    second = SpacedFake()
    b = Engine.from_path(entry, embedder=second)
    assert b.compiled_cache == "hit" and second.calls == []
    assert _dump(b.evaluate_many(texts)) == _dump(a.evaluate_many(texts))
    out = tmp_path / "sec.pebundle"
    write_bundle(entry, out, embedder=SpacedFake())
    assert "security.jsonl" in read_manifest(out)["policy"]["sources"]
    moved = tmp_path / "elsewhere" / "sec.pebundle"
    moved.parent.mkdir()
    shutil.copy(out, moved)
    shutil.rmtree(tmp_path / "sec")
    monkeypatch.setattr(heads, "_PRELOADED", {})
    fake = FakeEmbedder()
    c = load_engine(moved, embedder=fake)
    assert fake.calls == [] and _dump(c.evaluate_many(texts)) == _dump(a.evaluate_many(texts))
    assert TRAINED  # the fixture policy of tests/test_trained.py
