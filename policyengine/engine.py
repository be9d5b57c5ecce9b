"""Engine: compile a policy and prepare its matchers once, then evaluate many messages (thread-safe)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from .compiler import CompiledPolicy, compile_policy
from .evaluator import ContextError, Evaluator, Limits, SubjectView, check_context, embeddable
from .matchers.embedders import Embedder
from .models import Decision

__all__ = ["Engine", "ConceptScore", "ContextError", "Limits", "TestResult"]


@dataclass(frozen=True)
class TestResult:
    name: str
    file: str
    line: int
    passed: bool
    expected: str
    expected_rules: tuple[str, ...]
    decision: Decision

    @property
    def detail(self) -> str:
        got = self.decision.action + (f" by {self.decision.rule}" if self.decision.rule else "")
        want = self.expected + (f" by {', '.join(self.expected_rules)}" if self.expected_rules else "")
        return f"expected {want}, got {got}"


@dataclass(frozen=True)
class ConceptScore:
    """One concept on one text, threshold-free: the best chunk among those closer to an example than to every
    counter-example (by the concept's margin), or the best chunk overall when none is (`clears_counter` False).
    The concept fires at threshold t exactly when `fires_at(t)`."""

    score: float  # cosine similarity to the nearest example, or a trained concept's probability (-inf: no chunk)
    counter_score: float | None  # that chunk's similarity to its nearest counter-example (None: no counters)
    span: tuple[int, int] | None  # the chunk, as character offsets into the text
    clears_counter: bool
    #: trained concepts only: the best cosine of any chunk to a training row, and that row's id (near-copy checks)
    row_similarity: float | None = None
    row_id: str | None = None

    def fires_at(self, threshold: float) -> bool:
        return self.clears_counter and self.score >= threshold


def _scanner(policy: CompiledPolicy, regex_engine: str) -> Any:
    """The one-pass regex prefilter (matchers/multiregex.py): "auto" uses Hyperscan when installed, "hyperscan"
    requires it, "re" runs every pattern on every text."""
    if regex_engine not in ("auto", "hyperscan", "re"):
        raise ValueError(f"regex_engine must be 'auto', 'hyperscan' or 're', got {regex_engine!r}")
    if regex_engine == "re" or not policy.patterns:
        return None
    from .matchers.multiregex import PolicyScanner

    return PolicyScanner(policy.patterns, regex_engine)


BACKENDS = ("onnx", "onnx-int8", "torch")


def default_backend() -> str:
    """$POLICYENGINE_BACKEND if set, else "onnx" (ONNX Runtime fp32: no torch at run time) when onnxruntime and
    tokenizers are installed, else "torch"."""
    env = os.environ.get("POLICYENGINE_BACKEND", "").strip()
    if env:
        return env
    from importlib.util import find_spec

    return "onnx" if find_spec("onnxruntime") and find_spec("tokenizers") else "torch"


def load_backend(model_id: str, backend: str | None, threads: int) -> Embedder:
    """The embedder for `backend`: "onnx" (ONNX Runtime fp32, exported once from the installed weights; the default),
    "onnx-int8" (quantised: faster, flips ~3% of decisions) or "torch" (sentence-transformers)."""
    backend = backend or default_backend()
    if backend == "torch":
        from .matchers.embedders import load_embedder

        return load_embedder(model_id, threads=threads)
    if backend in ("onnx", "onnx-fp32", "onnx-int8"):
        from .matchers.onnx_backend import load_onnx_embedder

        return load_onnx_embedder(model_id, threads=threads, quantized=backend == "onnx-int8")
    raise ValueError(f"unknown embedding backend {backend!r} ({', '.join(BACKENDS)})")


def policy_embedder(policy: CompiledPolicy, backend: str | None = None, threads: int = 1,
                    given: Embedder | None = None) -> Embedder:
    """The embedder a policy's concepts need. For a "<base>+finetune" policy, the base model fine-tuned on the
    policy's own pairs (trained on first use, then cached; docs/intent.md; needs torch) embeds examples and messages
    alike: it replaces `given` unless `given` already is the tuned model (marked `tuned`). Otherwise `given`, or the
    (shared) model of `policy.model` on `backend` (None: default_backend())."""
    from .matchers.embedders import ModelLoadError, split_model_id

    if split_model_id(policy.model)[1] == "finetune" and not getattr(given, "tuned", False):
        if backend not in (None, "torch"):
            raise ModelLoadError(f"model {policy.model!r}: the fine-tuned space needs the torch backend, "
                                 f"not {backend!r}")
        from .intent.finetune import tuned_embedder

        needed = {k: c for k, c in policy.concepts.items() if k in policy.used_concepts}
        return tuned_embedder(policy.model, {k: (c.examples, c.counter) for k, c in needed.items()}, threads)
    return given if given is not None else load_backend(policy.model, backend, threads)


def _default_threads() -> int:
    env = os.environ.get("POLICYENGINE_THREADS")
    return max(1, int(env)) if env and env.isdigit() else 1


class Engine:
    """A compiled policy plus its prepared matchers.

    Construction parses, checks and compiles the policy and, if any rule uses a concept, loads the embedding
    model (once per process) and indexes the concept examples in FAISS, from the compiled-policy cache when it
    holds this policy (policyengine/runtime.py: nothing embedded or trained again). Evaluation is then a pure function of
    the message and context, safe to call from many threads.
    """

    def __init__(self, policy: CompiledPolicy, *, embedder: Embedder | None = None, threads: int | None = None,
                 limits: Limits | None = None, regex_engine: str = "auto", backend: str | None = None,
                 embedding_cache: int = 0, cache: bool | None = None):
        """`threads`: FAISS/ONNX/torch intra-op threads (default 1, or $POLICYENGINE_THREADS: more than the free
        cores collapses throughput). `regex_engine`: "auto" | "hyperscan" | "re". `backend` (used when no `embedder`
        is given): "onnx" (ONNX Runtime fp32, the default when installed: no torch), "onnx-int8" or "torch".
        `embedding_cache`: LRU size of chunk embeddings, keyed by the normalised chunk text (0 = off). `cache`: use
        and fill the compiled-policy cache (policyengine/runtime.py; default on unless
        $POLICYENGINE_COMPILED_CACHE=0) when the embedder names its embedding space (`space_id`)."""
        from . import runtime

        self.policy = policy
        self.bundle: str | None = None
        self.limits = limits or Limits()
        self.threads = threads or _default_threads()
        self.regex_engine = regex_engine
        self._embedder: Embedder | None = None
        #: "hit" (built from a stored artifact), "miss" (compiled and stored), or None (cache not used)
        self.compiled_cache: str | None = None
        self.artifact: Any = None  # the runtime.Artifact this engine was built from or wrote, if any
        use_cache = runtime.cache_enabled() if cache is None else cache
        recorder = None
        key = None
        index = None
        needed = {k: v for k, v in policy.concepts.items() if k in policy.used_concepts}
        if needed:
            embedder = policy_embedder(policy, backend, self.threads, given=embedder)
            info = getattr(embedder, "info", None)
            index_embedder: Any = embedder
            space = getattr(embedder, "space_id", None) if use_cache else None
            if isinstance(space, str):
                key = runtime.cache_key(policy, space)
                art = runtime.load_cached(key)
                table = None
                if art is not None:
                    try:
                        table = runtime.apply_artifact(art, policy, regex_engine)
                    except runtime.ArtifactError:
                        table = None
                if table is not None:
                    index_embedder = runtime.Precomputed(embedder, table)
                    self.compiled_cache, self.artifact = "hit", art
                else:
                    index_embedder = recorder = runtime.Recorder(embedder)
            if embedding_cache:
                from .matchers.embedcache import CachedEmbedder

                embedder = CachedEmbedder(embedder, embedding_cache)
            from .matchers.similarity import ConceptIndex

            self._embedder = embedder
            index = ConceptIndex(needed, index_embedder)
            index.embedder = embedder  # messages go to the model itself, not the recorder / stored table
            if isinstance(info, dict) and "digest" in info:  # the fine-tuned space's training stamp
                index.space_info = dict(info)
        self._index = index
        self.scanner = _scanner(policy, regex_engine)
        self._evaluator = Evaluator(policy, index, self.limits, policy.model if needed else None, self.scanner)
        if recorder is not None and key is not None:
            self.artifact = runtime.build_artifact(self, recorder, key)
            runtime.store_cached(key, self.artifact)
            self.compiled_cache = "miss"

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_path(cls, path: str | os.PathLike[str], **kwargs: Any) -> "Engine":
        return cls(compile_policy(path), **kwargs)

    @classmethod
    def from_bundle(cls, path: str | os.PathLike[str], **kwargs: Any) -> "Engine":
        """Load a bundle written by `policyengine compile`: its own sources, precomputed vectors, regex databases and
        (onnx backends) ONNX model; loads anywhere. Raises bundle.BundleError when unreadable, or stale: sources
        beside it (or at `policy_path=`) that changed since it was compiled."""
        from .bundle import load_engine

        return load_engine(path, **kwargs)

    @classmethod
    def from_source(cls, text: str, *, name: str = "<string>", **kwargs: Any) -> "Engine":
        return cls(compile_policy(text=text, name=name), **kwargs)

    @property
    def uses_model(self) -> bool:
        return self._index is not None

    # -- evaluation ------------------------------------------------------------------------------
    def _encode(self, texts: list[str]) -> np.ndarray:
        assert self._embedder is not None
        return self._embedder.encode(texts)

    def evaluate(self, input: str | None = None, output: str | None = None,
                 context: Mapping[str, Any] | None = None) -> Decision:
        """Decide on one message (`input`), one model response (`output`), or both."""
        return self._evaluate(*self._prepare(input, output, context))

    def evaluate_many(self, items: Iterable[str | Mapping[str, Any]], *,
                      trace: list[dict[str, dict[str, Any]]] | None = None) -> list[Decision]:
        """Evaluate many items (strings or {"input", "output", "context"} mappings), batching all embedding work.

        With `trace=[]`, appends per item {subject: {concept: (matched, SimilarityEvidence | None)}} for every
        concept that was evaluated (`policyengine test --coverage` uses it)."""
        prepared = self._prepare_many(items)
        decisions = [self._evaluate(*p) for p in prepared]
        if trace is not None:
            trace.extend({s: dict(v.concept_cache) for s, v in views.items()} for views, _, _ in prepared)
        return decisions

    def evaluate_with_scores(self, items: Iterable[str | Mapping[str, Any]]
                             ) -> list[tuple[Decision, dict[str, dict[str, ConceptScore]]]]:
        """Like evaluate_many, plus `concept_scores` for every item (one embedding pass for both)."""
        return [(self._evaluate(*p), self._concept_scores(p[0])) for p in self._prepare_many(items)]

    def concept_scores(self, items: Iterable[str | Mapping[str, Any]]) -> list[dict[str, dict[str, ConceptScore]]]:
        """Per item, per subject ("input"/"output"), per concept used by a rule: the best chunk, independent of the
        threshold, so a caller can try any threshold without embedding again (see ConceptScore)."""
        return [self._concept_scores(p[0]) for p in self._prepare_many(items)]

    def _concept_scores(self, views: dict[str, SubjectView]) -> dict[str, dict[str, ConceptScore]]:
        out: dict[str, dict[str, ConceptScore]] = {}
        if self._index is None:
            return out
        for subject, view in views.items():
            per: dict[str, ConceptScore] = {}
            for concept in sorted(self._index.concepts):
                chunks, sc = self._evaluator.concept_scores(concept, view)
                if sc is None:
                    per[concept] = ConceptScore(float("-inf"), None, None, False)
                    continue
                clears = sc.ex_score > sc.ctr_score + self.policy.concepts[concept].margin
                i = int(np.argmax(np.where(clears, sc.ex_score, -np.inf)) if clears.any() else np.argmax(sc.ex_score))
                c = chunks[i]
                row_sim = row_id = None
                head = self._index.heads.get(concept)
                if head is not None:
                    lo, hi = view.chunk_rows(self.policy.concepts[concept].chunking)
                    sims, rows = head.max_row_similarity(view.space_vecs(lo, hi, self._index))
                    j = int(np.argmax(sims))
                    row_sim, row_id = float(sims[j]), head.rows[int(rows[j])].id
                per[concept] = ConceptScore(float(sc.ex_score[i]),
                                            float(sc.ctr_score[i]) if sc.ctr_index[i] >= 0 else None,
                                            (c.start, c.end), bool(clears[i]), row_sim, row_id)
            out[subject] = per
        return out

    def _prepare_many(self, items: Iterable[str | Mapping[str, Any]]
                      ) -> list[tuple[dict[str, SubjectView], dict, dict]]:
        """Prepare every item and embed all their chunks in one length-sorted batch."""
        prepared = []
        for item in items:
            if isinstance(item, str):
                prepared.append(self._prepare(item, None, None))
            else:
                prepared.append(self._prepare(item.get("input"), item.get("output"), item.get("context")))
        if self._index is not None:
            # cheap conditions first: items whose every rule is decided without a concept are not embedded
            views = [v for views, ctx, _ in prepared if self._evaluator.needs_concepts(views, ctx)
                     for v in views.values()]
            texts = [embeddable(c.text) for v in views for c in v.chunks]
            if texts:
                order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # length-sorted batches pad less
                enc = self._encode([texts[i] for i in order])
                vecs = np.empty_like(enc)
                vecs[order] = enc
                pos = 0
                for v in views:
                    k = len(v.chunks)
                    v.vecs = vecs[pos:pos + k]
                    pos += k
        return prepared

    def _prepare(self, input: Any, output: Any, context: Any) -> tuple[dict[str, SubjectView], dict, dict]:
        if input is None and output is None:
            raise ValueError("evaluate() needs input=, output= or both")
        for name, value in (("input", input), ("output", output)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
        ctx = check_context(self.policy, context)
        encode = self._encode if self._index is not None else None
        views: dict[str, SubjectView] = {}
        texts: dict[str, str] = {}
        for name, value in (("input", input), ("output", output)):
            if value is not None:
                views[name] = self._evaluator.view(name, value, encode)
                texts[name] = value
        return views, ctx, texts

    def _evaluate(self, views: dict[str, SubjectView], ctx: dict, texts: dict) -> Decision:
        return self._evaluator.evaluate(views, ctx, texts)

    # -- the policy's own tests ------------------------------------------------------------------
    def run_tests(self) -> list[TestResult]:
        """Run the policy's own `test` blocks. (`policyengine test` / policyengine.testing also run NAME.cases.yaml
        files, stream to reporters and measure coverage.)"""
        from .testing.cases import policy_cases
        from .testing.runner import evaluate_cases

        return [TestResult(r.case.name, r.case.file, r.case.line, r.passed, r.case.expect, r.case.by, r.decision)
                for r in evaluate_cases(self, policy_cases(self.policy.tests))]


