"""What a lint rule is, what it reports, and what it sees (the LintContext)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal

from .. import nodes as n
from ..diagnostics import Diagnostic
from ..source import Source, Span, caret_excerpt
from ..syntax import ParsedFile

if TYPE_CHECKING:
    from ..compiler import CompiledPolicy
    from .semantic import SemanticIndex

Level = Literal["error", "warning", "ignore"]
LEVELS: tuple[str, ...] = ("error", "warning", "ignore")
CATEGORIES = ("correctness", "regex", "semantic", "hygiene", "usability")


@dataclass(frozen=True)
class RuleInfo:
    id: str  # stable, kebab-case
    category: str
    level: Level  # default level
    summary: str
    needs_model: bool = False
    covers: tuple[str, ...] = ()  # compiler diagnostic codes this rule reports itself (with a fix hint)

    @property
    def doc(self) -> str:
        return f"docs/lint/rules/{self.id}.md"


@dataclass(frozen=True)
class Finding:
    rule: str
    level: str
    message: str
    span: Span
    help: str | None = None
    line_text: str = ""
    width: int = 1
    category: str = ""

    @property
    def key(self) -> tuple:
        return (self.span.file, self.span.line, self.span.column, self.rule, self.message)

    def render(self) -> str:
        out = f"{self.span}: {self.level}[{self.rule}]: {self.message}"
        if self.span.line > 0:
            out += "\n" + caret_excerpt(self.line_text, self.span.column, self.width)
        if self.help:
            out += f"\n  = help: {self.help}"
        return out


@dataclass
class LintFile:
    path: str  # as shown in findings
    source: Source
    parsed: ParsedFile

    @property
    def nodes(self) -> n.PolicyFile | None:
        return self.parsed.policy


@dataclass
class LintContext:
    """One policy (an entry file with its imports) as the rules see it."""

    entry: LintFile
    files: list[LintFile]
    policy: "CompiledPolicy | None"
    diagnostics: tuple[Diagnostic, ...]
    semantic: "Callable[[], SemanticIndex] | None" = None
    extra_tested_rules: set[str] = field(default_factory=set)  # rules named by `by:` in NAME.cases.yaml files

    # -- navigation ----------------------------------------------------------------------------------
    def items(self, kind: type | tuple[type, ...]) -> Iterator[tuple[LintFile, Any]]:
        for f in self.files:
            if f.nodes is None:
                continue
            for it in f.nodes.items:
                if isinstance(it, kind):
                    yield f, it

    def file_of(self, span: Span) -> LintFile | None:
        return next((f for f in self.files if f.path == span.file), None)

    def blocks(self) -> dict[str, tuple[LintFile, Any]]:
        out: dict[str, tuple[LintFile, Any]] = {}
        for f, it in self.items((n.PatternDef, n.WordsDef, n.ConceptDef)):
            out.setdefault(it.name.value, (f, it))
        return out

    def rules(self) -> dict[str, tuple[LintFile, n.RuleDef]]:
        out: dict[str, tuple[LintFile, n.RuleDef]] = {}
        for f, it in self.items(n.RuleDef):
            out.setdefault(it.name.value, (f, it))
        return out

    def model_pinned(self) -> bool:
        return any(h.model is not None for h in (self.entry.nodes.of(n.Header) if self.entry.nodes else []))

    # -- findings --------------------------------------------------------------------------------------
    def finding(self, rule: RuleInfo, span: Span, message: str, help: str | None = None, width: int = 0) -> Finding:
        f = self.file_of(span)
        line_text = f.source.line_text(span.line) if f else ""
        if width <= 0:
            width = span.end - span.start if span.end > span.start and span.end_line in (span.line, 0) else 1
        return Finding(rule.id, rule.level, message, span, help, line_text, max(1, width), rule.category)


def span_at(file: LintFile, offset: int, length: int = 1) -> Span:
    line, col = file.source.position(offset)
    return Span(file.path, line, col, offset, offset + length, line, col + length)


def regex_token_offset(file: LintFile, item: n.PatternDef) -> int:
    """Source offset of the opening '/' of a pattern's regex literal."""
    for t in file.parsed.tokens:
        if t.type == "REGEX" and item.span.start <= t.start < item.span.end:
            return t.start
    return item.span.start


Check = Callable[[LintContext], Iterable[Finding]]


def load_module_rules() -> list[tuple[RuleInfo, Check]]:
    from .rules import RULE_MODULES

    import importlib

    out = []
    for name in RULE_MODULES:
        mod = importlib.import_module(f"{__package__}.rules.{name}")
        out.append((mod.RULE, mod.check))
    return out


def keyword_span(file: LintFile, item: Any, word: str) -> Span:
    """Span of the first `word` keyword token inside `item` (e.g. a concept's `threshold`), else its name."""
    for t in file.parsed.tokens:
        if item.span.start <= t.start < item.span.end and t.text == word and t.type not in ("STRING", "NAME"):
            return Span(file.path, t.line, t.column, t.start, t.end, t.line, t.column + len(t.text))
    return item.name.span
