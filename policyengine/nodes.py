"""Typed, immutable AST of a .policy file. Spans are carried but excluded from equality."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from .source import UNKNOWN_SPAN, Span

Subject = Literal["input", "output"]
ActionKind = Literal["block", "redact", "flag", "allow"]
Literal_ = Union[str, float, bool]


def _span() -> Span:
    return field(default=UNKNOWN_SPAN, compare=False, repr=False)  # type: ignore[return-value]


@dataclass(frozen=True)
class Name:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Text:
    """A string literal (already unescaped)."""

    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Header:
    name: Name
    version: Text | None = None
    model: Text | None = None
    default: str = "allow"
    on_error: str | None = None
    description: Text | None = None
    span: Span = _span()
    normalize: tuple[Name, ...] | None = None  # the policy-wide normalisation pipeline (None: not declared)


@dataclass(frozen=True)
class ContextField:
    path: str
    type: str
    span: Span = _span()


@dataclass(frozen=True)
class ContextDecl:
    fields: tuple[ContextField, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Import:
    path: Text
    span: Span = _span()


@dataclass(frozen=True)
class PatternDef:
    name: Name
    regex: str
    flags: str
    validate: Name | None = None
    span: Span = _span()
    normalize: tuple[Name, ...] | None = None  # None: the policy-wide pipeline applies


@dataclass(frozen=True)
class WordsDef:
    name: Name
    words: tuple[Text, ...] = ()
    file: Text | None = None
    span: Span = _span()
    normalize: tuple[Name, ...] | None = None


@dataclass(frozen=True)
class TrainSource:
    """`train "rows.jsonl" [categories ["a", "b"]]`: labelled rows a concept's classifier learns from."""

    path: Text
    categories: tuple[Text, ...] | None = None
    span: Span = _span()


@dataclass(frozen=True)
class ConceptDef:
    name: Name
    examples: tuple[Text, ...]
    counter: tuple[Text, ...]
    threshold: float | None
    margin: float | None = None
    span: Span = _span()
    normalize: tuple[Name, ...] | None = None
    train: tuple[TrainSource, ...] = ()


# ---- expressions -----------------------------------------------------------


@dataclass(frozen=True)
class Matches:
    subject: Subject
    pattern: Name
    span: Span = _span()


@dataclass(frozen=True)
class Contains:
    subject: Subject
    words: Name
    span: Span = _span()


@dataclass(frozen=True)
class Similar:
    subject: Subject
    concept: Name
    span: Span = _span()


@dataclass(frozen=True)
class Compare:
    path: str
    op: str  # == != < <= > >=
    value: Literal_
    span: Span = _span()


@dataclass(frozen=True)
class InList:
    path: str
    values: tuple[Literal_, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Exists:
    path: str
    span: Span = _span()


@dataclass(frozen=True)
class Not:
    operand: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class And:
    operands: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True)
class Or:
    operands: tuple["Expr", ...]
    span: Span = _span()


Expr = Union[Matches, Contains, Similar, Compare, InList, Exists, Not, And, Or]


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    message: Text | None = None
    targets: tuple[Name, ...] = ()  # redact: patterns/words; allow: overridden rules
    replacement: Text | None = None
    span: Span = _span()


@dataclass(frozen=True)
class RuleDef:
    name: Name
    when: Expr | None
    action: Action | None
    severity: str = "medium"
    mode: str = "enforce"
    category: Text | None = None
    description: Text | None = None
    span: Span = _span()


@dataclass(frozen=True)
class TestDef:
    name: Text
    input: Text | None
    output: Text | None
    context: tuple[tuple[str, Literal_], ...]
    expect: str | None
    by: tuple[Name, ...] = ()
    span: Span = _span()


Item = Union[Header, ContextDecl, Import, PatternDef, WordsDef, ConceptDef, RuleDef, TestDef]


@dataclass(frozen=True)
class PolicyFile:
    path: str
    items: tuple[Item, ...]
    span: Span = _span()

    def of(self, kind: type) -> list:
        return [i for i in self.items if isinstance(i, kind)]
