"""Argument helpers shared by score, calibrate and diff."""

from __future__ import annotations

import argparse
from typing import Any


def rate(value: str) -> float:
    """A rate as 0.03, 3% or 3 (percent when > 1)."""
    raw = value.strip()
    try:
        x = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate like 0.03 or 3%, got {value!r}") from None
    if x > 1:
        x /= 100
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"a rate must be between 0 and 1 (or 0% and 100%), got {value!r}")
    return x


def add_data(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--data", action="append", required=required, metavar="FILE.jsonl",
                   help='labelled rows {"text", "label": "safe"|"unsafe", optional "id", "category", "context"}; '
                        "repeat for several files")
    from .main import positive_int

    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch/FAISS threads, at least 1 (default 1 or $POLICYENGINE_THREADS)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it only shows on a terminal anyway)")


def load_all(paths: list[str]) -> dict[str, Any]:
    from ..measure.data import DataError, load_rows
    from .main import UsageError

    out = {}
    errors = []
    for path in paths:
        try:
            out[path] = load_rows(path)
        except DataError as e:
            errors.append(str(e))
    if errors:
        raise UsageError("\n".join(errors))
    return out


def threads(args: argparse.Namespace) -> int:
    from ..engine import _default_threads

    return max(1, args.threads) if args.threads else _default_threads()
