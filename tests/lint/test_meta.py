"""Every lint rule has its four parts: module, test, annotated fixture, doc page; ids are stable kebab-case."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from policyengine.lint.rule import CATEGORIES, LEVELS
from policyengine.lint.rules import RULE_MODULES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", RULE_MODULES)
def test_rule_has_module_test_fixture_and_doc(module: str) -> None:
    info = importlib.import_module(f"policyengine.lint.rules.{module}").RULE
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", info.id)
    assert info.id.replace("-", "_") == module
    assert info.category in CATEGORIES and info.level in LEVELS and info.summary
    assert (ROOT / f"tests/lint/rules/test_{module}.py").is_file(), "missing test"
    fixture = ROOT / f"tests/lint/fixtures/{info.id}.policy"
    assert fixture.is_file(), "missing fixture"
    assert f"# ruleid: {info.id}" in fixture.read_text(encoding="utf-8"), "fixture has no ruleid annotation"
    doc = ROOT / f"docs/lint/rules/{info.id}.md"
    assert doc.is_file(), "missing doc"
    for heading in ("## Summary", "## Avoid", "## Prefer", "## Rationale"):
        assert heading in doc.read_text(encoding="utf-8")


def test_no_stray_rule_files() -> None:
    on_disk = {p.stem for p in (ROOT / "policyengine/lint/rules").glob("*.py") if p.stem != "__init__"}
    assert on_disk == set(RULE_MODULES)
    docs = {p.stem.replace("-", "_") for p in (ROOT / "docs/lint/rules").glob("*.md")}
    assert docs == set(RULE_MODULES)


def test_lint_index_lists_every_rule() -> None:
    index = (ROOT / "docs/lint.md").read_text(encoding="utf-8")
    for module in RULE_MODULES:
        assert f"rules/{module.replace('_', '-')}.md" in index
