#!/usr/bin/env python3
"""Per-concept calibration, judged leave-one-source-out (issue 8's "scoring choices: per-concept calibration").

For each data file F, every concept's threshold is chosen by `policyengine calibrate`'s search (the same
DecisionModel and greedy search, full rule logic: cue rules, `allow overrides`, exceptions) on the **dev rows of
the other files only**, to catch the most unsafe rows with at most a budget of false refusals. The thresholds are
then applied to F's dev rows and holdout rows. F's rows never influence its own thresholds, so the table shows how
calibration transfers to a source it never saw, which is the question a user calibrating on their own traffic and
then meeting new traffic would ask.

Rows are split as in scripts/measure_pack.py (sha256 of the row id; hatecheck: the fixed 1,000-row sample per
split). Every row is embedded once; decisions for a threshold set come from the calibration's decision model, and
are checked against the real engine for every (file, budget) cell (mismatches are reported; they must be 0).

  OMP_NUM_THREADS=1 .venv/bin/python scripts/calibrate_loso.py [--pack policies/default.policy]
      [--model MODEL_ID] [--budgets 0.03,0.05,0.08] [--markdown out.md]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from pack_versions import FILES  # noqa: E402 - the same files, in the same order, as the other comparisons


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", default=str(ROOT / "policies" / "default.policy"))
    ap.add_argument("--model", help="replace the pack's model id (e.g. the plain base model)")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--budgets", default="0.03,0.05,0.08",
                    help="false-refusal budgets (share of the calibration rows' safe rows, point estimate)")
    ap.add_argument("--from-policy", action="store_true",
                    help="also rows with the thresholds of `policyengine calibrate --from-policy` (no data: each "
                         "just above the best score benign text of the policy reaches while clearing the counters)")
    ap.add_argument("--from-policy-deltas", default="",
                    help="also rows with the --from-policy thresholds lowered by delta, delta chosen for each file "
                         "leave-one-source-out (intent_compare's objective on the other files' dev rows), e.g. "
                         "0,0.01,0.02,0.03,0.05")
    ap.add_argument("--in-source", action="store_true",
                    help="also rows calibrated on the dev rows of every file, the scored file included (holdout "
                         "rows are then new rows of sources calibration saw: the random-split view the issue warns "
                         "hides style overfitting)")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import numpy as np
    from intent_compare import TABLE_HEADER, cell
    from measure_pack import LARGE_DEFAULT_LIMIT, load_rows

    from policyengine.compiler import compile_policy
    from policyengine.measure.calibrate import DecisionModel, budget_count, search, with_thresholds
    from policyengine.measure.data import Row
    from policyengine.measure.runner import build_engine, run_rows

    policy = compile_policy(args.pack)
    if args.model:
        policy = dataclasses.replace(policy, model=args.model)
    engine = build_engine(policy)  # "+finetune": the runner shares the tuned model's embeddings between engines
    rows: dict[tuple[str, str], list[Row]] = {}
    for f in FILES:
        for s in ("dev", "holdout"):
            raw = load_rows(Path(args.data_dir) / f"{f}.jsonl", s, LARGE_DEFAULT_LIMIT.get(f))
            rows[(f, s)] = [Row(r["id"], r["text"], r["label"], f, i + 1, r.get("category"), r.get("context"))
                            for i, r in enumerate(raw)]
    results = {k: run_rows(engine, v, progress=False) for k, v in rows.items()}
    concepts = sorted(c for c in policy.used_concepts if c in policy.concepts)
    T0 = np.array([policy.concepts[c].threshold for c in concepts], dtype=float)
    models = {k: DecisionModel(policy, v, concepts) for k, v in results.items()}

    def blocked(key: tuple[str, str], T: np.ndarray) -> list[bool]:
        m = models[key]
        fired = m.scores >= T[None, :]
        return [m.action(m.truths(i, fired[i])) == "block" for i in range(len(m.texts))]

    def counts(key: tuple[str, str], b: list[bool]) -> tuple[int, int, int, int]:
        """(safe blocked, safe rows, unsafe blocked, unsafe rows), intent_compare.objective's shape."""
        safe = [x for r, x in zip(results[key], b) if not r.row.unsafe]
        unsafe = [x for r, x in zip(results[key], b) if r.row.unsafe]
        return sum(safe), len(safe), sum(unsafe), len(unsafe)

    def row_cells(name: str, params: str, f: str, T: np.ndarray, check: bool) -> list[str]:
        out = []
        for s in ("dev", "holdout"):
            b = blocked((f, s), T)
            if check:
                real = run_rows(build_engine(with_thresholds(policy, dict(zip(concepts, map(float, T))))),
                                rows[(f, s)], progress=False)
                bad = sum(r.blocked != x for r, x in zip(real, b))
                if bad:
                    raise SystemExit(f"decision model disagrees with the engine on {bad} rows of {f}/{s}")
            fs, ns, cu, nu = counts((f, s), b)
            out.append(f"| {name} | {params} | {f} | {s} | {cell(fs, ns)} | {cell(cu, nu)} |")
        return out

    lines = list(TABLE_HEADER)
    label = policy.model
    for f in FILES:
        lines += row_cells(f"as written ({label})", "-", f, T0, check=False)
    deltas = [float(x) for x in args.from_policy_deltas.split(",") if x]
    if args.from_policy or deltas:  # the thresholds of `calibrate --from-policy`, computed once
        from policyengine.measure.calibrate import benign_ceilings

        ceilings = {r.concept: r.new for r in benign_ceilings(engine)}
        C = np.array([ceilings.get(c, t0) for c, t0 in zip(concepts, T0)], dtype=float)
    if args.from_policy:
        T = C
        print("[from the policy's text] " + ", ".join(f"{c} {t0:.3f}->{t:.3f}" for c, t0, t in zip(concepts, T0, T)),
              file=sys.stderr)
        for f in FILES:
            lines += row_cells("self-calibrated (policy text only)", "--from-policy", f, T, check=True)
    if deltas:
        from intent_compare import objective

        res = {d: {key: counts(key, blocked(key, C - d)) for key in results} for d in deltas}
        for f in FILES:
            best = max(deltas, key=lambda d: (objective(res[d], exclude=f), -d))
            print(f"[from-policy delta, without {f}] " + ", ".join(f"{d:g}: {objective(res[d], exclude=f):.3f}"
                                                                 for d in deltas) + f" -> {best:g}", file=sys.stderr)
            lines += row_cells("self-calibrated - delta (LOSO)", f"delta={best:g}", f, C - best, check=True)
        every = max(deltas, key=lambda d: (objective(res[d], exclude=""), -d))
        print(f"[from-policy delta on every file's dev rows] -> {every:g}", file=sys.stderr)
    budgets = [float(b) for b in args.budgets.split(",") if b]
    for budget in budgets:
        calibrated: dict[tuple, tuple] = {}
        for f in FILES:
            keys = tuple((g, "dev") for g in FILES if g != f or args.in_source)
            if keys not in calibrated:
                cal = [r for k in keys for r in results[k]]
                model = DecisionModel(policy, cal, concepts)
                safe = np.array([not r.row.unsafe for r in cal], dtype=bool)
                k = budget_count(budget, int(safe.sum()), conservative=False)
                calibrated[keys] = search(model, T0, safe, ~safe, k, k)
                T, feasible = calibrated[keys]
                moved = [f"{c} {t0:.3f}->{t:.3f}" for c, t0, t in zip(concepts, T0, T) if abs(t - t0) > 1e-9]
                on = "every file's dev rows" if args.in_source else f"without {f}"
                print(f"[budget {budget:.0%}, {on}] feasible={feasible}; {len(moved)} thresholds moved: "
                      + ", ".join(moved), file=sys.stderr)
            T, _ = calibrated[keys]
            moved = [c for c, t0, t in zip(concepts, T0, T) if abs(t - t0) > 1e-9]
            how = "in-source" if args.in_source else "LOSO"
            lines += row_cells(f"calibrated {how}, FRR budget {budget:.0%}", f"{len(moved)} moved", f, T, check=True)
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
