"""ONNX Runtime fp32 (the default backend) against torch (sentence-transformers): same decisions, same scores.

Runs a policy (default: the default pack) on every row of the shared data (../shared/data/*.jsonl, or --data DIR)
with both backends and counts decision flips (action or deciding rule) and the largest |score difference| over every
concept score (nearest example and nearest counter-example, every concept a rule uses, every row).
The issue's bar: 0 flips and max |difference| <= 1e-3.

    python -m benchmarks.parity [--data DIR] [--per-file N] [--policy FILE] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_POLICY = ROOT / "policies" / "default.policy"


def load_rows(data: Path, per_file: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in sorted(data.glob("*.jsonl")):
        n = 0
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if isinstance(r.get("text"), str):
                rows.append({"id": f"{f.stem}/{r.get('id', n)}", "text": r["text"]})
                n += 1
                if per_file is not None and n >= per_file:
                    break
    return rows


def _diff(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    if math.isinf(a) or math.isinf(b):
        return 0.0 if a == b else math.inf
    return abs(a - b)


def run(data: Path = DEFAULT_DATA, policy: Path = DEFAULT_POLICY, per_file: int | None = None,
        batch: int = 64) -> dict[str, Any]:
    from policyengine.engine import Engine

    rows = load_rows(data, per_file)
    texts = [r["text"] for r in rows]
    out: dict[str, Any] = {"policy": str(policy.relative_to(ROOT) if policy.is_relative_to(ROOT) else policy),
                           "rows": len(rows), "files": len(list(data.glob("*.jsonl")))}
    results = {}
    for backend in ("torch", "onnx"):
        t0 = time.perf_counter()
        eng = Engine.from_path(policy, backend=backend, cache=False)
        got = []
        for i in range(0, len(texts), batch):
            got += eng.evaluate_with_scores(texts[i:i + batch])
        results[backend] = got
        out[f"{backend}_seconds"] = round(time.perf_counter() - t0, 1)
    flips, worst, n_scores = [], (0.0, None), 0
    for r, (dt, st), (do, so) in zip(rows, results["torch"], results["onnx"]):
        if (dt.action, dt.rule) != (do.action, do.rule):
            flips.append({"id": r["id"], "torch": [dt.action, dt.rule], "onnx": [do.action, do.rule]})
        for subject, per in st.items():
            for concept, a in per.items():
                b = so[subject][concept]
                n_scores += 2
                for what, x, y in (("score", a.score, b.score), ("counter", a.counter_score, b.counter_score)):
                    d = _diff(x, y)
                    if d > worst[0]:
                        worst = (d, {"id": r["id"], "concept": concept, "which": what, "torch": x, "onnx": y})
    out.update({"flips": len(flips), "flip_examples": flips[:20], "scores_compared": n_scores,
                "max_abs_score_diff": worst[0], "worst": worst[1],
                "ok": not flips and worst[0] <= 1e-3})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    ap.add_argument("--per-file", type=int, default=None, help="only the first N rows of each file")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)
    res = run(args.data, args.policy, args.per_file)
    text = json.dumps(res, indent=1, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
