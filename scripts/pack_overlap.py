#!/usr/bin/env python3
"""Which strings of a policy near-duplicate a row of the labelled data? (contamination check)

A policy measured on data it copied from scores too well. This embeds every example and counter-example of the
concepts the policy's rules use (or only those added since git revision REV, --since, or not in another policy,
--base-pack) and every row of
the data files (all splits, every row), in the base model's space, and prints each policy string whose nearest row
has cosine >= --threshold, with that row's id, label and split, then a summary of the nearest-row cosines.

  OMP_NUM_THREADS=1 .venv/bin/python scripts/pack_overlap.py
  OMP_NUM_THREADS=1 .venv/bin/python scripts/pack_overlap.py --since 30f8676 --threshold 0.85
  OMP_NUM_THREADS=1 .venv/bin/python scripts/pack_overlap.py --pack "$d/policies/default.policy" \
      --base-pack policies/default.policy --threshold 0.8
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from measure_pack import load_rows, split_of  # noqa: E402 - the rows and split of every other measurement
from pack_versions import FILES  # noqa: E402

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def policy_strings(policy: Any) -> dict[str, str]:
    """Every example and counter-example of the concepts rules use -> 'concept/examples' or 'concept/counter'."""
    out: dict[str, str] = {}
    for name in sorted(c for c in policy.used_concepts if c in policy.concepts):
        concept = policy.concepts[name]
        for kind, texts in (("examples", concept.examples), ("counter", concept.counter)):
            for t in texts:
                out.setdefault(t, f"{name}/{kind}")
    return out


def strings_at(rev: str, pack: Path) -> set[str]:
    """The policy strings of `pack` as it was at git revision `rev` (its directory, checked out to a temp dir)."""
    from policyengine.compiler import compile_policy

    rel = pack.resolve().parent.relative_to(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, str(rel)], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        return set(policy_strings(compile_policy(Path(tmp) / rel / pack.name)))


def nearest_rows(strings: list[str], rows: list[dict], embedder: Any) -> list[tuple[float, dict]]:
    """For each string, the cosine of its nearest row and that row."""
    if not strings or not rows:
        return []
    s = embedder.encode(strings)
    r = embedder.encode([row["text"] for row in rows])
    sims = s @ r.T  # the embedder returns unit vectors
    best = sims.argmax(axis=1)
    return [(float(sims[i, j]), rows[int(j)]) for i, j in enumerate(best)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", default=str(ROOT / "policies" / "default.policy"))
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--files", default=",".join(FILES))
    ap.add_argument("--since", metavar="REV", help="only the strings added since this git revision (--pack must be "
                                                   "inside this repository)")
    ap.add_argument("--base-pack", metavar="PATH", help="only the strings that this other policy does not have")
    ap.add_argument("--threshold", type=float, default=0.9)
    args = ap.parse_args(argv)

    from policyengine.diagnostics import PolicyError

    pack = Path(args.pack)
    if args.since and not pack.resolve().is_relative_to(ROOT):
        ap.error(f"--since needs a --pack inside {ROOT}; compare with another policy with --base-pack")
    try:
        return _check(args, pack)
    except PolicyError as e:
        print(e, file=sys.stderr)
        return 2


def _check(args: Any, pack: Path) -> int:
    from policyengine.compiler import compile_policy
    from policyengine.measure.runner import CachingEmbedder

    strings = policy_strings(compile_policy(pack))
    added = ""
    if args.since:
        old = strings_at(args.since, pack)
        strings, added = {t: k for t, k in strings.items() if t not in old}, f" added since {args.since}"
    if args.base_pack:
        old = set(policy_strings(compile_policy(args.base_pack)))
        strings, added = {t: k for t, k in strings.items() if t not in old}, f" not in {args.base_pack}"
    rows = [{**row, "file": f, "split": split_of(row["id"])} for f in args.files.split(",")
            for row in load_rows(Path(args.data_dir) / f"{f}.jsonl", "all", None)]
    texts = list(strings)
    found = nearest_rows(texts, rows, CachingEmbedder(BASE_MODEL, 1))
    hits = sorted(((c, t, row) for t, (c, row) in zip(texts, found) if c >= args.threshold), key=lambda x: -x[0])
    for c, t, row in hits:
        print(f"{c:.3f}  {strings[t]:<40} {t!r}\n       nearest row {row['file']}:{row['id']} "
              f"({row['label']}, {row['split']}): {row['text'][:120]!r}")
    cos = sorted(c for c, _ in found)
    if cos:
        median = cos[len(cos) // 2]
        print(f"{len(texts)} policy strings{added}, {len(rows)} rows: "
              f"nearest-row cosine median {median:.3f}, max {cos[-1]:.3f}; "
              + ", ".join(f">= {t}: {sum(c >= t for c in cos)}" for t in (0.8, 0.85, 0.9, 0.95)))
    else:
        print("no policy strings to check")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
