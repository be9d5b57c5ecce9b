"""Reading JSON Lines input (check --input, score/calibrate/diff data): one object per line, and a clear
`file:line:col` error with a caret for each line that is not UTF-8 or not valid JSON, never a traceback."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator


def caret(where: str, line: str, col: int, msg: str) -> str:
    """`where:col: error: msg`, the line (control characters blanked, at most 200 shown) and a caret under col."""
    shown = "".join(c if c.isprintable() else " " for c in line.rstrip("\r\n"))[:200]
    return f"{where}:{col}: error: {msg}\n  | {shown}\n  | {' ' * max(0, min(col - 1, len(shown)))}^"


def read_lines(name: str, lines: Iterable[bytes | str]) -> Iterator[tuple[int, str, Any, str | None]]:
    """For every non-blank line: (line number, its text, the parsed value or None, an error or None)."""
    for lineno, raw in enumerate(lines, 1):
        where = f"{name}:{lineno}"
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, "", None, f"{where}:{e.start + 1}: error: line is not UTF-8 ({e.reason})"
                continue
        if not raw.strip():
            continue
        text = raw.rstrip("\r\n")  # so an error at the end points into the line
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            yield lineno, text, None, caret(where, text, e.colno if e.lineno == 1 else len(text) + 1,
                                            f"invalid JSON: {e.msg}")
            continue
        yield lineno, text, value, None
