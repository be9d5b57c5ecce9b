"""`policyengine score POLICY --data FILE.jsonl ...`: false-refusal and catch rates with intervals, gated in CI
by --max-frr / --min-catch (exit 1 when missed)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._measure_common import add_data, load_all, rate, threads


def register(sub: Any) -> dict:
    p = sub.add_parser("score", help="measure false refusals and catch rate on labelled data (with intervals)",
                       description="Measure a policy on labelled rows: false-refusal rate, catch rate, precision, F1 "
                                   "(95%% intervals), per rule and category, and the worst false refusals.")
    p.add_argument("policy")
    add_data(p)
    p.add_argument("--report", metavar="DIR", help="write a self-contained HTML report (with plots) to DIR/index.html")
    p.add_argument("--max-frr", type=rate, metavar="X", help="exit 1 if the overall false-refusal rate is above X")
    p.add_argument("--min-catch", type=rate, metavar="Y", help="exit 1 if the overall catch rate is below Y")
    from .main import non_negative_int

    p.add_argument("--worst", type=non_negative_int, default=10, metavar="N",
                   help="false refusals listed with explanations, most confident first (default 10)")
    p.add_argument("--misses", type=non_negative_int, default=10, metavar="N",
                   help="misses (unsafe rows not blocked) listed with their explanations and near misses, furthest "
                        "from a block first (default 10; 0 lists none)")
    p.add_argument("--near-copy", type=_similarity, default=0.95, metavar="SIM",
                   help="list the rows at similarity >= SIM (in the policy's space) to an example or "
                        "counter-example: the policy was likely written from them (default 0.95)")
    p.add_argument("--leave-out", action="store_true",
                   help="trained concepts: score each data file with concepts retrained without it (rows of a "
                        "training file of the same name, and training rows whose text is in the data file, are "
                        "left out), so no figure is on rows the policy trained on")
    p.add_argument("--format", choices=["text", "json"], default="text")
    return {"score": cmd_score}


def _similarity(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = float("nan")
    if not 0 < x <= 1:
        raise argparse.ArgumentTypeError(f"expected a similarity in (0, 1], like 0.95, got {value!r}")
    return x


def cmd_score(args: argparse.Namespace) -> int:
    from ..measure.runner import build_engine, run_rows
    from ..measure.scoring import build_report

    data = load_all(args.data)
    engine = build_engine(args.policy, threads=threads(args))
    progress = False if args.no_progress else None
    if args.leave_out and any(c.trained for c in engine.policy.concepts.values()):
        from ..measure.runner import leave_out_engine

        by_file = {path: run_rows(leave_out_engine(args.policy, path, rows, threads(args)), rows, progress=progress,
                                  desc=path) for path, rows in data.items()}
    else:
        by_file = {path: run_rows(engine, rows, progress=progress, desc=path) for path, rows in data.items()}
    report = build_report(engine, by_file, worst=args.worst, near_copy=args.near_copy, misses=args.misses)
    gates = check_gates(report.overall, args.max_frr, args.min_catch)
    if args.report:
        from ..measure.report import write_report

        from .main import UsageError

        try:
            path = write_report(report, args.report, gates)
        except (RuntimeError, OSError) as e:
            raise UsageError(f"--report: error: {e}") from None
        print(f"report: {path}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps({**report.to_dict(), "gates": gates}, indent=2, ensure_ascii=False))
    else:
        print(report.render_text())
        if gates:
            print()
            for g in gates:
                print(f"gate {g['gate']} {g['limit']:.4g}: {'ok' if g['ok'] else 'MISSED'} ({g['detail']})")
    return 1 if any(not g["ok"] for g in gates) else 0


def check_gates(overall: Any, max_frr: float | None, min_catch: float | None) -> list[dict[str, Any]]:
    """Gates compare the overall point estimate with the limit; a rate with no rows behind it fails its gate."""
    gates = []
    if max_frr is not None:
        r = overall.frr.rate
        gates.append({"gate": "--max-frr", "limit": max_frr, "ok": r is not None and r <= max_frr,
                      "detail": f"false refusals {overall.frr.pct()}" if r is not None else "no safe rows"})
    if min_catch is not None:
        r = overall.catch.rate
        gates.append({"gate": "--min-catch", "limit": min_catch, "ok": r is not None and r >= min_catch,
                      "detail": f"catch {overall.catch.pct()}" if r is not None else "no unsafe rows"})
    return gates
