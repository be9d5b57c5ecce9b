"""Labelled rows: one JSON object per line, {"text", "label": "safe"|"unsafe", optional "id", "category", "context"}.
Bad lines are collected and reported as file:line:col errors with a caret, never skipped silently."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PolicyEngineError
from ..jsonl import caret, read_lines

LABELS = ("safe", "unsafe")
MAX_REPORTED_ERRORS = 20


class DataError(PolicyEngineError):
    """A data file could not be read or has invalid rows. str() is the full, user-facing message."""


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    label: str  # safe | unsafe
    file: str  # the data file's name as given
    line: int
    category: str | None = None
    context: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def unsafe(self) -> bool:
        return self.label == "unsafe"

    def item(self) -> dict[str, Any]:
        """The engine's input for this row."""
        return {"input": self.text, "context": self.context}


def _col_of_key(raw: str, key: str) -> int:
    i = raw.find(f'"{key}"')
    return i + 1 if i >= 0 else 1


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_rows(path: str | Path) -> list[Row]:
    """Read and validate one data file. Raises DataError listing every bad line (up to MAX_REPORTED_ERRORS)."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{name}: error: cannot read data file: {e.strerror or e}") from None
    rows: list[Row] = []
    errors: list[str] = []
    seen_ids: dict[str, int] = {}
    for lineno, raw, obj, error in read_lines(name, data.split(b"\n")):
        where = f"{name}:{lineno}"
        if error is not None:
            errors.append(error)
            continue
        if not isinstance(obj, dict):
            errors.append(caret(where, raw, 1, "each line must be a JSON object"))
            continue
        text, label = obj.get("text"), obj.get("label")
        if not isinstance(text, str):
            errors.append(caret(where, raw, _col_of_key(raw, "text"), 'needs a string "text"'))
            continue
        if label not in LABELS:
            errors.append(caret(where, raw, _col_of_key(raw, "label"),
                                 f'"label" must be "safe" or "unsafe", got {json.dumps(label)}'))
            continue
        ctx = obj.get("context")
        if ctx is not None and not isinstance(ctx, dict):
            errors.append(caret(where, raw, _col_of_key(raw, "context"), '"context" must be an object'))
            continue
        cat = obj.get("category")
        rid = str(obj["id"]) if obj.get("id") is not None else f"{Path(name).stem}:{lineno}"
        if rid in seen_ids:
            errors.append(caret(where, raw, _col_of_key(raw, "id"),
                                 f"duplicate id {rid!r} (first on line {seen_ids[rid]})"))
            continue
        seen_ids[rid] = lineno
        rows.append(Row(rid, text, label, name, lineno, str(cat) if cat is not None else None, ctx))
    if errors:
        more = len(errors) - MAX_REPORTED_ERRORS
        shown = errors[:MAX_REPORTED_ERRORS] + ([f"... and {more} more invalid lines"] if more > 0 else [])
        raise DataError("\n".join(shown))
    if not rows:
        raise DataError(f"{name}: error: no rows (expected one JSON object per line)")
    return rows
