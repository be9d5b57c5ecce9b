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
    add_data(p)
    p.add_argument("--max-frr", type=rate, required=True, metavar="X", help="false-refusal budget, e.g. 0.03 or 3%%")
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
        print(result.render_text())
        if args.write:
            print()
            print(f"wrote {', '.join(written)}" if written else "nothing to write: no threshold changed")
        elif result.new_thresholds:
            print()
            print("review the table, then run again with --write to apply it", file=sys.stderr)
    return 0 if result.feasible else 1
