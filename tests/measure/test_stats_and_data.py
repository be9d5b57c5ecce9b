"""Wilson intervals, F1 bootstrap, and the data loader's errors (file:line:col with a caret, never a skip)."""

from __future__ import annotations

import pytest

from policyengine.measure.data import DataError, load_rows
from policyengine.measure.stats import f1_bootstrap, wilson

from .conftest import write_rows


@pytest.mark.parametrize("k,n,low,high", [
    (0, 10, 0.0, 0.2775),  # published Wilson bounds (z = 1.96)
    (5, 10, 0.2366, 0.7634),
    (10, 10, 0.7225, 1.0),
    (1, 100, 0.0018, 0.0545),
])
def test_wilson_matches_published_values(k, n, low, high):
    iv = wilson(k, n)
    assert iv.low == pytest.approx(low, abs=1e-4)
    assert iv.high == pytest.approx(high, abs=1e-4)
    assert iv.low <= iv.rate <= iv.high


def test_wilson_without_rows_has_no_rate():
    iv = wilson(0, 0)
    assert iv.rate is None and iv.pct() == "- (0/0)"
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_f1_bootstrap_brackets_the_value():
    labels = [True] * 50 + [False] * 50
    blocked = [True] * 40 + [False] * 10 + [True] * 5 + [False] * 45
    est = f1_bootstrap(labels, blocked)
    assert est.value == pytest.approx(2 * 40 / (2 * 40 + 5 + 10))
    assert est.low < est.value < est.high
    assert f1_bootstrap(labels, blocked).low == est.low  # seeded: reproducible


def test_rows_load_with_defaults(tmp_path):
    p = write_rows(tmp_path / "d.jsonl", [{"text": "hi", "label": "safe"},
                                          {"id": "x", "text": "bad", "label": "unsafe", "category": "c",
                                           "context": {"channel": "web"}}])
    rows = load_rows(p)
    assert [r.id for r in rows] == ["d:1", "x"]
    assert rows[1].unsafe and rows[1].category == "c" and rows[1].context == {"channel": "web"}


def test_bad_rows_are_all_reported_with_positions(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok", "label": "safe"}\n'
                 '{"text": "x", "label": "maybe"}\n'
                 '{"text": 3, "label": "safe"}\n'
                 '{"text": "y", "label": "safe",}\n'
                 '{"id": 1, "text": "a", "label": "safe"}\n'
                 '{"id": 1, "text": "b", "label": "safe"}\n', encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_rows(p)
    msg = str(e.value)
    assert f'{p}:2:' in msg and '"label" must be "safe" or "unsafe", got "maybe"' in msg
    assert f"{p}:3:2: error: needs a string \"text\"" in msg
    assert f"{p}:4:" in msg and "invalid JSON" in msg
    assert f"{p}:6:" in msg and "duplicate id '1' (first on line 5)" in msg
    assert "  | " in msg and "^" in msg  # caret excerpts
    assert f"{p}:1:" not in msg


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="cannot read data file"):
        load_rows(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="no rows"):
        load_rows(tmp_path / "empty.jsonl")
