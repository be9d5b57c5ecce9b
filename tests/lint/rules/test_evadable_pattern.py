"""evadable-pattern: its annotated fixture, and the help names the missing transforms."""

from ..helpers import check_fixture


def test_fixture() -> None:
    found = check_fixture("evadable-pattern")
    assert found and all("normalize [" in (f.help or "") for f in found)
    assert any("leet" in f.message for f in found)
