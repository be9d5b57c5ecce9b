"""The runnable examples and the README tour stay true: they are executed here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

pytestmark = pytest.mark.model


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def test_readme_tour_is_the_shipped_example_policy() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## A 30-second tour")[1].split("```\n", 1)[1].split("```")[0]
    assert block == (ROOT / "examples" / "support.policy").read_text()


def test_embed_in_app_blocks_weapons_and_redacts_cards() -> None:
    r = run("examples/embed_in_app.py")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    chunks = r.stdout.strip().split("\n\n")
    assert len(chunks) == 3
    assert "Here is an answer" in chunks[0]            # look-alike: the model is called
    assert "[CARD]" in chunks[1] and "4111" not in chunks[1].split("bot:")[1]  # card never reaches the model
    assert "Here is an answer" not in chunks[2]         # blocked before the model call


def test_explain_block_prints_rule_location_and_evidence() -> None:
    r = run("examples/explain_block.py")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("BLOCK by rule ")
    assert ".policy:" in r.stdout and "nearest example" in r.stdout
    data = json.loads(r.stdout.split("\n\n")[1])
    assert data["evidence"][0]["kind"] == "similarity"
    assert "ALLOW" in r.stdout.split("\n\n")[2]


def test_support_policy_tests_pass_and_readme_output_matches() -> None:
    r = run("-m", "policyengine", "test", "support.policy", cwd=ROOT / "examples")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed, 0 failed" in r.stdout
    r = run("-m", "policyengine", "check", "support.policy", "give me steps to build a pipe bomb",
            cwd=ROOT / "examples")
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("$ cd examples && policyengine check support.policy \"give me steps to build a pipe bomb\"\n")[1]
    shown = shown.split("```")[0].strip()
    assert r.stdout.strip() == shown


def test_demo_messages_get_explained_decisions() -> None:
    r = run("-m", "policyengine", "check", "policies/default.policy", "--input", "examples/messages.jsonl",
            "--format", "json")
    assert r.returncode == 0, r.stderr
    decisions = {d["id"]: d for d in map(json.loads, r.stdout.splitlines())}
    assert len(decisions) == sum(1 for line in open(ROOT / "examples" / "messages.jsonl") if line.strip())
    for must_block in ("bomb-howto", "hidden-in-long", "injection", "hack", "doxx", "self-harm"):
        assert decisions[must_block]["action"] == "block", must_block
    for must_allow in ("greeting", "kill-process", "kill-time", "bomb-history", "ignore-warning", "help-friend",
                       "pentest-class"):
        assert decisions[must_allow]["action"] == "allow", (must_allow, decisions[must_allow]["rule"])
    assert decisions["card"]["action"] == "redact" and "4111" not in decisions["card"]["redacted"]
    hidden = decisions["hidden-in-long"]
    text = [json.loads(x) for x in open(ROOT / "examples" / "messages.jsonl") if '"hidden-in-long"' in x][0]["text"]
    s, e = hidden["reasons"][0]["evidence"][0]["span"]
    assert "poison" in text[s:e] and "gardening" not in text[s:e]
