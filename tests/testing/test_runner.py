"""The test runner: statuses, discovery, coverage definitions, and `policyengine test` end to end (in-process)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from policyengine.cli.main import main
from policyengine.engine import Engine
from policyengine.testing.coverage import Coverage
from policyengine.testing.runner import CaseResult, RunFinished, discover, load, run

GOLDEN = Path(__file__).parent / "golden"

SHOP = '''policy shop { version "1" }
context { user.role: string }
pattern card = /\\b\\d(?:[ -]?\\d){12,18}\\b/ validate luhn
pattern order_id = /\\bORD-\\d{6}\\b/
words slurs = ["darn", "heck"]
rule no_slurs { severity high  when input contains slurs  block "Keep it civil." }
rule mask_cards { when input matches card  redact card with "[CARD]" }
rule staff_may_swear { when context.user.role == "staff" and input contains slurs  allow overrides no_slurs }
rule orders { when input matches order_id  flag "order mentioned" }
test "slur" { input "oh darn" expect block by no_slurs }
test "card" { input "card 4111 1111 1111 1111" expect redact by mask_cards }
'''

CASES = '''cases:
  - name: staff may swear
    input: darn it
    context: {user: {role: staff}}
    expect: allow
    by: staff_may_swear
  - name: wrong on purpose
    input: hello there
    expect: block
  - name: a known gap
    input: d4rn
    expect: block
    todo: leetspeak
  - name: gap fixed
    input: heck
    expect: block
    todo: true
'''


@pytest.fixture
def shop(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "shop.policy").write_text(SHOP)
    (tmp_path / "shop.cases.yaml").write_text(CASES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_statuses_and_stream_order(shop):
    events = list(run(discover(["shop.policy"])))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "TargetStarted" and kinds[-2:] == ["TargetFinished", "RunFinished"]
    results = {e.case.name: e for e in events if isinstance(e, CaseResult)}
    assert {k: r.status for k, r in results.items()} == {
        "slur": "passed", "card": "passed", "staff may swear": "passed", "wrong on purpose": "failed",
        "a known gap": "todo", "gap fixed": "fixed"}
    assert results["wrong on purpose"].detail == "expected block, got allow"
    fin = events[-1]
    assert isinstance(fin, RunFinished) and (fin.passed, fin.failed, fin.todo, fin.fixed) == (3, 1, 1, 1)
    assert not fin.ok


def test_expected_rule_must_be_among_reasons(shop):
    (shop / "shop.cases.yaml").write_text("- {input: darn 4111 1111 1111 1111, expect: block, by: mask_cards}\n"
                                          "- {input: darn, expect: block, by: [no_slurs, orders]}\n")
    res = [e for e in run(discover(["shop.cases.yaml"])) if isinstance(e, CaseResult)]
    assert [r.status for r in res] == ["passed", "failed"]  # a redact rule beside the winning block is a reason
    assert res[1].detail == "expected block by no_slurs, orders, got block by no_slurs (rule orders did not match)"


def test_discovery_entries_and_case_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "main.policy").write_text('policy main {}\nimport "part.policy"\n'
                                                    'test "t" { input "darn" expect block }\n')
    (tmp_path / "pack" / "part.policy").write_text('words w = ["darn"]\nrule r { when input contains w block "x" }\n'
                                                    'test "u" { input "ok" expect allow }\n')
    (tmp_path / "pack" / "part.cases.yaml").write_text("- {input: darn darn, expect: block, by: r}\n")
    targets = discover(["pack"])
    assert [t.policy for t in targets] == [os.path.join("pack", "main.policy")]  # part.policy is imported
    loaded = load(targets[0], build=False)
    assert sorted(c.name for c in loaded.cases) == ["darn darn", "t", "u"]
    # a case file given alone runs against its own policy, without the policy's test blocks
    only = load(discover(["pack/part.cases.yaml"])[0], build=False)
    assert [c.name for c in only.cases] == ["darn darn"]


def test_missing_path_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["test", "nope.policy"]) == 2
    assert "error[E0100]: no such file or directory: nope.policy" in capsys.readouterr().err


CONCEPTS = '''policy c {}
concept fruit {
  examples { "apples and pears"  "ripe bananas" }
  counter { "apple computers" "pear shaped plans" }
  threshold 0.5
}
concept unused { examples { "never used" } threshold 0.5 }
pattern never = /zzz+/
rule fruit_talk { when input similar fruit  flag "fruit" }
test "apples" { input "apples and pears today"  expect flag by fruit_talk }
test "computers" { input "apple computers are fast"  expect allow }
'''


def test_coverage_definitions_with_fake_embedder(tmp_path, monkeypatch, fake_embedder):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.policy").write_text(CONCEPTS)
    fake = fake_embedder
    events = list(run(discover(["c.policy"]), coverage=True, engine_factory=lambda p: Engine(p, embedder=fake)))
    report = next(e for e in events if type(e).__name__ == "CoverageReport")
    got = {(i.kind, i.text or i.name): i.covered for i in report.items}
    assert got[("rule", "fruit_talk")] and got[("concept", "fruit")]
    assert not got[("concept", "unused")] and not got[("pattern", "never")]
    assert got[("example", "apples and pears")]        # the nearest example of the matching chunk
    assert not got[("example", "ripe bananas")]        # never the nearest example of a match
    assert got[("counter", "apple computers")]         # nearest counter of the second test (which it stopped)
    assert not got[("example", "never used")]          # unused concepts are never evaluated
    assert report.total == 4 and report.covered == 2 and report.percent == 50.0
    assert not got[("counter", "pear shaped plans")]   # never the nearest counter-example
    assert (report.exemplars.covered, report.exemplars.total) == (2, 5)


def test_coverage_counts_overridden_rules(shop):
    cov = Coverage()
    loaded = load(discover(["shop.policy"])[0])
    trace: list = []
    from policyengine.testing.runner import evaluate_cases

    list(evaluate_cases(loaded.engine, [c for c in loaded.cases if c.name == "staff may swear"], trace=trace))
    cov.add(loaded.engine.policy, trace)
    covered = {i.name for i in cov.report().items if i.covered}
    assert covered == {"no_slurs", "staff_may_swear", "slurs"}  # no_slurs matched, then was overridden


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"golden {name} differs (UPDATE_GOLDEN=1 to accept)"


def test_cli_text_output_golden(shop, capsys):
    assert main(["test", "shop.policy", "--coverage", "-v"]) == 1
    _golden("shop_text.txt", capsys.readouterr().out)


def test_cli_min_coverage(shop, capsys):
    (shop / "shop.cases.yaml").write_text("[]\n")
    assert main(["test", "shop.policy", "--min-coverage", "57"]) == 0
    out = capsys.readouterr().out
    assert "coverage: 57.1% (4/7 rules, patterns, word lists, concepts)" in out and "rule orders" in out
    assert main(["test", "shop.policy", "--min-coverage", "60"]) == 1
    out = capsys.readouterr().out
    assert "coverage 57.1% is below --min-coverage 60" in out and out.rstrip().endswith("2 passed, 0 failed")
    assert main(["test", "shop.policy", "--min-coverage", "101"]) == 2


def test_cli_broken_case_file_is_exit_2_before_any_result(shop, capsys):
    (shop / "shop.cases.yaml").write_text("- {input: x, expect: maybe}\n")
    assert main(["test", "shop.policy"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "shop.cases.yaml:1:22: error[E0604]" in cap.err


def test_cli_json_and_extra_reporters(shop, capsys):
    assert main(["test", ".", "--format", "json", "--coverage", "--junit-xml", "r.xml", "--json-report",
                 "r.json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["passed"], doc["failed"], doc["todo"], doc["fixed"], doc["ok"]) == (4, 1, 1, 1, False)
    failed = [t for t in doc["tests"] if t["status"] == "failed"]
    assert failed[0]["name"] == "wrong on purpose" and failed[0]["decision"]["action"] == "allow"
    assert doc["coverage"]["kinds"]["rule"] == {"covered": 3, "total": 4, "percent": 75.0}
    assert json.loads((shop / "r.json").read_text())["tests"] == doc["tests"]
    assert (shop / "r.xml").read_text().count("<testcase ") == 6


@pytest.mark.model
def test_shipped_pack_passes_with_min_coverage_90(monkeypatch, capsys):
    """Done-when of the authoring-toolchain issue: `policyengine test policies --min-coverage 90` is green."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    code = main(["test", "policies", "--min-coverage", "90"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 failed" in out.splitlines()[-1]
