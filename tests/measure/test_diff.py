"""`policyengine diff`: rows whose action changes, by direction and rule, each row embedded once for both policies."""

from __future__ import annotations

import json

import pytest

from policyengine.cli.main import main
from policyengine.measure.data import load_rows
from policyengine.measure.diff import diff
from policyengine.measure.runner import CachingEmbedder

from .conftest import write_rows

OLD = '''policy shop { default allow }
words refund = ["chargeback"]
concept payment { examples { "wire money to this account" } threshold 0.99 }
rule refunds { when input contains refund  block "talk to support" }
rule payments { when input similar payment  block "no" }
'''
# the new version drops the word-list rule and lowers the concept threshold
NEW = OLD.replace('rule refunds { when input contains refund  block "talk to support" }\n', "").replace(
    "threshold 0.99", "threshold 0.3")

ROWS = [
    {"id": "a", "text": "I want a chargeback", "label": "safe"},  # newly allowed (refunds removed)
    {"id": "b", "text": "wire money to this account please", "label": "unsafe"},  # newly blocked by payments
    {"id": "c", "text": "send money to my account", "label": "safe"},  # newly blocked by payments
    {"id": "d", "text": "hello there", "label": "safe"},  # unchanged
]


def _files(tmp_path):
    (tmp_path / "old.policy").write_text(OLD)
    (tmp_path / "new.policy").write_text(NEW)
    return str(tmp_path / "old.policy"), str(tmp_path / "new.policy"), write_rows(tmp_path / "d.jsonl", ROWS)


def test_diff_groups_changes_by_direction_and_rule_embedding_each_row_once(tmp_path, fake_embedder):
    old, new, data = _files(tmp_path)
    emb = CachingEmbedder(fake_embedder.model_id, inner=fake_embedder)
    rep = diff(old, new, load_rows(data), progress=False, embedder=emb)
    g = rep.grouped()
    assert {c.new.row.id for c in g["newly blocked"]["payments"]} == {"b", "c"}
    assert [c.new.row.id for c in g["newly allowed"]["refunds"]] == ["a"]
    assert "other change" not in g and rep.new_blocks == 2
    assert (rep.old.frr.k, rep.new.frr.k) == (1, 1) and (rep.old.catch.k, rep.new.catch.k) == (0, 1)
    sent = [t for call in fake_embedder.calls for t in call]
    assert len(sent) == len(set(sent))  # the second policy re-used every embedding
    for row in ROWS:
        assert sent.count(row["text"]) == 1
    text = rep.render_text()
    assert "newly blocked (2):" in text and "payments: 2 rows (1 safe, 1 unsafe)" in text
    assert "newly allowed (1):" in text and "refunds: 1 rows" in text
    assert "+0.0 pts (+0 rows)" in text and "+100.0 pts (+1 rows)" in text


@pytest.mark.model
def test_diff_cli_fail_on_new_blocks(tmp_path, capsys, real_embedder):
    old, new, data = _files(tmp_path)
    assert main(["diff", old, old, "--data", str(data), "--fail-on-new-blocks"]) == 0
    assert "no row changes action" in capsys.readouterr().out
    code = main(["diff", old, new, "--data", str(data), "--fail-on-new-blocks", "--format", "json", "--no-progress"])
    doc = json.loads(capsys.readouterr().out)
    changes = [(d, rule, c) for d, by_rule in doc["changes"].items() for rule, cs in by_rule.items() for c in cs]
    assert changes and all(c["old"] != c["new"] for _, _, c in changes)
    assert code == (1 if "newly blocked" in doc["changes"] else 0)
    # with the real model "wire money to this account please" is newly blocked by the lowered concept
    assert "b" in [c["id"] for c in doc["changes"]["newly blocked"]["payments"]] and code == 1
    assert main(["diff", old, new, "--data", str(data), "--explain"]) == 0
    assert "BLOCK by rule payments" in capsys.readouterr().out
