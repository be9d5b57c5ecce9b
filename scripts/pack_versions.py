#!/usr/bin/env python3
"""Compare whole policy packs (or one pack under different models) on ../shared/data, dev and holdout.

Each argument is LABEL=PATH[@MODEL]: the pack at PATH, optionally with its header's model replaced by MODEL
(e.g. the plain base model instead of "+contrastive"), so the effect of the pack's text and of the intent space
can be told apart. Rows are split as in scripts/measure_pack.py (sha256 of the row id; dev ~62%); hatecheck is
the same fixed 1,000-row sample per split. Prints one markdown table: FRR and catch with Wilson 95% intervals,
and the evaluation cost per message (wall clock of `evaluate_many` over all rows, embedding included).

  OMP_NUM_THREADS=1 .venv/bin/python scripts/pack_versions.py \\
      v1=/tmp/v1/policies/default.policy@sentence-transformers/all-MiniLM-L6-v2 \\
      v2=policies/default.policy
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

FILES = ["coconot_contrast", "jbb_behaviors", "harmbench_val", "notinject", "giskard_injections", "hatecheck"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("packs", nargs="+", help="LABEL=PATH[@MODEL]")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--splits", default="dev,holdout")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from measure_pack import LARGE_DEFAULT_LIMIT, cell, load_rows, tally

    from policyengine import Engine
    from policyengine.compiler import compile_policy

    splits = [s for s in args.splits.split(",") if s]
    data = {(f, s): load_rows(Path(args.data_dir) / f"{f}.jsonl", s, LARGE_DEFAULT_LIMIT.get(f))
            for f in FILES for s in splits}

    lines = ["| pack | model | file | split | FRR (safe blocked) [95% CI] | catch (unsafe blocked) [95% CI] |",
             "|---|---|---|---|---|---|"]
    costs = []
    for spec in args.packs:
        label, _, rest = spec.partition("=")
        path, _, model = rest.partition("@")
        policy = compile_policy(path)
        if model:
            policy = dataclasses.replace(policy, model=model)
        t0 = time.perf_counter()
        engine = Engine(policy)
        load_s = time.perf_counter() - t0
        n_msgs, spent = 0, 0.0
        for f in FILES:
            for s in splits:
                rows = data[f, s]
                t0 = time.perf_counter()
                ds = engine.evaluate_many([{"input": r["text"]} for r in rows])
                spent += time.perf_counter() - t0
                n_msgs += len(rows)
                fs, ns, cu, nu = tally(rows, ds, where=f"{label} on {f}/{s}")
                lines.append(f"| {label} | {policy.model} | {f} | {s} | {cell(fs, ns)} | {cell(cu, nu)} |")
        costs.append(f"{label}: {1000 * spent / max(n_msgs, 1):.1f} ms/message over {n_msgs} messages "
                     f"(engine set-up {load_s:.1f} s, intent-map training or cache load included)")
        print(f"done {label}", file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {c}" for c in costs) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
