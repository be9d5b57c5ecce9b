"""Load test of `policyengine serve` (loopback only, bounded in time and request count).

First measures the in-process baseline in a child process (same policy, same threads, same messages): closed-loop
single `Engine.evaluate` calls plus `Decision.to_json()` (what the server does per request), and `evaluate_many`
in batches of 32. Then starts the server on 127.0.0.1 with a copy of the policy folder (so reload edits never touch
the original), and runs
  1. closed-loop load at 1, 8 and 32 concurrent clients: requests/s, p50/p99 latency, errors;
  2. a hot reload during load (a policy file changes: compile + re-index in the background, atomic swap);
  3. a broken reload during load (a policy file stops compiling: rejected, the old policy keeps serving);
and counts failed requests (any non-200 answer or transport error) in each phase. Writes JSON and prints a table
with the ratios to the in-process baseline (issue 21's targets: at 1 client p50 <= in-process p50 + 2 ms; at 32
clients req/s >= 2x in-process single-call msg/s and p99 <= 4x p50; no failed request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from policyengine.server.process import ServeProcess

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # never anything else


def corpus() -> list[str]:
    texts = [json.loads(line)["text"] for line in (REPO / "examples" / "messages.jsonl").read_text().splitlines()
             if line.strip()]
    return texts


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator runs on the same 2 cores as the
    server, and httpx spent ~3 ms of CPU per request at 32 clients (more than the server's HTTP stack does); this
    spends a small fraction of that, so the numbers measure the server. One request at a time per connection."""

    def __init__(self, url: str):
        u = urlsplit(url)
        self.host, self.port = u.hostname or HOST, u.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
                              b"content-length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), len(body), body))
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            length = next(int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:])
                          if k.strip().lower() == b"content-length")
            return status, await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process `pid` (Linux /proc), or NaN."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return float("nan")


async def load(url: str, concurrency: int, seconds: float, max_requests: int, texts: list[str],
               during=None, pid: int | None = None) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    digests: dict[str, int] = {}
    sent = 0
    deadline = time.monotonic() + seconds
    hard_deadline = deadline + 180  # a reload phase runs until its reload is done, but never past this
    side = None
    bodies = [json.dumps({"input": t}).encode() for t in texts]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:  # for the side task (/readyz polls)

        async def worker(i: int) -> None:
            nonlocal sent
            k = i
            conn = RawConnection(url)
            while sent < max_requests and time.monotonic() < hard_deadline and (
                    time.monotonic() < deadline or (side is not None and not side.done())):
                sent += 1
                body = bodies[k % len(bodies)]
                k += concurrency
                t0 = time.perf_counter()
                try:
                    status, data = await asyncio.wait_for(conn.post("/v1/check", body), 60)
                    dt = time.perf_counter() - t0
                    if status != 200:
                        errors.append(f"{status}: {data[:200]!r}")
                        continue
                    d = json.loads(data)["policy"]["digest"]
                    digests[d] = digests.get(d, 0) + 1
                    latencies.append(dt)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
            conn.close()

        t0 = time.perf_counter()
        c0 = process_cpu(pid)
        side = asyncio.create_task(during(client)) if during else None
        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        cpu = process_cpu(pid) - c0
        side_result = await side if side else None
    p50, p99 = _quantiles(latencies)
    return {"concurrency": concurrency, "requests": len(latencies) + len(errors), "ok": len(latencies),
            "errors": len(errors), "error_samples": errors[:3], "seconds": round(elapsed, 2),
            "rps": round(len(latencies) / elapsed, 1), "p50_ms": p50, "p99_ms": p99,
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            "server_cpu_ms_per_req": round(cpu / len(latencies) * 1000, 2) if latencies and cpu == cpu else None,
            "server_cpu_util": round(cpu / elapsed, 2) if cpu == cpu else None,
            "digests": digests, "side": side_result}


def _quantiles(latencies: list[float]) -> tuple[float, float]:
    latencies = sorted(latencies)
    if not latencies:
        return float("nan"), float("nan")
    return (round(latencies[int(0.50 * len(latencies))] * 1000, 1),
            round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000, 1))


def inprocess(policy: str, threads: int, seconds: float) -> dict:
    """The baseline (run in a child process: `--inprocess-only`): single evaluate + to_json, closed loop, for
    `seconds`; then evaluate_many in batches of 32 (what micro-batching can reach at best)."""
    from policyengine.engine import Engine
    from policyengine.server.config import resolve_policy_path

    texts = corpus()
    engine = Engine.from_path(resolve_policy_path(policy)[0], threads=threads)
    for t in texts:  # warm-up, as for the server
        engine.evaluate(t).to_json()
    latencies: list[float] = []
    k = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    while time.perf_counter() - t0 < seconds:
        a = time.perf_counter()
        engine.evaluate(texts[k % len(texts)]).to_json()
        latencies.append(time.perf_counter() - a)
        k += 1
    single_s = time.perf_counter() - t0
    single_cpu = time.process_time() - c0
    p50, p99 = _quantiles(latencies)
    n = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    while time.perf_counter() - t0 < seconds:
        batch = [texts[(n + i) % len(texts)] for i in range(32)]
        for d in engine.evaluate_many(batch):
            d.to_json()
        n += len(batch)
    batch_s = time.perf_counter() - t0
    batch_cpu = time.process_time() - c0
    return {"requests": len(latencies), "rps": round(len(latencies) / single_s, 1), "p50_ms": p50, "p99_ms": p99,
            "cpu_ms_per_msg": round(single_cpu / len(latencies) * 1000, 2),
            "batch32_msgs_per_s": round(n / batch_s, 1), "batch32_cpu_ms_per_msg": round(batch_cpu / n * 1000, 2)}


def run_inprocess(args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, __file__, "--inprocess-only", "--policy", args.policy, "--threads",
                          str(args.threads), "--seconds", str(args.seconds)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"in-process baseline failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


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
    results["loadavg_before"] = loadavg()
    results["inprocess"] = run_inprocess(args)
    b = results["inprocess"]
    print(f"in-process: single {b['rps']} msg/s p50 {b['p50_ms']} ms p99 {b['p99_ms']} ms; "
          f"evaluate_many(32) {b['batch32_msgs_per_s']} msg/s", file=sys.stderr, flush=True)
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
            r = await load(server.url, conc, args.seconds, args.max_requests, texts, pid=server.proc.pid)
            r["phase"] = "steady"
            results["runs"].append(r)
            print(f"steady c={conc}: {r['rps']} req/s p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms errors {r['errors']}",
                  file=sys.stderr, flush=True)
        results["loadavg_after_steady"] = loadavg()
        results["ratios"] = ratios(results)
        if args.steady_only:
            return results

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
            r = await load(server.url, args.reload_concurrency, args.seconds, args.max_requests, texts, fn,
                           pid=server.proc.pid)
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


def ratios(results: dict) -> dict:
    """Server vs in-process, per steady run: p50 overhead (ms), throughput ratio, p99/p50."""
    b = results["inprocess"]
    out = {}
    for r in results["runs"]:
        if r["phase"] == "steady":
            out[str(r["concurrency"])] = {"p50_over_inprocess_ms": round(r["p50_ms"] - b["p50_ms"], 1),
                                          "rps_over_inprocess_single": round(r["rps"] / b["rps"], 2),
                                          "p99_over_p50": round(r["p99_ms"] / r["p50_ms"], 2),
                                          "cpu_per_msg_inprocess_single_over_server":
                                              round(b["cpu_ms_per_msg"] / r["server_cpu_ms_per_req"], 2)
                                              if r.get("server_cpu_ms_per_req") else None}
    return out


def table(results: dict) -> str:
    b = results["inprocess"]
    out = ["| phase | clients | requests | req/s | p50 ms | p99 ms | failed | CPU ms/msg | vs in-process |",
           "|---|---|---|---|---|---|---|---|---|",
           f"| in-process `evaluate` (baseline) | 1 | {b['requests']} | {b['rps']} | {b['p50_ms']} | {b['p99_ms']} | 0 "
           f"| {b['cpu_ms_per_msg']} | `evaluate_many(32)`: {b['batch32_msgs_per_s']} msg/s, "
           f"{b['batch32_cpu_ms_per_msg']} CPU ms/msg |"]
    rat = results.get("ratios", {})
    for r in results["runs"]:
        x = rat.get(str(r["concurrency"])) if r["phase"] == "steady" else None
        vs = (f"p50 {x['p50_over_inprocess_ms']:+.1f} ms, {x['rps_over_inprocess_single']}x req/s, "
              f"p99/p50 {x['p99_over_p50']}" if x else "")
        out.append(f"| {r['phase']} | {r['concurrency']} | {r['requests']} | {r['rps']} | {r['p50_ms']} | "
                   f"{r['p99_ms']} | {r['errors']} | {r.get('server_cpu_ms_per_req')} | {vs} |")
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
    p.add_argument("--steady-only", action="store_true", help="skip the two reload phases")
    p.add_argument("--inprocess-only", action="store_true", help=argparse.SUPPRESS)  # the baseline's child process
    args = p.parse_args()
    if args.inprocess_only:
        print(json.dumps(inprocess(args.policy, args.threads, args.seconds)))
        return 0
    results = asyncio.run(main_async(args))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    failed = sum(r["errors"] for r in results["runs"])
    side_ok = all(r["side"] is None or r["side"].get("still_serving", True) for r in results["runs"])
    print(f"\nready after {results['ready_after_s']} s; {failed} failed requests; decision log lines: "
          f"{results['decision_log_lines']}; load average before {results['loadavg_before']}, after the steady "
          f"runs {results.get('loadavg_after_steady')}")
    return 0 if failed == 0 and side_ok else 1


if __name__ == "__main__":
    sys.exit(main())
