"""Source text and spans: the positions every node, diagnostic and explanation points at."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A policy file's text and the name it is reported under."""

    path: str
    text: str

    def line_text(self, line: int) -> str:
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        start = self.text.rfind("\n", 0, offset) + 1
        return line, offset - start + 1


@dataclass(frozen=True)
class Span:
    """A region of a policy file. Never part of node equality (nodes use compare=False)."""

    file: str
    line: int
    column: int
    start: int = 0
    end: int = 0
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


UNKNOWN_SPAN = Span("<unknown>", 0, 0)


MAX_EXCERPT = 160  # characters of a source line shown under a diagnostic


def caret_excerpt(line_text: str, column: int, width: int = 1) -> str:
    """The source line, then a caret line under `width` characters starting at 1-based `column`."""
    shown = _oneline(line_text.rstrip("\n"))
    if len(shown) > MAX_EXCERPT:  # a very long line (a huge literal): a window around the column
        lo = max(0, min(column - 1 - MAX_EXCERPT // 4, len(shown) - MAX_EXCERPT))
        hi = lo + MAX_EXCERPT
        shown = ("…" if lo else "") + shown[lo:hi] + ("…" if hi < len(shown) else "")
        column -= lo - (1 if lo else 0)
        width = min(width, hi - lo + (1 if lo else 0) - column + 1)
    width = max(1, min(width, max(1, len(shown) - column + 1)))
    gutter = "  | "
    return f"{gutter}{shown}\n{gutter}{' ' * max(0, column - 1)}{'^' * width}"


def text_caret(text: str, start: int, end: int, context: int = 60) -> str:
    """Underline [start, end) of an arbitrary (possibly multi-line, long) message, on one line."""
    lo = max(0, start - context)
    hi = min(len(text), end + context)
    prefix = "…" if lo > 0 else ""
    suffix = "…" if hi < len(text) else ""
    shown = _oneline(text[lo:hi])
    pad = len(prefix) + len(_oneline(text[lo:start]))
    width = max(1, len(_oneline(text[start:end])))
    return f"  | {prefix}{shown}{suffix}\n  | {' ' * pad}{'^' * width}"


def _oneline(s: str) -> str:
    return "".join(c if c.isprintable() else " " for c in s)
