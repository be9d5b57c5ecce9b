"""regex-slow-path: its annotated fixture."""

import pytest

from ..helpers import check_fixture

pytest.importorskip("hyperscan")


def test_fixture() -> None:
    found = check_fixture("regex-slow-path")
    assert any("backreference" in f.message for f in found) and all(f.help for f in found)
