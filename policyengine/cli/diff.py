"""`policyengine diff OLD_POLICY NEW_POLICY --data FILE.jsonl`: what a policy change flips, before it ships."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._measure_common import add_data, load_all, threads


def register(sub: Any) -> dict:
    p = sub.add_parser("diff", help="list every row whose action changes between two versions of a policy",
                       description="Evaluate both policies on the same rows (each row embedded once) and list the "
                                   "rows whose action changes, by direction and by the rule responsible, with the "
                                   "false-refusal and catch-rate delta.")
    p.add_argument("old_policy")
    p.add_argument("new_policy")
    add_data(p)
    p.add_argument("--fail-on-new-blocks", action="store_true", help="exit 1 if any row is newly blocked")
    p.add_argument("--explain", action="store_true", help="print the explanation of every changed decision")
    p.add_argument("--format", choices=["text", "json"], default="text")
    return {"diff": cmd_diff}


def cmd_diff(args: argparse.Namespace) -> int:
    from ..measure.diff import diff

    data = load_all(args.data)
    rows = [r for rs in data.values() for r in rs]
    report = diff(args.old_policy, args.new_policy, rows, threads=threads(args),
                  progress=False if args.no_progress else None)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.render_text(explain=args.explain))
    return 1 if args.fail_on_new_blocks and report.new_blocks else 0
