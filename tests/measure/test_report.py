"""The HTML report opens in headless Chromium and renders its plots and tables."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from policyengine.measure.data import load_rows
from policyengine.measure.report import write_report
from policyengine.measure.runner import run_rows
from policyengine.measure.scoring import build_report

from .conftest import write_rows
from .test_score import POLICY, ROWS

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def _chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI: `make system-deps` (run by .ci/run) should have installed it")
        pytest.skip("headless Chromium is not installed here (Debian packages chromium, chromium-driver: "
                    "run `make system-deps`)")
    return CHROMIUM


def _report(tmp_path, make_engine):
    engine = make_engine(POLICY, name="shop.policy")
    rows = load_rows(write_rows(tmp_path / "rows.jsonl", ROWS))
    report = build_report(engine, {"rows.jsonl": run_rows(engine, rows, progress=False)})
    return write_report(report, tmp_path / "report", gates=[{"gate": "--max-frr", "limit": 0.03, "ok": False,
                                                             "detail": "false refusals 40%"}])


def test_report_is_self_contained(tmp_path, make_engine):
    html = _report(tmp_path, make_engine).read_text()
    assert html.count('<img class="plot"') >= 3  # rates, rules, one per concept
    assert not re.search(r'src="(?!data:)', html) and "<link" not in html  # nothing fetched from elsewhere
    for table in ("summary", "rules", "categories", "errors"):
        assert f'<table class="{table}">' in html
    assert "fraud_words" in html and "MISSED" in html


def test_report_lists_near_copies_of_policy_strings(tmp_path, make_engine):
    engine = make_engine(POLICY, name="shop.policy")
    copied = {"id": "s6", "text": "how to kill time at the airport", "label": "safe"}  # a counter-example verbatim
    rows = load_rows(write_rows(tmp_path / "rows.jsonl", ROWS + [copied]))
    report = build_report(engine, {"rows.jsonl": run_rows(engine, rows, progress=False)}, near_copy=0.99)
    assert [(c.result.row.id, c.kind) for c in report.near_copies] == [("s6", "counter")]
    html = write_report(report, tmp_path / "report").read_text()
    assert '<table class="near-copies">' in html and "violent_request (counter)" in html
    # without near-copies the section is left out
    report = build_report(engine, {"rows.jsonl": run_rows(engine, rows[:-1], progress=False)}, near_copy=0.99)
    assert report.near_copies == [] and "near-copies" not in write_report(report, tmp_path / "r2").read_text()


def test_report_renders_in_headless_chromium(tmp_path, make_engine):
    chromium = _chromium()
    path = _report(tmp_path, make_engine)
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run(args + ["--dump-dom", path.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    total = int(re.search(r'data-plots-total="(\d+)"', body.group(0)).group(1))
    rendered = int(re.search(r'data-plots-rendered="(\d+)"', body.group(0)).group(1))
    assert total >= 3 and rendered == total  # every plot decoded to a real image (naturalWidth > 0)
    assert dom.stdout.count('data-rendered="yes"') == total
    # the tables are in the rendered DOM, with their rows
    summary = re.search(r'<table class="summary">.*?</table>', dom.stdout, re.S).group(0)
    assert "rows.jsonl" in summary and "40.0% [11.8, 76.9] (2/5)" in summary
    rules = re.search(r'<table class="rules">.*?</table>', dom.stdout, re.S).group(0)
    assert rules.count("<tr>") >= 4 and "fraud_words" in rules
    errors = re.findall(r'<table class="errors">.*?</table>', dom.stdout, re.S)
    assert "BLOCK by rule fraud_words" in errors[0]
    # and it paints: a screenshot with something on it
    shot = tmp_path / "shot.png"
    res = subprocess.run(args + ["--window-size=1200,1600", f"--screenshot={shot}", path.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.stat().st_size > 20_000, res.stderr[-2000:]
