"""missing-test: its annotated fixture."""

from ..helpers import check_fixture


def test_fixture() -> None:
    found = check_fixture("missing-test")
    assert all(f.help or f.rule == "compile-error" for f in found)
