"""`policyengine calibrate POLICY --data FILE.jsonl --max-frr X [--write]`: the thresholds that catch the most within
a false-refusal budget, as a reviewable table; --write rewrites only the threshold literals."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._measure_common import add_data, load_all, rate, threads


def register(sub: Any) -> dict:
    p = sub.add_parser("calibrate", help="tune concept thresholds to a false-refusal budget (one embedding pass)",
                       description="For each concept, find the threshold that maximises the catch rate with the "
                                   "false-refusal rate within budget, overall and per concept. Prints old -> new "
                                   "thresholds, FRR and catch before/after, and the rows that flip.")
    p.add_argument("policy")
    add_data(p, required=False)
    p.add_argument("--max-frr", type=rate, metavar="X", help="false-refusal budget, e.g. 0.03 or 3%% (with --data)")
    p.add_argument("--from-policy", action="store_true",
                   help="no data: set each threshold just above the best score that benign text of the policy "
                        "(the intent background set, the other concepts' counter-examples) reaches on the concept "
                        "while clearing its counters; for +finetune policies, whose scale differs (docs/intent.md)")
    p.add_argument("--max-concept-frr", type=rate, metavar="X",
                   help="budget for the false refusals any one concept causes (default: --max-frr)")
    p.add_argument("--point-estimate", action="store_true",
                   help="hold the budget on the measured rate itself; by default the upper end of its 95%% interval "
                        "must be within budget, so the thresholds also hold on rows calibration did not see")
    p.add_argument("--write", action="store_true",
                   help="rewrite the changed threshold literals in the policy files (comments record date and "
                        "data sha256)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    return {"calibrate": cmd_calibrate}


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..measure.calibrate import calibrate, rewrite_thresholds
    from .main import UsageError

    if args.from_policy:
        if args.data or args.max_frr is not None:
            raise UsageError("--from-policy uses no data: drop --data and --max-frr")
        return _from_policy(args)
    if not args.data or args.max_frr is None:
        raise UsageError("calibrate needs --data FILE.jsonl and --max-frr X (or --from-policy)")
    data = load_all(args.data)
    result = calibrate(args.policy, data, args.max_frr, args.max_concept_frr, threads=threads(args),
                       conservative=not args.point_estimate,
                       progress=False if args.no_progress else None)
    written: list[str] = []
    if args.write and result.new_thresholds:
        from ..compiler import compile_policy

        written = rewrite_thresholds(compile_policy(args.policy), result.new_thresholds, result.data_files)
    if args.format == "json":
        print(json.dumps({**result.to_dict(), "written": written}, indent=2, ensure_ascii=False))
    else:
        _print_table(args, result.render_text(), written, bool(result.new_thresholds))
    return 0 if result.feasible else 1


def _print_table(args: argparse.Namespace, table: str, written: list[str], changed: bool) -> None:
    print(table)
    if args.write:
        print()
        print(f"wrote {', '.join(written)}" if written else "nothing to write: no threshold changed")
    elif changed:
        print()
        print("review the table, then run again with --write to apply it", file=sys.stderr)


def _from_policy(args: argparse.Namespace) -> int:
    from ..compiler import compile_policy
    from ..engine import Engine
    from ..measure.calibrate import benign_ceilings, render_ceilings, rewrite_thresholds

    policy = compile_policy(args.policy)
    rows = benign_ceilings(Engine(policy, threads=threads(args)))
    new = {r.concept: r.new for r in rows if r.changed}
    written: list[str] = []
    if args.write and new:
        written = rewrite_thresholds(policy, new, {}, note="the policy's own benign text (--from-policy)")
    if args.format == "json":
        print(json.dumps({"policy": policy.entry, "model": policy.model, "written": written,
                          "concepts": [{"concept": r.concept, "source": r.source, "old": r.old, "new": r.new,
                                        "benign_text": r.text, "benign_score": r.score, "benign": r.benign}
                                       for r in rows]}, indent=2, ensure_ascii=False))
    else:
        _print_table(args, render_ceilings(policy.entry, policy.model, rows), written, bool(new))
    return 0
