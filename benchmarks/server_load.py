"""Load test of `policyengine serve` (loopback only, bounded in time and request count).

Starts the server on 127.0.0.1 with a copy of the policy folder (so reload edits never touch the original) and an
in-process baseline in a child process (same policy, threads and messages: closed-loop single `Engine.evaluate`
calls plus `Decision.to_json()`, what the server does per request), then runs
  1. closed-loop load at 1, 8 and 32 concurrent clients: requests/s, p50/p99 latency, errors, server CPU per
     request; each run alternates slices of server load with slices of the in-process baseline, so the two are
     compared under the same machine load;
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
            "digests": digests, "side": side_result, "_latencies": latencies, "_cpu": cpu}


def _quantiles(latencies: list[float]) -> tuple[float, float]:
    latencies = sorted(latencies)
    if not latencies:
        return float("nan"), float("nan")
    return (round(latencies[int(0.50 * len(latencies))] * 1000, 1),
            round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000, 1))


class Baseline:
    """The in-process baseline in a child process (`--inprocess-child`): same policy, threads and messages, single
    `Engine.evaluate` + `Decision.to_json()` calls (what the server does per request) in a closed loop. It runs in
    slices that alternate with the server's, so both see the same machine load (other jobs on a shared machine
    change the speed of either by 2x within a minute); only one of the two runs at a time."""

    def __init__(self, args: argparse.Namespace):
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
               "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--inprocess-child", "--policy", args.policy,
                                      "--threads", str(args.threads)], cwd=REPO, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self._ask(None)  # "ready" once the engine is loaded and warm

    def _ask(self, command: str | None) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"in-process baseline exited ({self.proc.wait()})")
        return json.loads(line)

    def single(self, seconds: float) -> dict:
        return self._ask(f"single {seconds}")

    def batch(self, seconds: float) -> dict:
        return self._ask(f"batch {seconds}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def inprocess_child(policy: str, threads: int) -> None:
    """Answer `single SECONDS` / `batch SECONDS` lines on stdin with one JSON line each."""
    from policyengine.engine import Engine
    from policyengine.server.config import resolve_policy_path

    texts = corpus()
    engine = Engine.from_path(resolve_policy_path(policy)[0], threads=threads)
    for t in texts:  # warm-up, as for the server
        engine.evaluate(t).to_json()
    print(json.dumps({"ready": True}), flush=True)
    k = 0
    for line in sys.stdin:
        what, seconds = line.split()
        latencies: list[float] = []
        n = 0
        t0, c0 = time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < float(seconds):
            if what == "single":
                a = time.perf_counter()
                engine.evaluate(texts[k % len(texts)]).to_json()
                latencies.append(time.perf_counter() - a)
                k += 1
                n += 1
            else:
                batch = [texts[(k + i) % len(texts)] for i in range(32)]
                for d in engine.evaluate_many(batch):
                    d.to_json()
                k += 32
                n += 32
        print(json.dumps({"n": n, "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                          "latencies": latencies}), flush=True)


def summarise_baseline(slices: list[dict]) -> dict:
    lat = [x for s in slices for x in s["latencies"]]
    n, wall, cpu = sum(s["n"] for s in slices), sum(s["wall"] for s in slices), sum(s["cpu"] for s in slices)
    p50, p99 = _quantiles(lat)
    return {"requests": n, "rps": round(n / wall, 1), "p50_ms": p50, "p99_ms": p99,
            "cpu_ms_per_msg": round(cpu / n * 1000, 2)}


def merge_runs(parts: list[dict]) -> dict:
    """One steady run from its slices."""
    lat = [x for p in parts for x in p.pop("_latencies")]
    elapsed = sum(p["seconds"] for p in parts)
    cpu = sum(p["_cpu"] for p in parts)
    for p in parts:
        p.pop("_cpu")
    p50, p99 = _quantiles(lat)
    digests: dict[str, int] = {}
    for p in parts:
        for d, k in p["digests"].items():
            digests[d] = digests.get(d, 0) + k
    errors = [e for p in parts for e in p["error_samples"]]
    ok = sum(p["ok"] for p in parts)
    return {"concurrency": parts[0]["concurrency"], "requests": sum(p["requests"] for p in parts), "ok": ok,
            "errors": sum(p["errors"] for p in parts), "error_samples": errors[:3], "seconds": round(elapsed, 2),
            "rps": round(ok / elapsed, 1), "p50_ms": p50, "p99_ms": p99,
            "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
            "server_cpu_ms_per_req": round(cpu / ok * 1000, 2) if ok and cpu == cpu else None,
            "server_cpu_util": round(cpu / elapsed, 2) if cpu == cpu else None,
            "digests": digests, "side": None, "slices": len(parts)}


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
    baseline = Baseline(args)
    t0 = time.monotonic()
    try:
        server = ServeProcess(str(pol), "--host", HOST, "--threads", str(args.threads),
                              "--decision-log", str(work / "logs" / "decisions.jsonl"), "--log-level", "warning",
                              env={"OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"},
                              cwd=REPO, timeout=60)
    except RuntimeError as e:
        baseline.close()
        shutil.rmtree(work, ignore_errors=True)
        raise SystemExit(f"server did not start: {e}") from None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            results["ready_after_s"] = await wait_until(c, lambda r: r["status"] == "ready", args.startup_timeout)
            results["ready_after_s"] = round(time.monotonic() - t0, 1)
            for t in texts:  # warm-up
                (await c.post("/v1/check", json={"input": t})).raise_for_status()
        bt = baseline.batch(min(args.seconds, 5.0))
        results["inprocess_batch32"] = {"msgs_per_s": round(bt["n"] / bt["wall"], 1),
                                        "cpu_ms_per_msg": round(bt["cpu"] / bt["n"] * 1000, 2)}
        results["inprocess"] = {}
        piece = args.seconds / args.rounds
        for conc in args.concurrency:
            base_slices, parts = [], []
            for _ in range(args.rounds):  # alternate: baseline slice, server slice
                base_slices.append(baseline.single(piece))
                parts.append(await load(server.url, conc, piece, max(1, args.max_requests // args.rounds), texts,
                                        pid=server.proc.pid))
            r = merge_runs(parts)
            r["phase"] = "steady"
            results["runs"].append(r)
            b = results["inprocess"][str(conc)] = summarise_baseline(base_slices)
            print(f"steady c={conc}: {r['rps']} req/s p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms errors {r['errors']}"
                  f" | in-process alongside: {b['rps']} msg/s p50 {b['p50_ms']} ms", file=sys.stderr, flush=True)
        baseline.close()
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
            r.pop("_latencies")
            r.pop("_cpu")
            r["phase"] = phase
            results["runs"].append(r)
            print(f"{phase} c={r['concurrency']}: {r['rps']} req/s errors {r['errors']} {r['side']}",
                  file=sys.stderr, flush=True)
        target.write_text(original)
    finally:
        baseline.close()
        server.stop(60)
        log = work / "logs" / "decisions.jsonl"
        results["decision_log_lines"] = sum(1 for _ in log.open()) if log.exists() else 0
        shutil.rmtree(work, ignore_errors=True)
    return results


def ratios(results: dict) -> dict:
    """Server vs the in-process baseline measured alongside it (same concurrency's alternating slices)."""
    out = {}
    for r in results["runs"]:
        b = results["inprocess"].get(str(r["concurrency"]))
        if r["phase"] == "steady" and b:
            out[str(r["concurrency"])] = {
                "p50_over_inprocess_ms": round(r["p50_ms"] - b["p50_ms"], 1),
                "rps_over_inprocess_single": round(r["rps"] / b["rps"], 2),
                "p99_over_p50": round(r["p99_ms"] / r["p50_ms"], 2),
                "cpu_per_msg_inprocess_single_over_server":
                    round(b["cpu_ms_per_msg"] / r["server_cpu_ms_per_req"], 2) if r.get("server_cpu_ms_per_req")
                    else None}
    return out


def table(results: dict) -> str:
    out = ["| phase | clients | requests | req/s | p50 ms | p99 ms | failed | server CPU ms/req | in-process alongside: "
           "msg/s, p50 ms, CPU ms/msg | server vs in-process |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    rat = results.get("ratios", {})
    for r in results["runs"]:
        b = results["inprocess"].get(str(r["concurrency"])) if r["phase"] == "steady" else None
        x = rat.get(str(r["concurrency"])) if b else None
        alongside = f"{b['rps']}, {b['p50_ms']}, {b['cpu_ms_per_msg']}" if b else ""
        vs = (f"p50 {x['p50_over_inprocess_ms']:+.1f} ms, {x['rps_over_inprocess_single']}x req/s, "
              f"p99/p50 {x['p99_over_p50']}" if x else "")
        out.append(f"| {r['phase']} | {r['concurrency']} | {r['requests']} | {r['rps']} | {r['p50_ms']} | "
                   f"{r['p99_ms']} | {r['errors']} | {r.get('server_cpu_ms_per_req')} | {alongside} | {vs} |")
    bt = results.get("inprocess_batch32")
    if bt:
        out.append(f"\nin-process evaluate_many(32): {bt['msgs_per_s']} msg/s, {bt['cpu_ms_per_msg']} CPU ms/msg")
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
    p.add_argument("--rounds", type=int, default=5, help="a steady run alternates this many slices of in-process "
                                                           "baseline and server load")
    p.add_argument("--inprocess-child", action="store_true", help=argparse.SUPPRESS)  # the baseline's process
    args = p.parse_args()
    if args.inprocess_child:
        inprocess_child(args.policy, args.threads)
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
