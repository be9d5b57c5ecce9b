"""The load test's HTTP client and bookkeeping (benchmarks/server_load.py) against a real server on loopback."""

from __future__ import annotations

import asyncio

import httpx

from benchmarks.server_load import RawConnection, load, merge_runs, ratios
from policyengine.server import ServerConfig, create_app

from .conftest import serve_app, wait_ready


def test_raw_keepalive_client_counts_answers_errors_and_digests(small_policy):
    app = create_app(ServerConfig(policy=str(small_policy), max_body_bytes=2_000))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        digest = wait_ready(client)["policy"]["digest"]

        async def one() -> tuple[int, bytes, int, bytes]:
            conn = RawConnection(url)
            try:
                status, body = await conn.post("/v1/check", b'{"input": "my key sk-abcdefghijk"}')
                bad, err = await conn.post("/v1/check", b'{"input": 3}')  # same connection after an error
                return status, body, bad, err
            finally:
                conn.close()

        status, body, bad, err = asyncio.run(one())
        assert status == 200 and b'"action": "block"' in body
        assert bad == 422 and b"invalid_request_error" in err

        parts = [asyncio.run(load(url, 4, 0.3, 200, ["hello", "my key sk-abcdefghijk"])) for _ in range(2)]
        assert all(p["errors"] == 0 and p["ok"] > 0 for p in parts)
        oks = sum(p["ok"] for p in parts)
        merged = merge_runs(parts)
        assert merged["ok"] == oks and merged["slices"] == 2
        assert merged["digests"] == {digest: merged["ok"]} and merged["p50_ms"] <= merged["p99_ms"]
        assert asyncio.run(load(url, 2, 0.3, 50, ["x" * 3_000]))["errors"] > 0  # 413s are counted as failures

        results = {"runs": [{**merged, "phase": "steady"}],
                   "inprocess": {"4": {"rps": merged["rps"] / 2, "p50_ms": merged["p50_ms"] - 1.0, "cpu_ms_per_msg": 2.0}}}
        results["runs"][0]["server_cpu_ms_per_req"] = 1.0
        r = ratios(results)["4"]
        assert r["rps_over_inprocess_single"] == 2.0 and r["p50_over_inprocess_ms"] == 1.0
        assert r["cpu_per_msg_inprocess_single_over_server"] == 2.0
