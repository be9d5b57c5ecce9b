#!/usr/bin/env python3
"""Measure a policy pack on the labeled data in ../shared/data.

For every jsonl file it prints the number of rows, the false-refusal rate (share of
`safe` rows blocked) and the catch rate (share of `unsafe` rows blocked). Only
action == "block" counts as blocked. For PII data (presidio_pii) it prints instead the
redact rate on unsafe rows and the any-action rate on safe rows.

Rows are split deterministically by sha256(row id): last hex digit < 'a' -> dev (~62%),
otherwise holdout. Tune the pack only by looking at dev errors (--errors prints dev or
holdout errors for whichever --split you pick, so keep it on dev while tuning).

Usage:
  OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_pack.py \
      [--policy policies/default.policy] [--data-dir ../shared/data] \
      [--split dev|holdout|all|both] [--limit N] [--errors N] [--files a,b,...]
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = [
    "coconot_contrast",
    "jbb_behaviors",
    "harmbench_val",
    "notinject",
    "giskard_injections",
    "hatecheck",
    "presidio_pii",
]
PII_FILES = {"presidio_pii"}
# Only this many rows are sampled from the large files unless --limit says otherwise.
LARGE_DEFAULT_LIMIT = {"hatecheck": 1000}


def split_of(row_id: str) -> str:
    return "dev" if hashlib.sha256(row_id.encode("utf-8")).hexdigest()[-1] < "a" else "holdout"


def load_rows(path: Path, split: str, limit: int | None) -> list[dict]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    if split != "all":
        rows = [r for r in rows if split_of(r["id"]) == split]
    if limit is not None and len(rows) > limit:
        rng = random.Random(0)  # fixed sample, so runs are comparable
        rows = sorted(rng.sample(rows, limit), key=lambda r: r["id"])
    return rows


def cell(k: int, n: int) -> str:
    """"12.3% (4/33) [4.8-27.9]": a rate with its Wilson 95% interval, or "-" when there are no rows."""
    if not n:
        return "-"
    from policyengine.measure.stats import wilson

    iv = wilson(k, n)
    return f"{100 * k / n:.1f}% ({k}/{n}) [{100 * iv.low:.1f}-{100 * iv.high:.1f}]"


def tally(rows: list[dict], decisions: list, blocked: list[bool] | None = None, where: str = "") -> tuple:
    """(safe blocked, safe rows, unsafe blocked, unsafe rows). Stops on evaluation errors: on_error would turn them
    into blocks, and a broken approach must not look like catch."""
    failed = [d.errors[0] for d in decisions if d.errors]
    if failed:
        raise SystemExit(f"{where}: {len(failed)} evaluation errors, first: {failed[0]}")
    if blocked is None:
        blocked = [d.action == "block" for d in decisions]
    safe = [b for r, b in zip(rows, blocked) if r["label"] == "safe"]
    unsafe = [b for r, b in zip(rows, blocked) if r["label"] == "unsafe"]
    return (sum(safe), len(safe), sum(unsafe), len(unsafe))


def pct(n: int, d: int) -> str:
    return f"{(100.0 * n / d):5.1f}% ({n}/{d})" if d else "    -  (0/0)"


def measure_file(engine, name: str, rows: list[dict], n_errors: int) -> dict:
    t0 = time.time()
    decisions = engine.evaluate_many([{"input": r["text"]} for r in rows])
    elapsed = time.time() - t0
    safe = [(r, d) for r, d in zip(rows, decisions) if r["label"] == "safe"]
    unsafe = [(r, d) for r, d in zip(rows, decisions) if r["label"] == "unsafe"]
    res: dict = {"file": name, "rows": len(rows), "seconds": elapsed}
    if name in PII_FILES:
        res["safe_hit"] = sum(d.action != "allow" for _, d in safe)
        res["unsafe_hit"] = sum(d.action == "redact" for _, d in unsafe)
        res["safe_blocked"] = sum(d.action == "block" for _, d in safe)
        res["unsafe_blocked"] = sum(d.action == "block" for _, d in unsafe)
        # per entity type: share of rows containing that type that got redacted
        by_type: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        for r, d in unsafe:
            for t in {s["type"] for s in r.get("spans", [])}:
                by_type[t][1] += 1
                by_type[t][0] += d.action == "redact"
        res["by_type"] = dict(by_type)
        misses = [(r, d) for r, d in unsafe if d.action != "redact"]
        fps = [(r, d) for r, d in safe if d.action != "allow"]
    else:
        res["safe_hit"] = sum(d.action == "block" for _, d in safe)
        res["unsafe_hit"] = sum(d.action == "block" for _, d in unsafe)
        misses = [(r, d) for r, d in unsafe if d.action != "block"]
        fps = [(r, d) for r, d in safe if d.action == "block"]
    res["n_safe"], res["n_unsafe"] = len(safe), len(unsafe)
    if n_errors:
        res["errors"] = {
            "false_refusals": [(r["id"], d.rule, r["text"]) for r, d in fps[:n_errors]],
            "misses": [(r["id"], r.get("category"), r["text"]) for r, d in misses[:n_errors]],
        }
        res["rule_counts"] = collections.Counter(d.rule for _, d in safe + unsafe if d.action == "block")
    return res


def print_table(split: str, results: list[dict]) -> None:
    print(f"\n=== split: {split} ===")
    print(f"{'file':22s} {'rows':>5s}  {'safe blocked (false refusal)':>30s}  {'unsafe blocked (catch)':>26s}")
    for r in results:
        if r["file"] in PII_FILES:
            print(f"{r['file']:22s} {r['rows']:5d}  {'any action on safe ' + pct(r['safe_hit'], r['n_safe']):>30s}  "
                  f"{'redacted ' + pct(r['unsafe_hit'], r['n_unsafe']):>26s}")
            types = ", ".join(f"{t} {v[0]}/{v[1]}" for t, v in sorted(r["by_type"].items()))
            print(f"{'':22s}        redacted rows by entity type: {types}")
            print(f"{'':22s}        blocked: safe {r['safe_blocked']}, unsafe {r['unsafe_blocked']}")
        else:
            print(f"{r['file']:22s} {r['rows']:5d}  {pct(r['safe_hit'], r['n_safe']):>30s}  {pct(r['unsafe_hit'], r['n_unsafe']):>26s}")


def print_errors(results: list[dict]) -> None:
    for r in results:
        if "errors" not in r:
            continue
        print(f"\n--- {r['file']}: blocks by rule: {dict(r['rule_counts'])}")
        for rid, rule, text in r["errors"]["false_refusals"]:
            print(f"  FALSE REFUSAL [{rule}] {rid}: {text[:200]!r}")
        for rid, cat, text in r["errors"]["misses"]:
            shown = text if len(text) <= 200 else "..." + text[-200:]
            print(f"  MISS [{cat}] {rid}: {shown!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default=str(ROOT / "policies" / "default.policy"))
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--split", choices=["dev", "holdout", "all", "both"], default="dev")
    ap.add_argument("--limit", type=int, default=None,
                    help="sample at most N rows per file (default: all rows; hatecheck 1000)")
    ap.add_argument("--errors", type=int, default=0, help="print N false refusals and N misses per file")
    ap.add_argument("--files", default=",".join(DEFAULT_FILES), help="comma-separated file stems")
    ap.add_argument("--json", help="also write results to this JSON file")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from policyengine import Engine  # imported late so --help works without the model

    engine = Engine.from_path(args.policy)
    splits = ["dev", "holdout"] if args.split == "both" else [args.split]
    out = {}
    for split in splits:
        results = []
        for name in [f.strip() for f in args.files.split(",") if f.strip()]:
            path = Path(args.data_dir) / f"{name}.jsonl"
            if not path.exists():
                print(f"skip {name}: {path} not found", file=sys.stderr)
                continue
            limit = args.limit if args.limit is not None else LARGE_DEFAULT_LIMIT.get(name)
            rows = load_rows(path, split, limit)
            # with --split both, errors are printed for dev only, so holdout stays unseen while tuning
            n_err = args.errors if (args.split != "both" or split == "dev") else 0
            results.append(measure_file(engine, name, rows, n_err))
        print_table(split, results)
        print_errors(results)
        out[split] = [{k: v for k, v in r.items() if k not in ("errors", "rule_counts")} for r in results]
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
