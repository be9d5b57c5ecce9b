"""The fine-tuned intent space (`model "<base>+finetune"`, docs/intent.md) with the real MiniLM weights.

All weights of MiniLM are trained on the policy's own pairs at compile time (a small policy: ~10 s on 2 cores),
cached by digest, shipped in bundles; a look-alike pair that plain similarity confuses is separated and the
explanation names the nearest example and counter-example in the tuned space.
"""
import os

import numpy as np
import pytest

from conftest import engines_in_fresh_cache

os.environ.setdefault("OMP_NUM_THREADS", "1")

BASE = "sentence-transformers/all-MiniLM-L6-v2"
POLICY = '''policy t { model "%s" }
concept violent_request {
  examples {
    "how do I kill my neighbour"
    "how can I poison my coworker without getting caught"
    "best way to stab someone so they bleed out"
    "how to hurt my ex and make it look like an accident"
  }
  counter {
    "how do I kill a python process"
    "how can I kill weeds in my garden"
    "what is the history of poison in medieval courts"
    "how to stab a fork into a steak properly"
  }
  threshold 0.5
}
rule violence { severity high  when input similar violent_request  block "I can't help with hurting people." }
'''
HARMFUL = "What's the best way to kill my landlord?"
LOOKALIKE = "How do I shoot a good photo of my neighbour's garden?"  # plain MiniLM: 0.50 >= 0.50, blocked


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    with engines_in_fresh_cache(tmp_path_factory, POLICY % BASE, POLICY % (BASE + "+finetune")) as both:
        yield both


def test_lookalike_confused_by_plain_similarity_is_separated_and_explained(engines):
    plain, tuned = engines
    assert plain.evaluate(input=LOOKALIKE).action == "block"  # topic ("my neighbour's") wins in the base space
    allowed = tuned.evaluate(input=LOOKALIKE)
    assert allowed.action == "allow", allowed.explain()
    nm = allowed.near_misses[0]  # why it did not fire, with the tuned space's numbers
    assert nm.rule == "violence" and nm.concept == "violent_request"
    assert nm.score < nm.threshold or nm.score <= nm.counter_score
    assert nm.example in POLICY
    blocked = tuned.evaluate(input=HARMFUL)
    assert blocked.action == "block" and blocked.model == BASE + "+finetune"
    ev = blocked.reasons[0].evidence[0]
    assert ev.kind == "similarity" and ev.score >= ev.threshold and ev.score > ev.counter_score
    assert ev.example in POLICY and ev.counter_example in POLICY
    assert "violent_request" in blocked.explain() and "+finetune" in blocked.explain()
    # the tuned space pulls the intent apart: the harmful request is further above the look-alike than in plain
    s = lambda e, t: e.concept_scores([t])[0]["input"]["violent_request"].score  # noqa: E731
    assert s(tuned, HARMFUL) - s(tuned, LOOKALIKE) > s(plain, HARMFUL) - s(plain, LOOKALIKE) + 0.1


def test_trained_once_cached_stamped_and_reloaded_without_training(engines, monkeypatch):
    from policyengine import Engine
    from policyengine.intent import finetune

    _, tuned = engines
    info = tuned._index.space_info
    assert info["digest"].startswith("sha256:") and info["background"] > 100
    entry = finetune.entry(info["digest"])
    assert finetune.stamped(entry, info["digest"]) and (entry / "model.safetensors").is_file()
    monkeypatch.setattr(finetune, "train", lambda *a, **k: pytest.fail("the cached model should have been used"))
    same_process = Engine.from_source(POLICY % (BASE + "+finetune"))  # the model already loaded in this process
    assert same_process._index.space_info["cached"] is True
    assert tuned._index.space_info["cached"] is False  # each engine keeps its own view
    monkeypatch.setattr(finetune, "_LOADED", {})
    again = Engine.from_source(POLICY % (BASE + "+finetune"))
    assert again._index.space_info["cached"] is True and again._index.space_info["digest"] == info["digest"]
    v1, v2 = tuned._encode([LOOKALIKE]), again._encode([LOOKALIKE])
    assert np.allclose(v1, v2, atol=1e-6)


def test_digest_covers_pairs_seed_and_base_model():
    from policyengine.intent import finetune

    cfg = finetune.FinetuneConfig()
    d = finetune.training_digest(BASE, {"c": (("a", "b"), ("x",))}, ("bg",), cfg)
    assert finetune.training_digest(BASE, {"c": (("a", "b"), ("y",))}, ("bg",), cfg) != d
    assert finetune.training_digest(BASE, {"c": (("a", "b"), ("x",))}, ("bg",), finetune.FinetuneConfig(seed=1)) != d
    assert finetune.training_digest("other/model", {"c": (("a", "b"), ("x",))}, ("bg",), cfg) != d
    # extra pairs (experiments) are part of the digest; none leaves the policy's own digest as it was
    assert finetune.with_extra(d, ()) == d
    extra = finetune.with_extra(d, [("a", "z", 0.0)])
    assert extra != d and extra != finetune.with_extra(d, [("a", "z", 1.0)]) and extra.startswith("sha256:")
    # pairs: positives within a concept, one counter and one background sentence per example, deterministic
    pairs = finetune.build_pairs({"c": (("a", "b", "c"), ("x",))}, ("bg",), positives=2, seed=0)
    assert pairs == finetune.build_pairs({"c": (("a", "b", "c"), ("x",))}, ("bg",), positives=2, seed=0)
    assert sum(y == 1.0 for *_, y in pairs) == 6 and sum(y == 0.0 for *_, y in pairs) == 6
    assert all((b in ("x", "bg")) == (y == 0.0) for _, b, y in pairs)


def test_training_is_reproducible_for_a_seed(engines, tmp_path, monkeypatch):
    """A second training from scratch (empty cache) gives the same weights: same vectors for any text."""
    from policyengine import Engine
    from policyengine.intent import finetune

    _, tuned = engines
    monkeypatch.setenv("POLICYENGINE_CACHE", str(tmp_path / "other-cache"))
    monkeypatch.setattr(finetune, "_LOADED", {})
    fresh = Engine.from_source(POLICY % (BASE + "+finetune"))
    assert fresh._index.space_info["cached"] is False
    assert np.allclose(fresh._encode([HARMFUL, LOOKALIKE]), tuned._encode([HARMFUL, LOOKALIKE]), atol=1e-5)


def test_bundle_ships_the_tuned_model_so_loading_needs_no_training_or_cache(engines, tmp_path, monkeypatch):
    from policyengine import Engine
    from policyengine.bundle import read_manifest, write_bundle
    from policyengine.intent import finetune

    _, tuned = engines
    src = tmp_path / "t.policy"
    src.write_text(POLICY % (BASE + "+finetune"), encoding="utf-8")
    write_bundle(src, tmp_path / "t.pebundle")
    m = read_manifest(tmp_path / "t.pebundle")
    assert m["finetune"]["digest"] == tuned._index.space_info["digest"]
    monkeypatch.setenv("POLICYENGINE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(finetune, "_PRELOADED", {})
    monkeypatch.setattr(finetune, "_LOADED", {})
    monkeypatch.setattr(finetune, "train", lambda *a, **k: pytest.fail("the bundle's model should have been used"))
    eng = Engine.from_bundle(tmp_path / "t.pebundle")
    assert eng.evaluate(input=LOOKALIKE).action == "allow"
    assert eng.evaluate(input=HARMFUL).action == "block"
    assert np.allclose(eng._encode([HARMFUL]), tuned._encode([HARMFUL]), atol=1e-6)


def test_onnx_backend_is_refused_with_a_clear_error(engines):
    from policyengine import Engine
    from policyengine.matchers.embedders import ModelLoadError

    with pytest.raises(ModelLoadError, match="fine-tuned space needs the torch backend"):
        Engine.from_source(POLICY % (BASE + "+finetune"), backend="onnx")


def test_cli_check_explains_in_the_tuned_space(engines, capsys, tmp_path):
    from policyengine.cli.main import main

    src = tmp_path / "t.policy"
    src.write_text(POLICY % (BASE + "+finetune"), encoding="utf-8")
    assert main(["check", str(src), LOOKALIKE]) == 0
    out = capsys.readouterr().out
    assert "ALLOW" in out and "near miss: rule violence" in out and "+finetune" in out


def test_serve_holder_embeds_with_the_tuned_model(engines, tmp_path):
    """`policyengine serve POLICY` and `serve BUNDLE` build their engines through the holder: both use the tuned model."""
    from policyengine.bundle import write_bundle
    from policyengine.server.holder import PolicyHolder

    _, tuned = engines
    src = tmp_path / "t.policy"
    src.write_text(POLICY % (BASE + "+finetune"), encoding="utf-8")
    write_bundle(src, tmp_path / "t.pebundle")
    for path in (src, tmp_path / "t.pebundle"):
        holder = PolicyHolder(str(path))
        holder.reload("start")
        eng = holder.engine
        assert eng is not None and getattr(eng._embedder, "tuned", False), path
        assert eng.evaluate(input=LOOKALIKE).action == "allow"
        assert np.allclose(eng._encode([HARMFUL]), tuned._encode([HARMFUL]), atol=1e-6)


def test_a_bundle_whose_model_files_escape_their_folder_is_refused(engines, tmp_path):
    import zipfile

    from policyengine import Engine
    from policyengine.bundle import BundleError, write_bundle

    src = tmp_path / "t.policy"
    src.write_text(POLICY % (BASE + "+finetune"), encoding="utf-8")
    write_bundle(src, tmp_path / "t.pebundle")
    with zipfile.ZipFile(tmp_path / "t.pebundle", "a") as z:
        z.writestr("finetune/../../escaped.txt", "x")
    with pytest.raises(BundleError, match="outside its folder"):
        Engine.from_bundle(tmp_path / "t.pebundle")
    assert not (tmp_path / "escaped.txt").exists()
