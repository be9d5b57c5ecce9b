"""Evaluate a compiled policy on one message: pure function of (policy, prepared matchers, input, context)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from . import nodes as n
from .algebra import combine
from .chunking import REQUEST, Chunk, chunk_text, embeddable, request_windows
from .compiler import CompiledPolicy, CompiledRule, walk
from .errors import PolicyEngineError
from .models import (ContextEvidence, Decision, EvaluationError, NearMiss, PolicyInfo, Reason, RegexEvidence,
                     SimilarityEvidence, SourceLocation, WordsEvidence, ClassifierEvidence, TrainingRowRef)
from .normalize import NormalizedText, find_mapped
from .normalize import normalize as normalize_text
from .normalize.saferegex import RegexGuardError
from .source import Span

MAX_EVIDENCE_SPANS = 20
NEAR_MISS_WINDOW = 0.2
MAX_NEAR_MISSES = 3


class ContextError(PolicyEngineError, ValueError):
    """The context passed by the app does not fit the policy's declared context types."""


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one evaluation may do (docs/hardening.md, "Bad input and limits").

    Regex, word-list and redaction rules always scan the whole text (linear-time engines: RE2 / Hyperscan, or the
    time-guarded fallback, whose timeout is an evaluation error that `on_error` decides). Concepts compare at most
    `max_chunks` chunks per text: past that, a sample (the first half of the budget from the start, the rest spread
    evenly to the end) and a note in `decision.notes` saying how many chunks were not compared.

    `max_input_chars` is a hard limit. Past it, `on_oversize` decides: "block" (default) returns a block decision of
    its own (rule null, a note and an error naming the limit) without evaluating; "truncate" evaluates the first
    max_input_chars characters and says so in `decision.notes`. Nothing past the limit is ever silently allowed."""

    max_input_chars: int = 2_000_000
    max_chunks: int = 256
    on_oversize: str = "block"  # block | truncate

    def __post_init__(self) -> None:
        if self.on_oversize not in ("truncate", "block"):
            raise ValueError(f"Limits.on_oversize must be 'truncate' or 'block', got {self.on_oversize!r}")
        if self.max_input_chars < 1 or self.max_chunks < 1:
            raise ValueError("Limits.max_input_chars and max_chunks must be positive")


def sample_note(subject: str, used: int, total: int, max_chunks: int) -> str:
    """The note of a text whose concepts saw only a sample of its chunks (policyengine.chunking.sample_spans)."""
    head = (used + 1) // 2
    return (f"{subject}: concepts were compared on {used} of {total} chunks (max_chunks {max_chunks}: the first "
            f"{head}, then {used - head} spread evenly to the end); {total - used} chunks were not compared with "
            "concepts; regex and word-list rules scanned the whole text")


def flatten_context(context: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (context or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_context(v, key + "."))
        else:
            out[key] = v
    return out


def check_context(policy: CompiledPolicy, context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if not isinstance(context, Mapping):
        raise ContextError(f"context must be a JSON object, got {type(context).__name__}")
    flat = flatten_context(context)
    for key, value in flat.items():
        nested = [p for p in policy.context if p.startswith(key + ".")]
        if nested and value is not None:
            raise ContextError(f"context.{key} must be an object (the policy declares context.{nested[0]}), "
                               f"got {value!r}")
        typ = policy.context.get(key)
        if typ is None or value is None:
            continue
        ok = {"string": isinstance(value, str), "bool": isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool)}[typ]
        if not ok:
            raise ContextError(f"context.{key} must be a {typ} (declared in the policy), got {value!r}")
    return flat


def unknown_context_keys(policy: CompiledPolicy, flat: Mapping[str, Any]) -> list[str]:
    """Keys of a (flattened) context that the policy's `context {}` block does not declare: no rule can read them,
    so a misspelt key would otherwise be ignored without a word. Decisions say so in their notes."""
    declared = policy.context
    return [k for k in flat if k not in declared and not any(d.startswith(k + ".") for d in declared)]


def unknown_context_note(policy: CompiledPolicy, keys: list[str]) -> str:
    from .diagnostics import did_you_mean

    parts = []
    for k in keys:
        hint = did_you_mean(k, policy.context)
        parts.append(f"'{k}'" + (f" ({hint})" if hint else ""))
    declared = ", ".join(sorted(policy.context)) or "none"
    return (f"context: {', '.join(parts)} not declared in the policy's context block, ignored by every rule "
            f"(declared: {declared})")


def loc(span: Span) -> SourceLocation:
    return SourceLocation(file=span.file, line=span.line, column=span.column)


@dataclass
class SubjectView:
    """One text being evaluated (input or output), with its chunks and lazily computed embeddings."""

    name: str
    text: str
    limits: Limits
    encode: Callable[[list[str]], np.ndarray] | None
    vecs: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    _chunks: list[Chunk] | None = None
    concept_cache: dict[str, tuple[bool, SimilarityEvidence | ClassifierEvidence | None]] = field(default_factory=dict)
    #: the normalisation pipelines the policy's concepts use; chunks are made for each (usually one)
    concept_pipelines: tuple[tuple[str, ...], ...] = ((),)
    oversize: bool = False
    _normalized: dict[tuple[str, ...], NormalizedText] = field(default_factory=dict)
    _rows: dict[tuple[str, ...], tuple[int, int]] = field(default_factory=dict)
    #: the policy's multi-pattern prefilter (policyengine/matchers/multiregex.py); None = run every pattern
    scanner: Any = None
    _candidates: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict)
    _space: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def may_match(self, pat: Any) -> bool:
        """False only when `pat` can match neither this text nor (for a block with a pipeline) its normalised text:
        one multi-pattern scan per text answers it for every pattern; the exact matcher then runs only if True."""
        if self.scanner is None:
            return True
        if pat.name in self._scan((), self.text, self.scanner.raw):
            return True
        if not pat.normalize:
            return False
        nt = self.normalized(pat.normalize)
        sets = self.scanner.normalized
        return nt.changed and (pat.normalize not in sets or pat.name in self._scan(pat.normalize, nt.text,
                                                                                   sets[pat.normalize]))

    def _scan(self, key: tuple[str, ...], text: str, pattern_set: Any) -> frozenset[str]:
        found = self._candidates.get(key)
        if found is None:
            found = self._candidates[key] = pattern_set.scan(text)
        return found

    def normalized(self, pipeline: tuple[str, ...]) -> NormalizedText:
        """This text after `pipeline`, with the map back to the original (computed once per view)."""
        nt = self._normalized.get(pipeline)
        if nt is None:
            nt = self._normalized[pipeline] = normalize_text(self.text, pipeline)
        return nt

    @property
    def chunks(self) -> list[Chunk]:
        """Chunks of every concept pipeline's normalised text, spans mapped to the original; `text` is what is
        embedded (the normalised chunk)."""
        if self._chunks is None:
            out: list[Chunk] = []
            for pipeline in self.concept_pipelines:
                request = pipeline[:1] == (REQUEST,)  # a trained concept's key: request-sized chunks
                nt = self.normalized(pipeline[1:] if request else pipeline)
                chunks, total = (request_windows if request else chunk_text)(nt.text, self.limits.max_chunks)
                if total > len(chunks):
                    self.notes.append(sample_note(self.name, len(chunks), total, self.limits.max_chunks))
                lo = len(out)
                for c in chunks:
                    s, e = nt.to_original((c.start, c.end))
                    out.append(Chunk(s, e, c.text))
                self._rows[pipeline] = (lo, len(out))
            self._chunks = out
        return self._chunks

    def chunk_rows(self, pipeline: tuple[str, ...]) -> tuple[int, int]:
        """The rows of `chunks` (and of the embeddings) that belong to `pipeline`."""
        self.chunks
        return self._rows.get(pipeline, (0, len(self.chunks)))

    def space_vecs(self, lo: int, hi: int, index: Any) -> np.ndarray:
        """Rows lo:hi of the embeddings mapped into the concept index's space, once per view (not per concept)."""
        key = (lo, hi)
        got = self._space.get(key)
        if got is None:
            got = self._space[key] = index.to_space(self.embeddings()[lo:hi])
        return got

    def embeddings(self) -> np.ndarray:
        if self.vecs is None:
            assert self.encode is not None, "policy uses concepts but the engine has no embedder"
            self.vecs = self.encode([embeddable(c.text) for c in self.chunks])
        return self.vecs


class Evaluator:
    def __init__(self, policy: CompiledPolicy, index: Any | None, limits: Limits, model_id: str | None,
                 scanner: Any | None = None):
        self.policy = policy
        self.scanner = scanner  # multiregex.PolicyScanner, or None: every pattern runs on every text
        self.index = index
        self.limits = limits
        self.model_id = model_id
        self.info = PolicyInfo(name=policy.name, version=policy.version, digest=policy.digest)
        used = sorted(policy.used_concepts)
        self.concept_pipelines = tuple(dict.fromkeys(policy.concepts[c].chunking for c in used
                                                     if c in policy.concepts)) or ((),)

    # -- public -----------------------------------------------------------------------------
    def view(self, name: str, text: str, encode: Callable[[list[str]], np.ndarray] | None) -> SubjectView:
        notes = []
        oversize = len(text) > self.limits.max_input_chars
        if oversize:
            if self.limits.on_oversize == "block":
                notes.append(f"{name}: {len(text)} characters is more than max_input_chars "
                             f"({self.limits.max_input_chars}); blocked without evaluation (on_oversize block)")
            else:
                notes.append(f"{name}: {len(text)} characters; only the first {self.limits.max_input_chars} were "
                             f"evaluated (max_input_chars, on_oversize truncate): the last "
                             f"{len(text) - self.limits.max_input_chars} characters were not checked")
            text = text[: self.limits.max_input_chars]
        return SubjectView(name, text, self.limits, encode, notes=notes, concept_pipelines=self.concept_pipelines,
                           oversize=oversize, scanner=self.scanner)

    def evaluate(self, views: dict[str, SubjectView], context: dict[str, Any], texts: dict[str, str]) -> Decision:
        if self.limits.on_oversize == "block" and any(v.oversize for v in views.values()):
            decision = Decision(action="block", message="The message is too long to be checked.", policy=self.info,
                                model=self.model_id, notes=[nt for v in views.values() for nt in v.notes],
                                errors=[EvaluationError(message="input exceeds Limits.max_input_chars "
                                                                f"({self.limits.max_input_chars}); on_oversize block")])
            decision._texts.update(texts)
            return decision
        matched: list[CompiledRule] = []
        evidence: dict[str, list] = {}
        errors: list[EvaluationError] = []
        failed: list[CompiledRule] = []
        for rule in self.policy.rules:
            try:
                ok, ev = self._eval(rule.when, views, context)
            except (_SimilarityFailure, RegexGuardError) as e:
                errors.append(EvaluationError(rule=rule.name, message=str(e)))
                failed.append(rule)
                continue
            if ok:
                matched.append(rule)
                evidence[rule.name] = ev
        outcome = combine(matched, self.policy.default)
        reasons = [self._reason(r, evidence[r.name]) for r in outcome.effective]
        action, winner = outcome.action, outcome.winner
        message = winner.message if winner else None
        notes = [note for v in views.values() for note in v.notes]
        if unknown := unknown_context_keys(self.policy, context):
            notes.append(unknown_context_note(self.policy, unknown))
        # A rule that could not be evaluated is never a silent allow: on_error (default block) decides.
        on_error = self.policy.on_error or "block"
        enforce_failed = [r for r in failed if r.mode != "shadow" and r.action.kind != "allow"]
        if enforce_failed and action != "block":
            if on_error == "block":
                action, winner = "block", enforce_failed[0]
                message = winner.message or "Moderation is unavailable; blocked by the policy's on_error setting."
            notes.append(f"{len(enforce_failed)} rule(s) could not be evaluated; on_error {on_error} applied")
        if winner is None and action == "block":
            message = "Blocked by the policy's default."
        redacted = redacted_output = None
        if action == "redact":
            redacted, redacted_output = self._redact(outcome.effective, views)
        decision = Decision(
            action=action, rule=winner.name if winner else None, message=message,
            redacted=redacted, redacted_output=redacted_output, reasons=reasons,
            overridden=[{"rule": r.name, "by": by.name, "source": loc(by.span)} for r, by in outcome.overridden],
            shadow=[self._reason(r, evidence[r.name]) for r in outcome.shadow],
            near_misses=self._near_misses(set(evidence), views) if action != "block" else [], policy=self.info, model=self.model_id,
            notes=notes, errors=errors)
        decision._texts.update(texts)
        return decision

    # -- expressions --------------------------------------------------------------------------
    def _eval(self, e: n.Expr, views: dict[str, SubjectView], ctx: dict[str, Any]) -> tuple[bool, list]:
        if isinstance(e, (n.Matches, n.Contains)):
            view = views.get(e.subject)
            if view is None:
                return False, []
            name = e.pattern.value if isinstance(e, n.Matches) else e.words.value
            pat = self.policy.patterns[name]
            found = self._pattern_matches(pat, view, MAX_EVIDENCE_SPANS)
            if not found:
                return False, []
            if pat.kind == "words":
                ev = [WordsEvidence(subject=e.subject, words=name, span=m.span, text=view.text[m.span[0]:m.span[1]],
                                    matches=len(found), transforms=list(m.transforms), normalized=m.normalized)
                      for m in found]
            else:
                ev = [RegexEvidence(subject=e.subject, pattern=name, regex=pat.source_text, span=m.span,
                                    text=view.text[m.span[0]:m.span[1]], matches=len(found),
                                    transforms=list(m.transforms), normalized=m.normalized) for m in found]
            return True, ev
        if isinstance(e, n.Similar):
            view = views.get(e.subject)
            if view is None:
                return False, []
            ok, ev = self._similar(e.concept.value, view)
            return ok, [ev] if ok and ev else []
        if isinstance(e, n.Compare):
            actual = ctx.get(e.path)
            ok = actual is not None and _compare(actual, e.op, e.value)
            return ok, [ContextEvidence(attribute=e.path, op=e.op, expected=e.value, actual=actual)] if ok else []
        if isinstance(e, n.InList):
            actual = ctx.get(e.path)
            ok = actual is not None and any(_compare(actual, "==", v) for v in e.values)
            return ok, [ContextEvidence(attribute=e.path, op="in", expected=list(e.values), actual=actual)] if ok else []
        if isinstance(e, n.Exists):
            ok = ctx.get(e.path) is not None
            return ok, [ContextEvidence(attribute=e.path, op="exists", expected=None, actual=ctx.get(e.path))] if ok \
                else []
        if isinstance(e, n.Not):
            ok, _ = self._eval(e.operand, views, ctx)
            if ok:
                return False, []
            ev = [ContextEvidence(attribute=a.path, op=_opname(a), expected=_expected(a), actual=ctx.get(a.path),
                                  negated=True) for a in walk(e.operand) if isinstance(a, (n.Compare, n.InList, n.Exists))]
            return True, ev
        if isinstance(e, n.And):
            out: list = []
            for op in sorted(e.operands, key=_cost):
                ok, ev = self._eval(op, views, ctx)
                if not ok:
                    return False, []
                out += ev
            return True, out
        if isinstance(e, n.Or):
            for op in sorted(e.operands, key=_cost):
                ok, ev = self._eval(op, views, ctx)
                if ok:
                    return True, ev
            return False, []
        raise TypeError(f"unknown expression {e!r}")  # pragma: no cover

    @staticmethod
    def _pattern_matches(pat: Any, view: SubjectView, limit: int | None = None) -> list:
        """Matches of a pattern / word list on the raw text and on its normalised text (the block's pipeline),
        every span in the ORIGINAL text (policyengine.normalize.find_mapped)."""
        if not view.may_match(pat):
            return []
        if not pat.normalize:
            return [_RawMatch(sp) for sp in _take(pat.finditer(view.text), limit)]
        return list(find_mapped(pat.finditer, view.normalized(pat.normalize), pat.finditer_normalized, limit))

    def concept_scores(self, concept: str, view: SubjectView) -> tuple[list[Chunk], Any]:
        """The chunks `concept` is compared on (those of its normalisation pipeline) and their ConceptScores
        (None when the text has no chunk). The one place that decides what a concept is scored on."""
        lo, hi = view.chunk_rows(self.policy.concepts[concept].chunking)
        chunks = view.chunks[lo:hi]
        if not chunks:
            return chunks, None
        return chunks, self.index.score(concept, view.space_vecs(lo, hi, self.index), mapped=True)  # type: ignore

    def _similar(self, concept: str, view: SubjectView) -> tuple[bool, SimilarityEvidence | ClassifierEvidence | None]:
        if concept in view.concept_cache:
            return view.concept_cache[concept]
        spec = self.policy.concepts[concept]
        try:
            chunks, sc = self.concept_scores(concept, view)
        except Exception as e:  # noqa: BLE001 - a model/index failure must be reported, never a silent allow
            raise _SimilarityFailure(f"concept '{concept}' could not be evaluated: {type(e).__name__}: {e}") from e
        if sc is None:
            view.concept_cache[concept] = (False, None)
            return False, None
        if spec.trained:
            return self._classified(concept, view, chunks, sc.ex_score)
        ok_mask = (sc.ex_score >= spec.threshold) & (sc.ex_score > sc.ctr_score + spec.margin)
        if ok_mask.any():
            i = int(np.argmax(np.where(ok_mask, sc.ex_score, -np.inf)))
        else:  # nearest miss: the chunk closest to clearing the threshold
            i = int(np.argmax(sc.ex_score))
        has_ctr = sc.ctr_index[i] >= 0
        ev = SimilarityEvidence(
            **_chunk_evidence(view, concept, spec.normalize, chunks[i]),
            score=round(float(sc.ex_score[i]), 4), threshold=spec.threshold,
            example=spec.examples[int(sc.ex_index[i])],
            counter_example=spec.counter[int(sc.ctr_index[i])] if has_ctr else None,
            counter_score=round(float(sc.ctr_score[i]), 4) if has_ctr else None, margin=spec.margin)
        result = (bool(ok_mask.any()), ev)
        view.concept_cache[concept] = result
        return result

    def _classified(self, concept: str, view: SubjectView, chunks: list[Chunk], probs: np.ndarray
                    ) -> tuple[bool, ClassifierEvidence]:
        """A trained concept on one text: the chunk with the highest probability, explained by the training rows
        nearest to it on each side."""
        spec = self.policy.concepts[concept]
        head = self.index.heads[concept]  # type: ignore[union-attr]
        i = int(np.argmax(probs))
        lo, hi = view.chunk_rows(spec.chunking)
        vec = view.space_vecs(lo, hi, self.index)[i]
        ev = ClassifierEvidence(
            **_chunk_evidence(view, concept, spec.normalize, chunks[i]),
            probability=round(float(probs[i]), 4), threshold=spec.threshold,
            nearest=[TrainingRowRef(id=r.id, text=r.text, label=r.label, file=r.file, similarity=round(sim, 4))
                     for r, sim in head.nearest(vec)])
        result = (bool(probs[i] >= spec.threshold), ev)
        view.concept_cache[concept] = result
        return result

    def needs_concepts(self, views: dict[str, SubjectView], ctx: dict[str, Any]) -> bool:
        """Whether some rule's outcome depends on a `similar` condition once the cheap conditions (regex, word
        lists, context) are known: three-valued (Kleene) logic with every `similar` unknown. evaluate_many embeds
        only the items for which this is True; single evaluations embed lazily on the first `similar` anyway."""

        def tri(e: n.Expr) -> bool | None:
            if isinstance(e, n.Similar):
                return None if e.subject in views else False
            if isinstance(e, n.Not):
                v = tri(e.operand)
                return None if v is None else not v
            if isinstance(e, (n.And, n.Or)):
                vals = [tri(op) for op in sorted(e.operands, key=_cost)]
                stop = isinstance(e, n.Or)  # the value that decides: True for or, False for and
                if stop in vals:
                    return stop
                return None if None in vals else not stop
            try:
                return self._eval(e, views, ctx)[0]
            except RegexGuardError:  # unknown here; evaluate() reports it and on_error decides
                return None

        if self.limits.on_oversize == "block" and any(v.oversize for v in views.values()):
            return False  # blocked without evaluation: nothing to embed
        return any(tri(rule.when) is None for rule in self.policy.rules)

    # -- explanation parts ----------------------------------------------------------------------
    def _reason(self, rule: CompiledRule, ev: list) -> Reason:
        return Reason(rule=rule.name, action=rule.action.kind, severity=rule.severity, category=rule.category,
                      message=rule.message, source=loc(rule.span), evidence=ev)

    def _near_misses(self, fired: set[str], views: dict[str, SubjectView]) -> list[NearMiss]:
        out: list[tuple[float, NearMiss]] = []
        for rule in self.policy.rules:
            if rule.name in fired or rule.action.kind == "allow" or rule.mode == "shadow":
                continue
            for atom in walk(rule.when):
                if not isinstance(atom, n.Similar) or atom.subject not in views:
                    continue
                cached = views[atom.subject].concept_cache.get(atom.concept.value)
                if not cached or cached[1] is None:
                    continue
                ok, ev = cached
                gap = ev.threshold - ev.score
                if isinstance(ev, ClassifierEvidence):
                    if not ok and gap > NEAR_MISS_WINDOW:
                        continue
                    unsafe = next((r.text for r in ev.nearest if r.label == "unsafe"), "")
                    safe = next((r.text for r in ev.nearest if r.label == "safe"), None)
                    why = (f"probability {ev.probability:.2f} >= {ev.threshold:.2f} but the rule's other conditions "
                           "were false") if ok else f"probability {ev.probability:.2f} < {ev.threshold:.2f}"
                    out.append((max(gap, 0.0) if not ok else 0.0, NearMiss(
                        rule=rule.name, concept=ev.concept, subject=ev.subject, score=ev.probability,
                        threshold=ev.threshold, example=unsafe, counter_example=safe, span=ev.span, why=why,
                        source=loc(rule.span), kind="classifier")))
                    continue
                if ok:
                    why = f"{ev.score:.2f} >= {ev.threshold:.2f} but the rule's other conditions were false"
                    gap = 0.0
                elif ev.score < ev.threshold or ev.counter_score is None:
                    # (the evidence score is rounded: a raw score just under the threshold may round up to it)
                    if gap > NEAR_MISS_WINDOW:
                        continue
                    why = f"{ev.score:.4f} < {ev.threshold:.2f}" if ev.score >= ev.threshold else \
                        f"{ev.score:.2f} < {ev.threshold:.2f}"
                    gap = max(gap, 0.0)
                else:
                    why = (f"{ev.score:.2f} >= {ev.threshold:.2f} but counter-example scored {ev.counter_score:.2f}"
                           + (f" (margin {ev.margin:.2f})" if ev.margin else ""))
                    gap = 0.0
                out.append((gap, NearMiss(rule=rule.name, concept=ev.concept, subject=ev.subject, score=ev.score,
                                          threshold=ev.threshold, counter_score=ev.counter_score, example=ev.example,
                                          counter_example=ev.counter_example, span=ev.span, why=why,
                                          source=loc(rule.span))))
        out.sort(key=lambda x: x[0])
        seen: set[str] = set()
        result = []
        for _, nm in out:
            if nm.rule not in seen:
                seen.add(nm.rule)
                result.append(nm)
        return result[:MAX_NEAR_MISSES]

    def _redact(self, rules: tuple[CompiledRule, ...], views: dict[str, SubjectView]) -> tuple[str | None, str | None]:
        out: dict[str, str | None] = {"input": None, "output": None}
        for subject, view in views.items():
            spans: list[tuple[int, int, str]] = []
            for r in rules:
                if r.action.kind != "redact":
                    continue
                subjects = {a.subject for a in walk(r.when) if isinstance(a, (n.Matches, n.Contains, n.Similar))}
                if subjects and subject not in subjects:
                    continue
                repl = r.action.replacement.value if r.action.replacement else "[REDACTED]"
                for t in r.action.targets:
                    spans += [(m.span[0], m.span[1], repl)
                              for m in self._pattern_matches(self.policy.patterns[t.value], view)]
            if spans:
                out[subject] = redact(view.text, spans)
        return out["input"], out["output"]


def _chunk_evidence(view: SubjectView, concept: str, pipeline: tuple[str, ...], c: Chunk) -> dict[str, Any]:
    """The fields every concept's evidence shares: the chunk's span and text, and what normalisation changed in it."""
    original = view.text[c.start:c.end]
    nt = view.normalized(pipeline)
    return {"subject": view.name, "concept": concept, "span": (c.start, c.end), "text": original,
            "transforms": list(nt.transforms_in((c.start, c.end))) if nt.changed else [],
            "normalized": c.text if c.text != original else None}


def redact(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace every span; overlapping or touching spans merge and take the first span's replacement."""
    merged: list[list] = []
    for s, e, r in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e, r])
    parts, pos = [], 0
    for s, e, r in merged:
        parts += [text[pos:s], r]
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


class _SimilarityFailure(RuntimeError):
    pass


@dataclass(frozen=True)
class _RawMatch:
    span: tuple[int, int]
    transforms: tuple[str, ...] = ()
    normalized: str | None = None


def _take(it: Any, limit: int | None) -> list:
    out = []
    for x in it:
        out.append(x)
        if limit is not None and len(out) >= limit:
            break
    return out


def _cost(e: n.Expr) -> int:
    if isinstance(e, (n.Compare, n.InList, n.Exists)):
        return 0
    if isinstance(e, (n.Matches, n.Contains)):
        return 1
    return max((_cost(x) for x in walk(e) if x is not e), default=2) if isinstance(e, (n.Not, n.And, n.Or)) else 2


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if isinstance(expected, str) or isinstance(actual, str) or isinstance(expected, bool):
        if op == "==":
            return bool(actual == expected)
        if op == "!=":
            return bool(actual != expected)
        return False
    try:
        a, b = float(actual), float(expected)
    except (TypeError, ValueError):
        return False
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _opname(a: n.Expr) -> str:
    return a.op if isinstance(a, n.Compare) else "in" if isinstance(a, n.InList) else "exists"


def _expected(a: n.Expr) -> Any:
    return a.value if isinstance(a, n.Compare) else list(a.values) if isinstance(a, n.InList) else None
