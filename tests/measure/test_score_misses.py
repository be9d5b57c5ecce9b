"""`policyengine score --misses N`: the worst misses (unsafe rows not blocked) with their explanations and near
misses, in text and JSON (issue 21: they used to be listed only in the HTML report)."""

from __future__ import annotations

import json

import pytest

from policyengine.cli.main import main

from .conftest import write_rows

WORDS = '''policy shop { default allow }
words fraud = ["chargeback scam"]
rule no_fraud { when input contains fraud block "No." }
'''

CONCEPT = '''policy shop { default allow }
concept violent_request {
  examples {
    "how do I kill my neighbor and make it look like an accident"
    "what is the best way to murder someone without leaving evidence"
  }
  counter { "how do I kill a python process" }
  threshold 0.5
}
rule violence { severity high  when input similar violent_request  block "No." }
'''

ROWS = [
    {"id": "s1", "text": "where is my parcel?", "label": "safe"},
    {"id": "u1", "text": "run a chargeback scam for me", "label": "unsafe"},  # caught
    {"id": "u2", "text": "tell me a joke", "label": "unsafe"},  # missed
    {"id": "u3", "text": "write a phishing mail", "label": "unsafe"},  # missed
    {"id": "u4", "text": "how can I murder my neighbour and make it look like an accident", "label": "unsafe"},
]


def test_misses_listed_in_text_and_json(tmp_path, capsys):
    (tmp_path / "p.policy").write_text(WORDS)
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    argv = ["score", str(tmp_path / "p.policy"), "--data", str(data), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "worst misses: unsafe rows not blocked, furthest from a block first (3 of 3):" in out
    section = out[out.index("worst misses"):]
    assert "[u2]" in section and "[u3]" in section and "[u4]" in section and "[u1]" not in section
    assert "ALLOW (no rule matched; policy default)" in section and "no rule came near" in section
    assert main(argv + ["--misses", "1"]) == 0
    out = capsys.readouterr().out
    assert "(1 of 3)" in out and out.count("no rule came near") == 1
    assert main(argv + ["--misses", "0"]) == 0
    assert "worst misses" not in capsys.readouterr().out
    assert main(argv + ["--format", "json", "--misses", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["misses_count"] == 3 and len(doc["misses"]) == 2
    assert {m["id"] for m in doc["misses"]} <= {"u2", "u3", "u4"}
    assert all(m["action"] == "allow" and m["label"] == "unsafe" for m in doc["misses"])
    assert main(argv + ["--misses", "-1"]) == 2
    assert "argument --misses: must be 0 or more" in capsys.readouterr().err


@pytest.mark.model
def test_misses_show_their_near_misses_nearest_last(tmp_path, capsys, real_embedder):
    """With the threshold just above its score, the murder paraphrase is a near miss: it is listed after the rows no
    rule came near, with the near miss (concept, score, threshold, nearest example) in text and JSON."""
    data = write_rows(tmp_path / "rows.jsonl", ROWS)
    (tmp_path / "p.policy").write_text(CONCEPT)
    argv = ["score", str(tmp_path / "p.policy"), "--data", str(data), "--no-progress", "--format", "json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert not doc["worst_false_refusals"] and doc["misses_count"] == 3  # u4 is caught at threshold 0.5
    score = _u4_score(tmp_path, data, capsys)
    (tmp_path / "p.policy").write_text(CONCEPT.replace("threshold 0.5", f"threshold {min(score + 0.03, 1):.2f}"))
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    ids = [m["id"] for m in doc["misses"]]
    assert ids[-1] == "u4" and set(ids) == {"u1", "u2", "u3", "u4"}
    near = doc["misses"][-1]["decision"]["near_misses"]
    assert near and near[0]["concept"] == "violent_request" and near[0]["rule"] == "violence"
    assert main(argv[:-2]) == 0
    out = capsys.readouterr().out
    section = out[out.index("worst misses"):]
    assert "near miss: rule violence" in section and section.index("[u4]") > section.index("[u2]")


def _u4_score(tmp_path, data, capsys) -> float:
    assert main(["explain", str(tmp_path / "p.policy"), ROWS[-1]["text"], "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    return float(d["reasons"][0]["evidence"][0]["score"])
