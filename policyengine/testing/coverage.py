"""Coverage of a policy by its tests: which rules, patterns/word lists, concept examples and counter-examples
were exercised.

Definitions (docs/testing.md):
- a **rule** is covered when it matched in some test: it is among the decision's reasons, shadow reasons or
  overridden rules (so an overridden block rule still counts: its condition was exercised);
- a **pattern** or **word list** is covered when it finds a match in the input or output of some test;
- a **concept** is covered when it matched (some chunk cleared its threshold and its counter-examples) in some test;
- a concept **example** is covered when it was the nearest example of a *matching* chunk in some test (the
  example that made the concept match);
- a **counter-example** is covered when it was the nearest counter-example of the decisive chunk in some test
  (matching or not: counters matter most where they stop a match).
Only concepts that rules use are evaluated, so an unused concept's examples are never covered.

`percent` (what --min-coverage checks) = covered / all over rules, patterns, word lists and concepts.
`exemplar_percent` (--min-example-coverage) = covered / all over examples and counter-examples, reported apart:
a concept's examples are the training data of a nearest-neighbour matcher (the shipped pack has hundreds); a test
per example would mostly be near-copies of the examples, which measure nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..models import ClassifierEvidence

Kind = Literal["rule", "pattern", "words", "concept", "example", "counter"]
KINDS: tuple[Kind, ...] = ("rule", "pattern", "words", "concept", "example", "counter")
STRUCTURAL: tuple[Kind, ...] = ("rule", "pattern", "words", "concept")
EXEMPLARS: tuple[Kind, ...] = ("example", "counter")


@dataclass
class Item:
    kind: Kind
    name: str  # rule / pattern / word list name; for examples "concept[i]"
    file: str
    line: int
    column: int
    text: str | None = None  # the example's text
    hits: list[str] = field(default_factory=list)  # ids of the first tests that covered it

    @property
    def covered(self) -> bool:
        return bool(self.hits)

    def label(self) -> str:
        if self.kind in ("example", "counter"):
            concept = self.name.split("[", 1)[0]
            shown = self.text if self.text is not None and len(self.text) <= 60 else (self.text or "")[:57] + "..."
            return f"{self.kind} {shown!r} of concept {concept}"
        return f"{'word list' if self.kind == 'words' else self.kind} {self.name}"


MAX_HITS = 3


@dataclass(frozen=True)
class KindCoverage:
    covered: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.total if self.total else 100.0


@dataclass(frozen=True)
class CoverageReport:
    items: tuple[Item, ...]

    def by_kind(self) -> dict[str, KindCoverage]:
        return {k: KindCoverage(sum(i.covered for i in self.items if i.kind == k),
                                sum(1 for i in self.items if i.kind == k)) for k in KINDS}

    def _part(self, kinds: tuple[Kind, ...]) -> KindCoverage:
        its = [i for i in self.items if i.kind in kinds]
        return KindCoverage(sum(i.covered for i in its), len(its))

    @property
    def covered(self) -> int:
        return self._part(STRUCTURAL).covered

    @property
    def total(self) -> int:
        return self._part(STRUCTURAL).total

    @property
    def percent(self) -> float:
        """Coverage of rules, patterns, word lists and concepts (what --min-coverage checks)."""
        return self._part(STRUCTURAL).percent

    @property
    def exemplars(self) -> KindCoverage:
        """Coverage of concept examples and counter-examples (what --min-example-coverage checks)."""
        return self._part(EXEMPLARS)

    def uncovered(self) -> list[Item]:
        return [i for i in self.items if not i.covered]

    def by_file(self) -> dict[str, KindCoverage]:
        files: dict[str, list[Item]] = {}
        for i in self.items:
            files.setdefault(i.file, []).append(i)
        return {f: KindCoverage(sum(i.covered for i in its if i.kind in STRUCTURAL),
                                sum(1 for i in its if i.kind in STRUCTURAL)) for f, its in files.items()}


class Coverage:
    """Accumulates coverage over the targets of a run (an item is keyed by its definition's place)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, int, int], Item] = {}

    def _item(self, kind: Kind, name: str, span: Any, text: str | None = None) -> Item:
        key = (kind, span.file, span.line, span.column)
        if key not in self._items:
            self._items[key] = Item(kind, name, span.file, span.line, span.column, text)
        return self._items[key]

    def add(self, policy: Any, trace: list[tuple[Any, Any, dict]]) -> None:
        """Record one compiled policy and the (case, decision, concept trace) of every case run against it."""
        rules = {r.name: self._item("rule", r.name, r.span) for r in policy.rules}
        patterns = {name: self._item("words" if p.kind == "words" else "pattern", name, p.span)
                    for name, p in policy.patterns.items()}
        concepts = {name: self._item("concept", name, spec.span) for name, spec in policy.concepts.items()}
        examples: dict[str, dict[str, list[Item]]] = {}
        counters: dict[str, dict[str, list[Item]]] = {}
        for name, spec in policy.concepts.items():
            ex, ctr = examples.setdefault(name, {}), counters.setdefault(name, {})
            spans = spec.example_spans or (spec.span,) * len(spec.examples)
            for i, (text, span) in enumerate(zip(spec.examples, spans)):
                ex.setdefault(text, []).append(self._item("example", f"{name}[{i}]", span, text))
            cspans = spec.counter_spans or (spec.span,) * len(spec.counter)
            for i, (text, span) in enumerate(zip(spec.counter, cspans)):
                ctr.setdefault(text, []).append(self._item("counter", f"{name}[{i}]", span, text))
        for case, decision, concept_trace in trace:
            cid = case.id

            def hit(item: Item) -> None:
                if len(item.hits) < MAX_HITS and cid not in item.hits:
                    item.hits.append(cid)

            for r in (*decision.reasons, *decision.shadow):
                if r.rule in rules:
                    hit(rules[r.rule])
            for o in decision.overridden:
                if o.rule in rules:
                    hit(rules[o.rule])
            texts = [t for t in (case.input, case.output) if t]
            for name, pat in policy.patterns.items():
                if any(next(pat.finditer(t), None) is not None for t in texts):
                    hit(patterns[name])
            for subject in concept_trace.values():
                for concept, (ok, ev) in subject.items():
                    if ev is None:
                        continue
                    if ok and concept in concepts:
                        hit(concepts[concept])
                    if isinstance(ev, ClassifierEvidence):  # a trained concept: its examples and counters are
                        for row in ev.nearest:               # training rows, exercised when nearest to a case
                            if row.file == "<policy>" and (ok or row.label == "safe"):
                                side = examples if row.label == "unsafe" else counters
                                for item in side.get(concept, {}).get(row.text, []):
                                    hit(item)
                        continue
                    if ok:
                        for item in examples.get(concept, {}).get(ev.example, []):
                            hit(item)
                    if ev.counter_example is not None:
                        for item in counters.get(concept, {}).get(ev.counter_example, []):
                            hit(item)

    def report(self) -> CoverageReport:
        items = sorted(self._items.values(), key=lambda i: (i.file, i.line, i.column, i.kind))
        return CoverageReport(tuple(items))
