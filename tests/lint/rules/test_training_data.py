"""training-data: its annotated fixture, and what each finding says."""

from ..helpers import check_fixture


def test_fixture() -> None:
    found = check_fixture("training-data")
    assert all(f.help for f in found)
    messages = [f.message for f in found]
    assert any("labelled unsafe in conflict-0 (training-data/conflict.jsonl:1) and safe in conflict-1" in m
               for m in messages)
    assert any("near-copies on opposite sides" in m and "conflict-2" in m and "conflict-3" in m for m in messages)
    assert any("concept 'lopsided': only 1 of 13 training rows (7.7%) are unsafe" in m for m in messages)
    assert not any("'balanced'" in m for m in messages)
