"""Pydantic models at the app boundary: the Decision and its typed evidence. Immutable once produced."""

from __future__ import annotations

import json
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

Action = Literal["allow", "block", "redact", "flag"]
SubjectName = Literal["input", "output"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceLocation(_Frozen):
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class RegexEvidence(_Frozen):
    kind: Literal["regex"] = "regex"
    subject: SubjectName
    pattern: str
    regex: str
    span: tuple[int, int]
    text: str
    matches: int = 1
    transforms: list[str] = []  # normalisations that changed the matched characters ([]: matched as written)
    normalized: Optional[str] = None  # the matched text after normalisation, when it differs


class WordsEvidence(_Frozen):
    kind: Literal["words"] = "words"
    subject: SubjectName
    words: str
    span: tuple[int, int]
    text: str
    matches: int = 1
    transforms: list[str] = []  # normalisations that changed the matched characters ([]: matched as written)
    normalized: Optional[str] = None  # the matched text after normalisation, when it differs


class SimilarityEvidence(_Frozen):
    kind: Literal["similarity"] = "similarity"
    subject: SubjectName
    concept: str
    span: tuple[int, int]
    text: str
    score: float
    threshold: float
    example: str
    counter_example: Optional[str] = None
    counter_score: Optional[float] = None
    margin: float = 0.0
    transforms: list[str] = []  # normalisations that changed the chunk's characters
    normalized: Optional[str] = None  # the chunk as embedded, when normalisation changed it


class TrainingRowRef(_Frozen):
    """A training row of a trained concept, as it explains a decision: its id, text, label, where it comes from
    (the training file as written in the policy, or "<policy>" for the concept's examples and counters) and its
    cosine similarity to the matched chunk in the concept's space."""

    id: str
    text: str
    label: Literal["safe", "unsafe"]
    file: str
    similarity: float


class ClassifierEvidence(_Frozen):
    """A trained concept (`train "rows.jsonl"`): the classifier's probability that the chunk is unsafe, the
    concept's threshold, and the training rows nearest to the chunk on each side."""

    kind: Literal["classifier"] = "classifier"
    subject: SubjectName
    concept: str
    span: tuple[int, int]
    text: str
    probability: float
    threshold: float
    nearest: list[TrainingRowRef] = []
    transforms: list[str] = []  # normalisations that changed the chunk's characters
    normalized: Optional[str] = None  # the chunk as embedded, when normalisation changed it

    @property
    def score(self) -> float:
        return self.probability


class ContextEvidence(_Frozen):
    kind: Literal["context"] = "context"
    attribute: str
    op: str
    expected: Union[str, float, bool, list[Union[str, float, bool]], None]
    actual: Union[str, float, bool, None]
    negated: bool = False
    span: None = None


Evidence = Annotated[Union[RegexEvidence, WordsEvidence, SimilarityEvidence, ClassifierEvidence, ContextEvidence],
                     Field(discriminator="kind")]


class Reason(_Frozen):
    rule: str
    action: Action
    severity: str
    category: Optional[str] = None
    message: Optional[str] = None
    source: SourceLocation
    evidence: list[Evidence]


class Override(_Frozen):
    rule: str
    by: str
    source: SourceLocation


class NearMiss(_Frozen):
    rule: str
    concept: str
    subject: SubjectName
    score: float  # cosine similarity, or for a trained concept (kind "classifier") the probability
    threshold: float
    counter_score: Optional[float] = None
    example: str  # for a trained concept: the nearest training row labelled unsafe
    counter_example: Optional[str] = None  # for a trained concept: the nearest training row labelled safe
    kind: Literal["similarity", "classifier"] = "similarity"
    span: tuple[int, int]
    why: str
    source: SourceLocation


class PolicyInfo(_Frozen):
    name: str
    version: Optional[str] = None
    digest: str


class EvaluationError(_Frozen):
    rule: Optional[str] = None
    message: str


class Decision(_Frozen):
    """The engine's answer for one message (and/or model output), with its full explanation."""

    action: Action
    rule: Optional[str] = None
    message: Optional[str] = None
    redacted: Optional[str] = None
    redacted_output: Optional[str] = None
    reasons: list[Reason] = []
    overridden: list[Override] = []
    shadow: list[Reason] = []
    near_misses: list[NearMiss] = []
    policy: PolicyInfo
    model: Optional[str] = None
    notes: list[str] = []
    errors: list[EvaluationError] = []

    _texts: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def to_json(self, indent: int | None = None, **extra: object) -> str:
        """JSON of the decision (plus `extra` keys first). Unlike model_dump_json(), never fails on text that is
        not valid Unicode (lone surrogates): those are written as JSON escapes."""
        data = {**extra, **self.model_dump(mode="python")}
        text = json.dumps(data, ensure_ascii=False, indent=indent)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(data, ensure_ascii=True, indent=indent)
        return text

    def explain(self) -> str:
        """Human-readable explanation: the winning rule, every reason with its evidence, overrides, near misses."""
        from .explain import render_text

        return render_text(self, self._texts)
