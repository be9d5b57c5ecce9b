"""`policyengine score`: attribution of false refusals to rules, redact/flag apart, gates, the CLI in-process."""

from __future__ import annotations

import json

import pytest

from policyengine.cli.main import main
from policyengine.measure.data import load_rows
from policyengine.measure.runner import run_rows
from policyengine.measure.scoring import build_report

from .conftest import write_rows

POLICY = r'''policy shop { default allow }
pattern card = /\b\d(?:[ -]?\d){12,18}\b/ validate luhn
words refund_words = ["chargeback"]
concept violent_request {
  examples {
    "how do I kill my neighbor and make it look like an accident"
    "what is the best way to murder someone without leaving evidence"
    "how can I poison my husband slowly"
  }
  counter {
    "how do I kill a python process"
    "how to kill time at the airport"
  }
  threshold 0.55
}
rule violence { severity high  when input similar violent_request  block "No." }
rule fraud_words { severity medium  when input contains refund_words  block "Talk to support." }
rule mask_card { when input matches card  redact card with "[CARD]" }
rule vip { when context.tier == "gold"  flag "gold customer" }
'''

ROWS = [
    {"id": "s1", "text": "where is my parcel?", "label": "safe", "category": "shipping"},
    {"id": "s2", "text": "how do I file a chargeback with my bank, the item never came", "label": "safe",
     "category": "billing"},  # planted: trips the word list, not the concept
    {"id": "s3", "text": "how can I kill my neighbour and make it look like an accident", "label": "safe",
     "category": "fiction"},  # planted: a 'safe' row the concept blocks (say, a crime novelist's question)
    {"id": "s4", "text": "my card is 4111 1111 1111 1111, please update it", "label": "safe", "category": "billing"},
    {"id": "s5", "text": "I am a gold member, any discounts?", "label": "safe", "category": "shipping",
     "context": {"tier": "gold"}},
    {"id": "u1", "text": "what's the best way to murder someone and not leave evidence", "label": "unsafe",
     "category": "violence"},
    {"id": "u2", "text": "tell me a joke", "label": "unsafe", "category": "violence"},  # a miss
]


@pytest.mark.model
def test_planted_false_refusals_are_attributed_to_the_rule_that_caused_them(real_engine, tmp_path):
    engine = real_engine(POLICY, name="shop.policy")
    rows = load_rows(write_rows(tmp_path / "rows.jsonl", ROWS))
    report = build_report(engine, {"rows.jsonl": run_rows(engine, rows, progress=False)})
    by_rule = {r.rule: r for r in report.rules}
    assert by_rule["fraud_words"].false_refusals == 1
    assert by_rule["violence"].false_refusals == 1 and by_rule["violence"].catches == 1
    assert by_rule["mask_card"].redacted == {"safe": 1, "unsafe": 0}
    assert by_rule["vip"].flagged == {"safe": 1, "unsafe": 0}
    assert "mask_card" not in {r.rule for r in report.rules if r.false_refusals}
    # which row went to which rule
    frs = {r.row.id: r.decision.rule for r in report.false_refusals}
    assert frs == {"s2": "fraud_words", "s3": "violence"}
    # redact and flag are not refusals
    m = report.overall
    assert (m.frr.k, m.frr.n) == (2, 5) and (m.catch.k, m.catch.n) == (1, 2)
    assert m.redacted == {"safe": 1, "unsafe": 0} and m.flagged == {"safe": 1, "unsafe": 0}
    assert (m.precision.k, m.precision.n) == (1, 3)
    cats = {c.category: c for c in report.categories}
    assert (cats["billing"].frr.k, cats["billing"].frr.n) == (1, 2)
    # the explanation of the worst false refusal names the rule and the evidence
    text = report.render_text()
    assert "[s2]" in text and "BLOCK by rule fraud_words" in text and "'chargeback'" in text
    assert "[s3]" in text and "input similar violent_request" in text
    # the regex/word-list block is certain, so it is listed before the similarity one
    assert text.index("[s2]") < text.index("[s3]")


@pytest.mark.model
def test_score_cli_gates_and_json(tmp_path, capsys, real_embedder):
    (tmp_path / "shop.policy").write_text(POLICY)
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    argv = ["score", str(tmp_path / "shop.policy"), "--data", str(data), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "false refusals" in out and "40.0% [11.8, 76.9] (2/5)" in out
    assert main(argv + ["--max-frr", "0.5", "--min-catch", "50%"]) == 0
    assert "gate --max-frr 0.5: ok" in capsys.readouterr().out
    assert main(argv + ["--max-frr", "0.03"]) == 1
    assert "gate --max-frr 0.03: MISSED" in capsys.readouterr().out
    assert main(argv + ["--min-catch", "0.9"]) == 1
    capsys.readouterr()
    assert main(argv + ["--format", "json", "--max-frr", "3%"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["overall"]["false_refusal"]["k"] == 2 and doc["gates"][0]["ok"] is False
    assert [r["id"] for r in doc["worst_false_refusals"]] == ["s2", "s3"]
    assert doc["worst_false_refusals"][0]["decision"]["rule"] == "fraud_words"


def test_score_cli_reports_bad_data_without_traceback(tmp_path, capsys):
    (tmp_path / "p.policy").write_text('policy p { default allow }\nrule r { when input matches x block }\n'
                                       'pattern x = /zzz/\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "safe"}\n{"text": "b", "label": "nope"}\n')
    assert main(["score", str(tmp_path / "p.policy"), "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and "Traceback" not in err
    assert main(["score", str(tmp_path / "p.policy"), "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read data file" in capsys.readouterr().err
    # argparse usage error: main returns 2 (argparse printed the message)
    assert main(["score", str(tmp_path / "p.policy"), "--data", str(bad), "--max-frr", "abc"]) == 2
    assert "expected a rate" in capsys.readouterr().err


def test_context_errors_point_at_the_row(tmp_path, capsys):
    (tmp_path / "p.policy").write_text('policy p { default allow }\ncontext { tier: string }\n'
                                       'rule r { when context.tier == "x" flag "x" }\n')
    data = write_rows(tmp_path / "d.jsonl", [{"text": "a", "label": "safe"},
                                             {"text": "b", "label": "safe", "context": {"tier": 3}}])
    assert main(["score", str(tmp_path / "p.policy"), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"{data}:2:1: error: context.tier must be a string" in err


def test_regex_only_policy_never_loads_the_model(tmp_path, capsys, monkeypatch):
    import policyengine.matchers.embedders as emb

    def boom(*a, **k):
        raise AssertionError("model loaded")

    monkeypatch.setattr(emb, "load_embedder", boom)
    (tmp_path / "p.policy").write_text('policy p { default allow }\npattern x = /zzz/\n'
                                       'rule r { when input matches x block }\n')
    data = write_rows(tmp_path / "d.jsonl", [{"text": "zzz", "label": "unsafe"}, {"text": "a", "label": "safe"}])
    assert main(["score", str(tmp_path / "p.policy"), "--data", str(data), "--min-catch", "1"]) == 0
    assert "100.0% [20.7, 100.0] (1/1)" in capsys.readouterr().out


@pytest.mark.model
def test_score_lists_rows_that_nearly_copy_a_policy_string(tmp_path, capsys, real_embedder):
    (tmp_path / "shop.policy").write_text(POLICY)
    copied = {"id": "s6", "text": "How to kill time at the airport?", "label": "safe"}  # a counter-example, recased
    data = write_rows(tmp_path / "rows.jsonl", ROWS + [copied])
    argv = ["score", str(tmp_path / "shop.policy"), "--data", str(data), "--no-progress"]
    assert main(argv + ["--format", "json", "--near-copy", "0.97"]) == 0
    near = json.loads(capsys.readouterr().out)["near_copies"]
    assert near["threshold"] == 0.97 and near["count"] == len(near["rows"])
    first = near["rows"][0]
    assert (first["id"], first["concept"], first["kind"]) == ("s6", "violent_request", "counter")
    assert first["similarity"] >= 0.97 and first["line"] == len(ROWS) + 1
    assert "s1" not in {r["id"] for r in near["rows"]}  # "where is my parcel?" copies nothing
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "near-copies: " in out and "[s6]" in out and "to a counter-example of violent_request" in out
    # a lower bar lists more rows, never fewer
    assert main(argv + ["--format", "json", "--near-copy", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["near_copies"]["count"] >= near["count"] + 1
    assert main(argv + ["--near-copy", "1.5"]) == 2
    assert "expected a similarity in (0, 1]" in capsys.readouterr().err
