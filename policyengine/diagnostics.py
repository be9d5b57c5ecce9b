"""Diagnostics: every policy error or warning, rendered as `file:line:col: error[CODE]: message` + caret + help."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Literal

from .errors import PolicyEngineError
from .source import Span, caret_excerpt

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    severity: Severity = "error"
    help: str | None = None
    line_text: str = ""
    width: int = 1

    def render(self) -> str:
        out = f"{self.span}: {self.severity}[{self.code}]: {self.message}"
        if self.span.line > 0:
            out += "\n" + caret_excerpt(self.line_text, self.span.column, self.width)
        if self.help:
            out += f"\n  = help: {self.help}"
        return out


class PolicyError(PolicyEngineError):
    """Raised when a policy cannot be compiled. Carries every diagnostic found, not only the first."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__(self.render())

    def render(self) -> str:
        errors = [d for d in self.diagnostics if d.severity == "error"]
        body = "\n\n".join(d.render() for d in self.diagnostics)
        n = len(errors)
        return f"{body}\n\n{n} error{'s' if n != 1 else ''} found" if n else body


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    best = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{best[0]}'?" if best else None
