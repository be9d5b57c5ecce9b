"""Labelled training rows for trained concepts (`train "rows.jsonl"` in a concept): reading and checking them.

A row is one JSON object per line: {"text": str, "label": "safe" | "unsafe", "id"?: str, "category"?: str, ...}.
Reading is strict: a malformed line is an error with its line and column, never a silently skipped row, because a
classifier trained on a silently shortened file decides differently from the one its author measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

#: rows larger than this are refused (a training row is a message, not a document)
MAX_ROW_CHARS = 20_000
#: a training file larger than this is refused at compile time
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class TrainingRow:
    """One labelled row. `file` is the training file as written in the policy (relative to it); `line` 1-based."""

    id: str
    text: str
    unsafe: bool
    category: str | None
    file: str
    line: int

    @property
    def label(self) -> str:
        return "unsafe" if self.unsafe else "safe"


@dataclass(frozen=True)
class RowError:
    line: int
    column: int
    message: str


def parse_rows(data: str, file: str) -> tuple[list[TrainingRow], list[RowError]]:
    """Every row of a JSONL training file, and every malformed line (1-based line and column)."""
    rows: list[TrainingRow] = []
    errors: list[RowError] = []
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        for err in _row_errors(line, lineno, file, rows):
            errors.append(err)
    return rows, errors


def _row_errors(line: str, lineno: int, file: str, rows: list[TrainingRow]) -> Iterator[RowError]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        yield RowError(lineno, e.colno, f"not valid JSON: {e.msg}")
        return
    if not isinstance(obj, dict):
        yield RowError(lineno, 1, f"a row must be a JSON object, got {type(obj).__name__}")
        return
    text, label = obj.get("text"), obj.get("label")
    if not isinstance(text, str) or not text.strip():
        yield RowError(lineno, _col(line, "text"), 'a row needs a non-empty string "text"')
        return
    if len(text) > MAX_ROW_CHARS:
        yield RowError(lineno, _col(line, "text"), f'"text" has {len(text)} characters (at most {MAX_ROW_CHARS})')
        return
    if label not in ("safe", "unsafe"):
        yield RowError(lineno, _col(line, "label"), f'"label" must be "safe" or "unsafe", got {label!r}')
        return
    rid = obj.get("id")
    cat = obj.get("category")
    rows.append(TrainingRow(id=str(rid) if rid is not None else f"{file}:{lineno}", text=text,
                            unsafe=label == "unsafe", category=str(cat) if cat is not None else None,
                            file=file, line=lineno))


def _col(line: str, key: str) -> int:
    at = line.find(f'"{key}"')
    return at + 1 if at >= 0 else 1


def select(rows: list[TrainingRow], categories: tuple[str, ...] | None) -> list[TrainingRow]:
    """The rows of the given categories (all rows when None)."""
    if categories is None:
        return rows
    wanted = set(categories)
    return [r for r in rows if r.category in wanted]
