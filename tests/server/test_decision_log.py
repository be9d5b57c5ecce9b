"""Decision log: one JSON line per decision, text hashed unless configured, rotated, replayable by the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from policyengine.server import ServerConfig, create_app
from policyengine.server.decision_log import DecisionLog

from .conftest import serve_app, wait_ready

SECRET = "my key is sk-abcdefghijk"


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_log_hashes_text_by_default(tmp_path, small_policy):
    log = tmp_path / "logs" / "decisions.jsonl"
    app = create_app(ServerConfig(policy=str(small_policy), decision_log=str(log)))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        digest = wait_ready(client)["policy"]["digest"]
        client.post("/v1/check", json={"input": SECRET, "context": {"channel": "web"}},
                    headers={"x-request-id": "req-1"})
        client.post("/v1/check/batch", json={"items": [{"input": "hi"}, {"input": SECRET}]},
                    headers={"x-request-id": "req-2"})
    recs = _lines(log)  # the server has stopped: everything is on disk
    assert [(r["id"], r["endpoint"], r["action"], r["rule"]) for r in recs] == [
        ("req-1", "/v1/check", "block", "no_secrets"),
        ("req-2:0", "/v1/check/batch", "allow", None),
        ("req-2:1", "/v1/check/batch", "block", "no_secrets")]
    first = recs[0]
    assert first["request_id"] == "req-1" and first["policy"]["digest"] == digest and first["model"] is None
    assert first["reasons"] == [{"rule": "no_secrets", "action": "block", "severity": "medium", "category": "pii"}]
    assert first["input_sha256"] == "sha256:" + hashlib.sha256(SECRET.encode()).hexdigest()
    assert "input" not in first and "context" not in first
    assert SECRET not in log.read_text() and "sk-abc" not in log.read_text()
    assert first["ts"].endswith("+00:00")


def test_log_with_text_replays_through_the_cli(tmp_path, small_policy, capsys):
    log = tmp_path / "decisions.jsonl"
    app = create_app(ServerConfig(policy=str(small_policy), decision_log=str(log), log_text=True))
    texts = ["hello there", SECRET, "another sk-zzzzzzzzzz9 key"]
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        wait_ready(client)
        served = [client.post("/v1/check", json={"input": t, "context": {"channel": "app"}}).json()["action"]
                  for t in texts]
    recs = _lines(log)
    assert [r["input"] for r in recs] == texts and recs[0]["context"] == {"channel": "app"}

    from policyengine.cli.main import main

    assert main(["check", str(small_policy), "--input", str(log), "--format", "json"]) == 0
    replayed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [d["action"] for d in replayed] == served == ["allow", "block", "block"]
    assert [d["id"] for d in replayed] == [r["id"] for r in recs]


def test_rotation_keeps_every_line_whole(tmp_path):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path), max_bytes=2_000, backups=3)
    for i in range(100):
        log.append({"n": i, "pad": "x" * 80})
    log.close()
    files = [path, *(Path(f"{path}.{i}") for i in (1, 2, 3))]
    assert all(f.exists() for f in files) and not Path(f"{path}.4").exists()
    assert all(f.stat().st_size <= 2_000 for f in files)
    ns = sorted(json.loads(line)["n"] for f in files for line in f.read_text().splitlines())
    assert ns == list(range(100 - len(ns), 100)) and len(ns) < 100  # the newest lines, none torn, none duplicated
    assert log.written == 100 and log.dropped == 0


def test_surrogates_in_text_are_logged_as_escapes(tmp_path):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path))
    log.append({"input": "bad \ud800 half"})
    log.close()
    assert json.loads(path.read_text())["input"] == "bad \ud800 half"
