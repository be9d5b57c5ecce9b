"""`policyengine fmt`: the one layout for .policy files, proved on every run.

`format_source` parses the file (with its comments), prints it, then proves the result: the output must parse
without a diagnostic, give the same nodes (spans are not part of node equality), keep every comment, and print
to itself again (idempotence). A file that fails any of these is never written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..diagnostics import Diagnostic
from ..errors import PolicyEngineError
from ..source import Source
from ..syntax import parse_with_comments
from .printer import render

__all__ = ["FormatError", "SelfCheckError", "format_source", "format_text"]


class FormatError(PolicyEngineError):
    """The file cannot be formatted because it does not parse; carries the diagnostics."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]):
        self.diagnostics = diagnostics
        super().__init__("\n\n".join(d.render() for d in diagnostics))


@dataclass
class SelfCheckError(PolicyEngineError):
    """The formatter could not prove its output equivalent to the input: a formatter bug; nothing is written."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: formatter self-check failed: {self.reason} (file left unchanged; please report this)"


def _first_difference(a: tuple, b: tuple) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            name = getattr(getattr(x, "name", None), "value", None) or type(x).__name__
            return f"item {i + 1} ({type(x).__name__} {name}) differs"
    return f"{len(a)} items before, {len(b)} after"


def format_source(source: Source) -> str:
    """Return the formatted text of `source`. Raises FormatError (syntax) or SelfCheckError (formatter bug)."""
    parsed = parse_with_comments(source)
    if parsed.policy is None or parsed.diagnostics:
        raise FormatError(parsed.diagnostics)
    out = render(parsed, source)

    again = parse_with_comments(Source(source.path, out))
    if again.policy is None or again.diagnostics:
        first = again.diagnostics[0].render() if again.diagnostics else "no nodes"
        raise SelfCheckError(source.path, f"the output does not parse:\n{first}")
    if again.policy != parsed.policy:
        raise SelfCheckError(source.path, "the output parses to a different policy: "
                             + _first_difference(parsed.policy.items, again.policy.items))
    if Counter(c.text for c in again.comments) != Counter(c.text for c in parsed.comments):
        raise SelfCheckError(source.path, "a comment was lost or changed")
    if render(again, Source(source.path, out)) != out:
        raise SelfCheckError(source.path, "formatting the output again changes it (not idempotent)")
    return out


def format_text(text: str, path: str = "<string>") -> str:
    return format_source(Source(path, text))
