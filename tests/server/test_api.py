"""The HTTP API end to end over real HTTP: check, batch, errors, limits, auth, request ids, metrics, OpenAPI."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from policyengine.server import ServerConfig, create_app

from .conftest import REPO, serve_app, wait_ready

SECRET = "here is my key sk-abcdefghijk"


@pytest.fixture
def server(small_policy: Path):
    app = create_app(ServerConfig(policy=str(small_policy), max_body_bytes=10_000, max_batch_items=4))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        wait_ready(client)
        yield client, app


def test_check_returns_the_cli_decision_schema(server, small_policy):
    client, _ = server
    r = client.post("/v1/check", json={"input": SECRET, "context": {"channel": "web"}})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["action"] == "block" and d["rule"] == "no_secrets" and d["message"] == "no api keys"
    ev = d["reasons"][0]["evidence"][0]
    assert ev["kind"] == "regex" and SECRET[ev["span"][0]:ev["span"][1]] == "sk-abcdefghijk"
    assert d["reasons"][0]["source"] == {"file": str(small_policy), "line": 12, "column": 1}
    # same schema and content as `policyengine check --format json`
    from policyengine.engine import Engine

    assert d == json.loads(Engine.from_path(str(small_policy)).evaluate(SECRET, context={"channel": "web"}).to_json())
    assert client.post("/v1/check", json={"input": "hello"}).json()["action"] == "allow"


def test_batch(server):
    client, _ = server
    r = client.post("/v1/check/batch", json={"items": [{"input": "hello"}, {"input": SECRET}, {"output": SECRET}]})
    assert r.status_code == 200, r.text
    assert [x["action"] for x in r.json()["results"]] == ["allow", "block", "allow"]  # the rule reads input only
    r = client.post("/v1/check/batch", json={"items": [{"input": "a"}] * 5})
    assert r.status_code == 413 and "limit is 4" in r.json()["error"]["message"]
    r = client.post("/v1/check/batch", json={"items": [{"input": "a"}, {"input": "b", "context": {"channel": 1}}]})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "invalid_context" and err["param"] == "items.1.context"
    assert "channel must be a string" in err["message"]


@pytest.mark.parametrize("body, status, kind, fragment", [
    ('{"input": ', 400, "invalid_json", "not valid JSON"),
    (b'{"input": "caf\xc3"}', 400, "invalid_json", "not valid JSON: not UTF-8 (invalid continuation byte) at byte 14"),
    (b'{"input": "x\xff"}', 400, "invalid_json", "not UTF-8 (invalid start byte) at byte 12"),
    ("", 400, "invalid_json", "request body is empty"),
    ("[1, 2]", 422, "invalid_request_error", "valid dictionary"),
    ('{"input": 3}', 422, "invalid_request_error", "input: Input should be a valid string"),
    ('{"input": "x", "extra": 1}', 422, "invalid_request_error", "extra: Extra inputs are not permitted"),
    ("{}", 422, "invalid_request_error", 'needs "input", "output" or both'),
    ('{"input": "x", "context": [1]}', 422, "invalid_request_error", "context: Input should be a valid dictionary"),
    ('{"input": "x", "context": {"channel": 3}}', 422, "invalid_context", "context.channel must be a string"),
])
def test_clear_4xx_errors(server, body, status, kind, fragment):
    client, _ = server
    r = client.post("/v1/check", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == kind and fragment in err["message"], err


def test_curl_style_form_content_type_is_read_as_json(server):
    client, _ = server
    r = client.post("/v1/check", content=json.dumps({"input": SECRET}),
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["action"] == "block"


def test_request_size_limit_by_header_and_by_stream(server):
    client, _ = server
    big = json.dumps({"input": "a" * 20_000})
    r = client.post("/v1/check", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        yield b'{"input": "'
        for _ in range(40):
            yield b"a" * 1000
        yield b'"}'

    r = client.post("/v1/check", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "exceeds the limit of 10000 bytes" in r.json()["error"]["message"]
    assert client.post("/v1/check", json={"input": "a" * 5000}).status_code == 200


def test_unknown_endpoint_and_method(server):
    client, _ = server
    assert client.get("/v1/nope").json()["error"]["type"] == "not_found"
    r = client.get("/v1/check")
    assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed"


def test_request_id_is_echoed_or_generated(server):
    client, _ = server
    r = client.post("/v1/check", json={"input": "x"}, headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.post("/v1/check", json={"input": "x"}, headers={"x-request-id": "bad id\twith spaces"})
    assert len(r.headers["x-request-id"]) == 32 and r.headers["x-request-id"] != "bad id\twith spaces"


def test_health_ready_and_metrics(server):
    client, _ = server
    ready = client.get("/readyz").json()
    p = ready["policy"]
    assert client.get("/healthz").json() == {"status": "ok", "last_reload_error": None, "policy": {
        "name": "small", "version": "1", "digest": p["digest"]}}
    assert ready["status"] == "ready" and ready["policy"]["name"] == "small"
    assert ready["policy"]["digest"].startswith("sha256:") and ready["policy"]["model"] is None
    client.post("/v1/check", json={"input": SECRET})
    client.post("/v1/check", json={"input": "hi"})
    client.post("/v1/check", content="{", headers={"content-type": "application/json"})
    text = client.get("/metrics").text
    assert 'policyengine_decisions_total{action="block",rule="no_secrets"}' in text
    assert 'policyengine_decisions_total{action="allow",rule="none"}' in text
    assert 'policyengine_requests_total{endpoint="/v1/check",status="400"} 1.0' in text
    assert 'policyengine_request_seconds_bucket{endpoint="/v1/check",le="+Inf"}' in text
    assert "policyengine_model_seconds_count" in text and "policyengine_ready 1.0" in text
    assert 'policyengine_reloads_total{result="loaded"} 1.0' in text


def test_api_key_auth(small_policy):
    app = create_app(ServerConfig(policy=str(small_policy), api_keys=("k1", "k2")))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        wait_ready(client)  # health endpoints stay open
        r = client.post("/v1/check", json={"input": "x"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert r.headers["www-authenticate"] == "Bearer"
        assert client.post("/v1/check", json={"input": "x"}, headers={"authorization": "Bearer nope"}).status_code == 401
        assert client.post("/v1/check", json={"input": "x"}, headers={"authorization": "Bearer k2"}).status_code == 200
        assert client.post("/v1/check", json={"input": "x"}, headers={"x-api-key": "k1"}).status_code == 200
        assert client.get("/metrics").status_code == 401
        assert client.get("/healthz").status_code == 200


def test_not_ready_is_a_clear_503(tmp_path):
    bad = tmp_path / "bad.policy"
    bad.write_text("policy p {\n  default allow\n}\nrule r { when input matches nope block }\n")
    app = create_app(ServerConfig(policy=str(bad)))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        assert client.get("/healthz").json()["policy"] is None  # alive, nothing loaded
        assert r.json()["status"] == "loading"
        r = client.post("/v1/check", json={"input": "x"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "not_ready"
        assert "nope" in client.get("/readyz").json()["last_reload_error"]


def test_openapi_schema_is_served_and_checked_in(server):
    client, app = server
    served = client.get("/openapi.json").json()
    assert served == app.openapi()
    checked_in = json.loads((REPO / "docs" / "openapi.json").read_text())
    assert served == checked_in, "docs/openapi.json is stale: run `make openapi`"
    paths = served["paths"]
    assert {"/v1/check", "/v1/check/batch", "/v1/moderations", "/healthz", "/readyz", "/metrics"} <= set(paths)
    ok = paths["/v1/check"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Decision"}


def test_loopback_detection():
    from policyengine.server.config import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.1")
