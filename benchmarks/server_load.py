"""Load test of `policyengine serve` (loopback only, bounded in time and request count).

Starts the server on 127.0.0.1 with a copy of the policy folder (so reload edits never touch the original), then
  1. closed-loop load at 1, 8 and 32 concurrent clients: requests/s, p50/p99 latency, errors;
  2. a hot reload during load (a policy file changes: compile + re-index in the background, atomic swap);
  3. a broken reload during load (a policy file stops compiling: rejected, the old policy keeps serving);
and counts failed requests (any non-200 answer or transport error) in each phase. Writes JSON and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from policyengine.server.process import ServeProcess

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # never anything else


def corpus() -> list[str]:
    texts = [json.loads(line)["text"] for line in (REPO / "examples" / "messages.jsonl").read_text().splitlines()
             if line.strip()]
    return texts


async def load(url: str, concurrency: int, seconds: float, max_requests: int, texts: list[str],
               during=None) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    digests: dict[str, int] = {}
    sent = 0
    deadline = time.monotonic() + seconds
    hard_deadline = deadline + 180  # a reload phase runs until its reload is done, but never past this
    side = None
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker(i: int) -> None:
            nonlocal sent
            k = i
            while sent < max_requests and time.monotonic() < hard_deadline and (
                    time.monotonic() < deadline or (side is not None and not side.done())):
                sent += 1
                text = texts[k % len(texts)]
                k += concurrency
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/check", json={"input": text})
                    dt = time.perf_counter() - t0
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                        continue
                    d = r.json()["policy"]["digest"]
                    digests[d] = digests.get(d, 0) + 1
                    latencies.append(dt)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

        t0 = time.perf_counter()
        side = asyncio.create_task(during(client)) if during else None
        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        side_result = await side if side else None
    latencies.sort()
    q = (lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000) if latencies else (
        lambda p: float("nan"))
    return {"concurrency": concurrency, "requests": len(latencies) + len(errors), "ok": len(latencies),
            "errors": len(errors), "error_samples": errors[:3], "seconds": round(elapsed, 2),
            "rps": round(len(latencies) / elapsed, 1), "p50_ms": round(q(0.50), 1), "p99_ms": round(q(0.99), 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            "digests": digests, "side": side_result}


async def wait_until(client: httpx.AsyncClient, pred, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r = (await client.get("/readyz")).json()
        if pred(r):
            return round(time.monotonic() - t0, 2)
        await asyncio.sleep(0.1)
    raise TimeoutError("condition not reached")


async def main_async(args: argparse.Namespace) -> dict:
    texts = corpus()
    work = Path(tempfile.mkdtemp(prefix="pe-bench-"))
    pol = work / "policies"
    shutil.copytree(REPO / args.policy if not Path(args.policy).is_absolute() else args.policy, pol)
    (work / "logs").mkdir()
    results: dict = {"policy": args.policy, "threads": args.threads, "seconds_per_run": args.seconds,
                     "max_requests_per_run": args.max_requests, "cpus": os.cpu_count(), "runs": []}
    t0 = time.monotonic()
    try:
        server = ServeProcess(str(pol), "--host", HOST, "--threads", str(args.threads),
                              "--decision-log", str(work / "logs" / "decisions.jsonl"), "--log-level", "warning",
                              env={"OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"},
                              cwd=REPO, timeout=60)
    except RuntimeError as e:
        shutil.rmtree(work, ignore_errors=True)
        raise SystemExit(f"server did not start: {e}") from None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            results["ready_after_s"] = await wait_until(c, lambda r: r["status"] == "ready", args.startup_timeout)
            results["ready_after_s"] = round(time.monotonic() - t0, 1)
            for t in texts:  # warm-up
                (await c.post("/v1/check", json={"input": t})).raise_for_status()
        for conc in args.concurrency:
            r = await load(server.url, conc, args.seconds, args.max_requests, texts)
            r["phase"] = "steady"
            results["runs"].append(r)
            print(f"steady c={conc}: {r['rps']} req/s p50 {r['pm50'] if 'pm50' in r else r['p50_ms']} ms "
                  f"p99 {r['p99_ms']} ms errors {r['errors']}", file=sys.stderr, flush=True)

        target = pol / "prompt_injection.policy"
        original = target.read_text()

        async def hot_reload(client: httpx.AsyncClient) -> dict:
            before = (await client.get("/readyz")).json()["policy"]["digest"]
            await asyncio.sleep(1.0)
            target.write_text(original + "\n# touched by the load test\n")
            took = await wait_until(client, lambda r: r["policy"]["digest"] != before, 180)
            return {"swapped_after_s": took, "from": before,
                    "to": (await client.get("/readyz")).json()["policy"]["digest"]}

        async def broken_reload(client: httpx.AsyncClient) -> dict:
            before = (await client.get("/readyz")).json()["policy"]["digest"]
            await asyncio.sleep(1.0)
            target.write_text(original + "\nrule broken_on_purpose { when input matches no_such_pattern block }\n")
            took = await wait_until(client, lambda r: r["last_reload_error"] is not None, 180)
            after = (await client.get("/readyz")).json()
            return {"rejected_after_s": took, "still_serving": after["policy"]["digest"] == before,
                    "error": after["last_reload_error"].splitlines()[0]}

        for phase, fn in (("hot reload", hot_reload), ("broken reload", broken_reload)):
            r = await load(server.url, args.reload_concurrency, args.seconds, args.max_requests, texts, fn)
            r["phase"] = phase
            results["runs"].append(r)
            print(f"{phase} c={r['concurrency']}: {r['rps']} req/s errors {r['errors']} {r['side']}",
                  file=sys.stderr, flush=True)
        target.write_text(original)
    finally:
        server.stop(60)
        log = work / "logs" / "decisions.jsonl"
        results["decision_log_lines"] = sum(1 for _ in log.open()) if log.exists() else 0
        shutil.rmtree(work, ignore_errors=True)
    return results


def table(results: dict) -> str:
    out = ["| phase | clients | requests | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        out.append(f"| {r['phase']} | {r['concurrency']} | {r['requests']} | {r['rps']} | {r['p50_ms']} | "
                   f"{r['p99_ms']} | {r['errors']} |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", default="policies")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--reload-concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per steady run (a reload run also lasts until its reload is done)")
    p.add_argument("--max-requests", type=int, default=5000, help="cap on requests per run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    results = asyncio.run(main_async(args))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    failed = sum(r["errors"] for r in results["runs"])
    side_ok = all(r["side"] is None or r["side"].get("still_serving", True) for r in results["runs"])
    print(f"\nready after {results['ready_after_s']} s; {failed} failed requests; decision log lines: "
          f"{results['decision_log_lines']}")
    return 0 if failed == 0 and side_ok else 1


if __name__ == "__main__":
    sys.exit(main())
