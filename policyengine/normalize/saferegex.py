"""Regex matching that cannot take super-linear time on adversarial input.

Every policy pattern is compiled twice: with RE2 (google-re2, a linear-time automaton engine) and with the
`regex` module (backtracking, Python-compatible syntax, but interruptible). A text is matched with RE2 whenever
RE2 gives exactly what Python's `re` would give:

- the pattern compiles in RE2 (no lookaround, backreferences, possessive/atomic groups, `\\Z`, verbose flag);
- the text is valid Unicode (no lone surrogates);
- when the pattern uses a class whose meaning differs outside ASCII (`\\b \\B \\w \\W \\d \\D \\s \\S`), the text is
  ASCII without \\v or \\x1c-\\x1f (where Python's `\\s` is wider than RE2's);
- a `$` without the `m` flag (Python: end, or before a final newline) only when the text does not end in "\\n".

Otherwise the `regex` module runs it under a time guard (`GUARD_SECONDS` per text): if that runs out,
`RegexGuardError` is raised, the evaluator reports the rule as not evaluable and the policy's `on_error` decides
(default block), never a silent allow. `SafeRegex.linear` says whether the pattern has the RE2 path at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterator

from ..errors import PolicyEngineError

GUARD_SECONDS = 0.25

_UNICODE_CLASSES = re.compile(r"(?<!\\)(?:\\\\)*\\[bBwWdDsS]")
_DOLLAR = re.compile(r"(?<!\\)(?:\\\\)*\$")
_EMPTY_MIN = re.compile(r"(?<!\\)((?:\\\\)*)\{,")
_RE2_ASCII_SAFE = re.compile(r"[^\x00-\x0a\x0c-\x1b\x20-\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class RegexGuardError(PolicyEngineError, RuntimeError):
    """A pattern without a linear-time path ran past its time guard on this text."""


@dataclass(frozen=True)
class SafeRegex:
    pattern: str
    flags: int
    re2: Any = field(default=None, compare=False, repr=False)
    fallback: Any = field(default=None, compare=False, repr=False)
    unicode_sensitive: bool = False
    python_dollar: bool = False
    why_not_linear: str | None = None

    @property
    def linear(self) -> bool:
        return self.re2 is not None

    def uses_re2(self, text: str) -> bool:
        if self.re2 is None:
            return False
        if self.unicode_sensitive:
            if _RE2_ASCII_SAFE.search(text):
                return False
        elif not text.isascii() and _SURROGATE.search(text):
            return False
        return not (self.python_dollar and text.endswith("\n"))

    def finditer(self, text: str) -> Iterator[tuple[int, int]]:
        """(start, end) of every match, left to right, as Python's `re.finditer` would give them."""
        if self.uses_re2(text):
            for m in self.re2.finditer(text):
                yield m.start(), m.end()
            return
        try:
            for m in self.fallback.finditer(text, timeout=GUARD_SECONDS):
                yield m.start(), m.end()
        except TimeoutError:
            raise RegexGuardError(f"pattern /{self.pattern}/ ran past its {GUARD_SECONDS}s guard "
                                  f"({self.why_not_linear or 'text outside the linear-time path'})") from None

    def search(self, text: str) -> tuple[int, int] | None:
        return next(iter(self.finditer(text)), None)


@lru_cache(maxsize=2048)
def compile_safe(pattern: str, flags: int = 0) -> SafeRegex:
    """Compile for both engines. Raises re.error when Python's `re` rejects the pattern (the checker reports it)."""
    re.compile(pattern, flags)  # the language is Python's regex syntax: reject what `re` rejects
    import regex as _regex

    fallback = _regex.compile(pattern, _to_regex_flags(flags, _regex))
    re2, why = _compile_re2(pattern, flags)
    return SafeRegex(pattern, flags, re2, fallback, bool(_UNICODE_CLASSES.search(pattern)),
                     bool(_DOLLAR.search(pattern)) and not flags & re.MULTILINE, why)


def _to_regex_flags(flags: int, mod: Any) -> int:
    out = mod.VERSION0
    for py, rx in ((re.IGNORECASE, mod.IGNORECASE), (re.MULTILINE, mod.MULTILINE), (re.DOTALL, mod.DOTALL),
                   (re.VERBOSE, mod.VERBOSE), (re.ASCII, mod.ASCII)):
        if flags & py:
            out |= rx
    return out


def _compile_re2(pattern: str, flags: int) -> tuple[Any, str | None]:
    if flags & re.VERBOSE:
        return None, "verbose flag"
    if flags & re.ASCII:
        return None, "ascii flag"
    try:
        import re2 as _re2
    except ImportError:  # pragma: no cover - google-re2 is a dependency
        return None, "google-re2 is not installed"
    opts = _re2.Options()
    opts.log_errors = False
    opts.case_sensitive = not flags & re.IGNORECASE
    opts.dot_nl = bool(flags & re.DOTALL)
    src = _EMPTY_MIN.sub(r"\1{0,", pattern)  # Python reads {,n} as {0,n}; RE2 as a literal
    if flags & re.MULTILINE:
        src = "(?m)" + src
    try:
        return _re2.compile(src, opts), None
    except Exception as e:  # noqa: BLE001 - re2.error: unsupported construct
        msg = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        return None, f"not supported by RE2: {msg}"
