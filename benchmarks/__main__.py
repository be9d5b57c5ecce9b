"""`python -m benchmarks` (or `make bench`): the five measurements of issue 4, plus the ONNX backend comparison.

Results go to benchmarks/results/<UTC date-time>.json and benchmarks/results/latest.json; a Markdown table is
printed (paste it into README's performance section). Options: --quick (smaller inputs, for a smoke run),
--only NAME[,NAME] (regex, concept, e2e, cold, peers, backends).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PEERS_VENV = ROOT / "benchmarks" / ".peers-venv"
PEERS_PACKAGES = ["llm-guard", "presidio-analyzer", "hyperscan", "lark", "pydantic>=2.6", "google-re2", "regex",
                  "confusable-homoglyphs", "tqdm", "pyyaml", "numpy"]


def peers(quick: bool) -> dict:
    """Build the peers' virtualenv if needed (torch pinned first: llm-guard depends on torch), then run there."""
    py = Path(os.environ.get("PEERS_PYTHON", PEERS_VENV / "bin" / "python"))
    log = []
    if not py.exists():
        steps = [[sys.executable, "-m", "venv", str(PEERS_VENV)],
                 [str(PEERS_VENV / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "requirements.txt")],
                 [str(PEERS_VENV / "bin" / "pip"), "install", "-q", *PEERS_PACKAGES]]
        for cmd in steps:
            r = subprocess.run(cmd, capture_output=True, text=True)
            log.append(" ".join(cmd[:4]) + f" -> exit {r.returncode}")
            if r.returncode != 0:
                return {"error": "the peers could not be installed here", "command": " ".join(cmd),
                        "stderr_tail": r.stderr.strip().splitlines()[-15:]}
    out = RESULTS / ".peers.json"
    cmd = [str(py), "-m", "benchmarks.peers", "--json", str(out)] + (["--messages", "400", "--runs", "2"] if quick else [])
    r = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": "the peers benchmark failed", "stderr_tail": r.stderr.strip().splitlines()[-15:]}
    res = json.loads(out.read_text())
    out.unlink()
    res["install_log"] = log
    return res


def table(res: dict) -> str:
    m = res["machine"]
    rows = [f"Measured {res['date']} on {m['cpu']}, {m['cores']} cores, {m['memory']}, Python {m['python']}, "
            f"OMP_NUM_THREADS={m['omp_num_threads']}; load average at start {m['load_average_at_start']} "
            "(shared machine: absolute numbers are noisy, ratios are medians of per-run same-process ratios).", "",
            "| measurement | result | target |", "|---|---|---|"]
    r = res.get("regex")
    if r:
        rows += [f"| 1. regex stage, {r['patterns']} patterns x {r['messages']} msgs ({r['message_chars_mean']:.0f} "
                 f"chars avg): one Hyperscan scan + exact spans vs `re.search` loop | **{r['ratio_stage']}x** "
                 f"({r['stage_msgs_per_s']:.0f} vs {r['baseline_msgs_per_s']:.0f} msgs/s); scan alone "
                 f"{r['ratio_scan_only']}x; whole evaluate() of a 200-rule policy {r['ratio_full_evaluate']}x | >= 20x |"]
    c = res.get("concept")
    if c:
        rows += [f"| 2. concept stage: engine.evaluate_many vs direct encode+FAISS on the same {c['chunks']} chunks "
                 f"(batch {c['batch_size']}) | **{c['ratio_engine_vs_direct']}** | >= 0.9 |"]
    e = res.get("e2e")
    if e:
        rows += [f"| 3. end to end, default pack, {e['messages']} single calls | **{e['msgs_per_s']} msgs/s**, "
                 f"p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms ({e['share_without_model_of_first_300']:.0%} of "
                 "messages needed no embedding) | - |"]
    k = res.get("cold")
    if k:
        rows += [f"| 4. cold start: a new `policyengine check` process on the default pack, compiled-policy cache warm "
                 f"(median of {k['runs']}) | **{k['check_warm_s']} s, {k['check_warm_mb']} MB** (from a bundle "
                 f"{k['check_bundle_s']} s, {k['check_bundle_mb']} MB); `import torch` alone {k['import_torch_s']} s, "
                 f"ratio {k['check_warm_vs_import_torch']}x"
                 + (f"; old path (torch, no cache) {k['torch_nocache_s']} s, {k['torch_nocache_mb']} MB"
                    if "torch_nocache_s" in k else "") + " | <= 1.5 s, <= 350 MB |"]
    p = res.get("peers")
    if p:
        if "error" in p:
            rows += [f"| 5. peers | not measured: {p['error']} | >= 10x |"]
        else:
            for name in ("llm_guard_regex", "llm_guard_ban_substrings", "presidio_pattern_recognizer"):
                if name in p:
                    rows += [f"| 5. {name} ({p['messages']} msgs) | **{p[name]['ratio']}x** "
                             f"({p[name]['engine_msgs_per_s']:.0f} vs {p[name]['peer_msgs_per_s']:.0f} msgs/s) | >= 10x |"]
            for name, err in p.get("errors", {}).items():
                rows += [f"| 5. {name} | not measured: {err} | >= 10x |"]
    b = res.get("backends")
    if b:
        rows += [f"| 6. ONNX int8 vs torch | single {b['speedup_single']}x ({b['onnx_single_msgs_per_s']} vs "
                 f"{b['torch_single_msgs_per_s']}/s), batch 32 {b['speedup_batch32']}x; cosine mean "
                 f"{b['cosine_mean']} min {b['cosine_min']}; {b['decisions_flipped']} of {b['rows']} decisions "
                 f"flipped {b['flips']} | report |"]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--quick", action="store_true", help="small inputs (a smoke run, not for the README)")
    ap.add_argument("--only", default="regex,concept,e2e,cold,peers,backends,trained")
    a = ap.parse_args()
    only = set(a.only.split(","))
    q = a.quick
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(), "quick": q}
    t0 = time.time()
    if "regex" in only:
        from . import regex_stage

        res["regex"] = regex_stage.run(runs=3 if q else 5, n_messages=2000 if q else 20_000)
        print("regex done", round(time.time() - t0), file=sys.stderr)
    if "concept" in only:
        from . import concept_stage

        res["concept"] = concept_stage.run(runs=2 if q else 3, n_messages=100 if q else 400)
        print("concept done", round(time.time() - t0), file=sys.stderr)
    if "e2e" in only:
        from . import end_to_end

        res["e2e"] = end_to_end.run(n_messages=200 if q else 2000)
        print("e2e done", round(time.time() - t0), file=sys.stderr)
    if "cold" in only:
        from . import cold_start

        res["cold"] = cold_start.run(runs=2 if q else 5, baseline=not q)
        print("cold done", round(time.time() - t0), file=sys.stderr)
    if "peers" in only:
        res["peers"] = peers(q)
        print("peers done", round(time.time() - t0), file=sys.stderr)
    if "backends" in only:
        from . import backends

        res["backends"] = backends.run(runs=2 if q else 3, max_rows=300 if q else 2000)
        print("backends done", round(time.time() - t0), file=sys.stderr)
    if "trained" in only:
        from . import trained

        res["trained"] = trained.run(quick=q)
        print("trained done", round(time.time() - t0), file=sys.stderr)
    res["seconds_total"] = round(time.time() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    text = json.dumps(res, indent=1, ensure_ascii=False)
    if not q:
        (RESULTS / f"{stamp}.json").write_text(text)
        (RESULTS / "latest.json").write_text(text)
    else:
        (RESULTS / "quick.json").write_text(text)
    print(table(res))


if __name__ == "__main__":
    main()
