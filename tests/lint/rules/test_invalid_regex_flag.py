"""invalid-regex-flag: its annotated fixture."""

from ..helpers import check_fixture


def test_fixture() -> None:
    found = check_fixture("invalid-regex-flag")
    assert all(f.help or f.rule == "compile-error" for f in found)
