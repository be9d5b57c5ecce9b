"""Quick version of `make fuzz` (fuzz/fuzz_policy.py): mutated grammar-generated and real policy files compile or
raise PolicyError with positioned diagnostics, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))

import fuzz_policy  # noqa: E402


def test_parser_and_checker_fuzz_quick():
    counts = fuzz_policy.run(400, seed_value=1, per_draw=5)
    assert counts["ok"] + counts["error"] >= 400
    assert counts["ok"] > 0 and counts["error"] > 0  # both valid and invalid policies were exercised


def test_the_corpus_holds_the_real_policy_files():
    assert len(fuzz_policy.ITEMS) > 50
    assert any(item.startswith("concept") for item in fuzz_policy.ITEMS)
