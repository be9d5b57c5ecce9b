"""Shared helpers for the measuring tools' tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def write_rows(path: Path, rows: Iterable[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "jbb_behaviors.jsonl").is_file():
        pytest.skip(f"the shared evaluation data is not at {SHARED_DATA}")
    return SHARED_DATA
