"""Load a policy (with its imports and word-list files), check it, and compile it into an immutable CompiledPolicy.

Named stages: load (parse every file, resolve imports) -> check (names, kinds, regexes, context types, tests)
-> compile (regexes, word lists, concept specs, rules, digest). Every stage collects diagnostics; a policy with
any error raises PolicyError carrying all of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import nodes as n
from .diagnostics import Diagnostic, PolicyError, did_you_mean
from .normalize import TRANSFORMS, canonical
from .normalize.saferegex import SafeRegex, compile_safe
from .source import Source, Span
from .training import MAX_FILE_BYTES, TrainingRow, parse_rows, select
from .syntax.parser import UNPARSED_CONTEXT, UNPARSED_IMPORT, parse_policy_recovering
from .validators import VALIDATORS

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Size limits (docs/language.md "Limits", errors E0010 / E0011): compiling a regex or word list is superlinear in
# its size (a 3 MB string literal took 33 s and 830 MB), so bounds are checked before anything is compiled.
MAX_POLICY_CHARS = 1_000_000  # one .policy file (the whole default pack is ~110,000)
MAX_LITERAL_CHARS = 10_000  # one "string" or /regex/ (the pack's longest is a few hundred)
# the one table of regex flag letters (lint uses it too)
REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
CONTEXT_TYPES = {"string": (str,), "number": (int, float), "bool": (bool,)}


# ---- compiled form -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledPattern:
    name: str
    regex: re.Pattern[str]
    source_text: str  # the pattern as written, for explanations
    validator: str | None
    span: Span
    kind: str = "regex"  # regex | words
    normalize: tuple[str, ...] = ()  # the normalisation pipeline this block is matched through
    # linear-time matchers (RE2, or a time-guarded fallback): see policyengine/normalize/saferegex.py
    safe: SafeRegex | None = field(default=None, compare=False, repr=False)
    safe_normalized: SafeRegex | None = field(default=None, compare=False, repr=False)  # ignore-case when casefold

    def finditer(self, text: str) -> Iterator[tuple[int, int]]:
        yield from self._finditer(text, self.safe)

    def finditer_normalized(self, text: str) -> Iterator[tuple[int, int]]:
        """Matches on text produced by this block's normalisation pipeline."""
        yield from self._finditer(text, self.safe_normalized or self.safe)

    def _finditer(self, text: str, safe: SafeRegex | None) -> Iterator[tuple[int, int]]:
        check: Callable[[str], bool] | None = VALIDATORS[self.validator] if self.validator else None
        spans = safe.finditer(text) if safe is not None else ((m.start(), m.end()) for m in self.regex.finditer(text))
        for s, e in spans:
            if e == s:
                continue
            if check is None or check(text[s:e]):
                yield s, e


@dataclass(frozen=True)
class ConceptSpec:
    name: str
    examples: tuple[str, ...]
    counter: tuple[str, ...]
    threshold: float
    margin: float
    span: Span
    example_spans: tuple[Span, ...] = field(default=(), compare=False)
    counter_spans: tuple[Span, ...] = field(default=(), compare=False)
    normalize: tuple[str, ...] = ()  # chunks are embedded after this pipeline
    #: labelled rows of the concept's `train` files (after category filters); non-empty = a trained concept,
    #: decided by a classifier whose `threshold` is a probability (policyengine/matchers/heads.py)
    training: tuple[TrainingRow, ...] = field(default=(), compare=False, repr=False)
    train_files: tuple[str, ...] = ()

    @property
    def trained(self) -> bool:
        return bool(self.train_files)

    @property
    def chunking(self) -> tuple[str, ...]:
        """The key of the chunks this concept is scored on: its normalisation pipeline, marked for a trained concept,
        which reads request-sized chunks (chunking.request_windows) instead of sentences."""
        from .chunking import REQUEST

        return (REQUEST, *self.normalize) if self.trained else self.normalize


@dataclass(frozen=True)
class CompiledRule:
    name: str
    when: n.Expr
    action: n.Action
    severity: str
    mode: str
    category: str | None
    span: Span
    order: int

    @property
    def message(self) -> str | None:
        return self.action.message.value if self.action.message else None


@dataclass(frozen=True)
class CompiledPolicy:
    name: str
    version: str | None
    model: str
    model_pinned: bool
    default: str
    on_error: str | None
    context: dict[str, str]
    patterns: dict[str, CompiledPattern]
    concepts: dict[str, ConceptSpec]
    rules: tuple[CompiledRule, ...]
    tests: tuple[n.TestDef, ...]
    digest: str
    files: tuple[n.PolicyFile, ...]
    entry: str
    normalize: tuple[str, ...] = ()  # the policy-wide pipeline (the header's `normalize [...]`)

    def rule(self, name: str) -> CompiledRule:
        return next(r for r in self.rules if r.name == name)

    @property
    def used_concepts(self) -> set[str]:
        return {a.concept.value for r in self.rules for a in walk(r.when) if isinstance(a, n.Similar)}


def walk(expr: n.Expr) -> Iterator[n.Expr]:
    yield expr
    if isinstance(expr, n.Not):
        yield from walk(expr.operand)
    elif isinstance(expr, (n.And, n.Or)):
        for op in expr.operands:
            yield from walk(op)


def words_regex(words: list[str]) -> str:
    """Whole-word alternation of the entries (spaces match any whitespace). The word edges are written as \\b / \\B
    (the same as (?<!\\w) / (?!\\w) next to a word / non-word character), so RE2 can run it in linear time."""
    alts = set()
    for w in words:
        parts = w.split()
        body = r"\s+".join(re.escape(p) for p in parts)
        head = r"\b" if re.match(r"\w", parts[0]) else r"\B"
        tail = r"\b" if re.search(r"\w$", parts[-1]) else r"\B"
        alts.add(head + body + tail)
    return "(?:" + "|".join(sorted(alts, key=len, reverse=True)) + ")"


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


# ---- stage 1: load -----------------------------------------------------------------------------


class _Ctx:
    def __init__(self, root: Path):
        self.root = root
        self.diags: list[Diagnostic] = []
        self.sources: dict[str, Source] = {}
        self.extra_digest: list[bytes] = []
        self.loaded: set[Path] = set()
        self.real_paths: dict[str, Path] = {}
        self.unparsed: set[str] = set()  # names defined by items cut out on a syntax error (see _check_recovered)

    def err(self, code: str, msg: str, span: Span, help: str | None = None, width: int = 1,
            severity: str = "error") -> None:
        src = self.sources.get(span.file)
        line_text = src.line_text(span.line) if src else ""
        if width == 1 and span.end > span.start and span.end_line == span.line:
            width = span.end - span.start
        self.diags.append(Diagnostic(code, msg, span, severity=severity, help=help,  # type: ignore[arg-type]
                                     line_text=line_text, width=width))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    return data.decode("utf-8")


def _load(ctx: _Ctx, path: Path, display: str, text: str | None, stack: tuple[Path, ...],
          out: list[n.PolicyFile]) -> None:
    if text is None:
        text = _read_text(path)
    ctx.loaded.add(path)
    ctx.real_paths[display] = path
    src = Source(display, text)
    ctx.sources[display] = src
    if len(text) > MAX_POLICY_CHARS:
        line, col = src.position(MAX_POLICY_CHARS)
        ctx.err("E0010", f"policy file is {len(text):,} characters, more than the limit of {MAX_POLICY_CHARS:,}",
                Span(display, line, col), help="split it into files joined with `import`")
        return
    pf, diags, unparsed = parse_policy_recovering(src)  # with syntax errors: the items that parsed, for checking
    ctx.diags.extend(diags)
    ctx.unparsed |= unparsed
    if pf is None:
        ctx.unparsed.add(UNPARSED_IMPORT)  # nothing of this file is known
        return
    _check_literal_sizes(ctx, pf)
    out.append(pf)
    for imp in pf.of(n.Import):
        target = (path.parent / imp.path.value)
        real = Path(os.path.realpath(target))
        width = len(imp.path.value) + 2
        if not _inside(real, ctx.root):
            ctx.err("E0101", f"import {imp.path.value!r} escapes the policy root {str(ctx.root)!r}", imp.path.span,
                    help="imports resolve relative to the importing file and must stay inside the entry file's folder",
                    width=width)
            continue
        if real in stack:
            chain = " -> ".join(p.name for p in (*stack, real))
            ctx.err("E0102", f"import cycle: {chain}", imp.path.span, width=width)
            continue
        if real in ctx.loaded:
            continue  # already loaded (diamond import)
        if not real.is_file():
            ctx.err("E0103", f"imported file not found: {imp.path.value!r}", imp.path.span, width=width,
                    help=did_you_mean(Path(imp.path.value).name,
                                      [p.name for p in real.parent.glob("*.policy")]) if real.parent.is_dir() else None)
            continue
        try:
            child_text = _read_text(real)
        except (OSError, UnicodeDecodeError) as e:
            ctx.err("E0104", f"cannot read imported file {imp.path.value!r}: {e}", imp.path.span, width=width)
            continue
        shown = os.path.normpath(os.path.join(os.path.dirname(out[0].path), os.path.relpath(real, ctx.root)))
        _load(ctx, real, shown, child_text, (*stack, real), out)


def _check_literal_sizes(ctx: _Ctx, pf: n.PolicyFile) -> None:
    """E0011 for every string or /regex/ literal longer than MAX_LITERAL_CHARS, before anything is compiled."""

    def visit(node: object) -> None:
        if isinstance(node, n.Text):
            if len(node.value) > MAX_LITERAL_CHARS:
                too_long("string", len(node.value), Span(node.span.file, node.span.line, node.span.column))
        elif isinstance(node, n.PatternDef) and len(node.regex) > MAX_LITERAL_CHARS:
            src = ctx.sources[node.span.file]
            at = src.text.find("/", node.name.span.end or node.span.start)
            line, col = src.position(at) if at >= 0 else (node.span.line, node.span.column)
            too_long("regex", len(node.regex), Span(node.span.file, line, col))
        if isinstance(node, (tuple, list)):
            for x in node:
                visit(x)
        elif dataclasses.is_dataclass(node) and not isinstance(node, (Span, n.Text)):
            for f in dataclasses.fields(node):
                visit(getattr(node, f.name))

    def too_long(kind: str, size: int, span: Span) -> None:
        hint = ('a long list of words belongs in a word-list file (`words NAME = file "FILE"`), one entry a line'
                if kind == "string" else "split the pattern into several patterns joined with `or` in the rule")
        ctx.err("E0011", f"{kind} literal is {size:,} characters, more than the limit of {MAX_LITERAL_CHARS:,}",
                span, help=hint)

    visit(pf.items)


# ---- stage 2+3: check and compile ----------------------------------------------------------------


def compile_policy(path: str | os.PathLike[str] | None = None, *, text: str | None = None,
                   name: str = "<string>", display: str | None = None,
                   training_filter: Callable[[TrainingRow], bool] | None = None) -> CompiledPolicy:
    """Compile a policy from a file (with imports) or from source text. Raises PolicyError with all diagnostics.

    `display`: the entry file's name in diagnostics and decisions, when not `path` as given (a bundle compiles its
    copy of the sources under the path they were compiled from). `training_filter` keeps only the training rows it
    returns True for (measurement tools use it to leave one data file out of every trained concept); the digest
    still names the policy as written."""
    if path is not None:
        p = Path(os.path.realpath(path))
        root = p.parent
        display = display or str(path)
        if text is None:
            if not p.is_file():
                raise PolicyError([Diagnostic("E0100", f"policy file not found: {path}", Span(display, 0, 0))])
            try:
                text = _read_text(p)
            except UnicodeDecodeError as e:
                raise PolicyError([Diagnostic("E0004", f"policy file is not UTF-8 text ({e.reason} at byte {e.start})",
                                              Span(display, 0, 0))]) from None
            except OSError as e:
                raise PolicyError([Diagnostic("E0100", f"cannot read policy file: {e}", Span(display, 0, 0))]) from None
    else:
        root = Path(os.path.realpath(os.getcwd()))
        p = root / name
        display = name
    ctx = _Ctx(root)
    files: list[n.PolicyFile] = []
    _load(ctx, p, display, text, (p,), files)
    if any(d.severity == "error" for d in ctx.diags):
        _check_recovered(ctx, files, p, training_filter)
        raise PolicyError(ctx.diags)
    compiled = _Checker(ctx, files, p, training_filter).run()
    if any(d.severity == "error" for d in ctx.diags):
        raise PolicyError(ctx.diags)
    return compiled


# Semantic errors that name a block, rule or context attribute ('NAME' is the first quoted word of the message).
_REFERENCE_CODES = {"E0401": "name", "E0408": "name", "E0409": "name", "E0501": "name", "E0403": "context"}
_QUOTED = re.compile(r"'([^']*)'")


def _check_recovered(ctx: _Ctx, files: list[n.PolicyFile], entry_path: Path,
                     training_filter: Callable[[TrainingRow], bool] | None = None) -> None:
    """After recoverable syntax errors, run the semantic checks on the items that parsed, so one run reports both
    kinds (nothing is compiled: the caller raises). Errors that only follow from a cut-out item (a reference to a
    rule whose block did not parse) are dropped; when a file or an import could not be recovered at all, every
    reference error is. Only when the syntax errors are the only errors (an import or read error stops here)."""
    errors = [d for d in ctx.diags if d.severity == "error"]
    if not files or any(not d.code.startswith("E000") for d in errors):
        return
    before = len(ctx.diags)
    _Checker(ctx, files, entry_path, training_filter).run()
    kept = []
    for d in ctx.diags[before:]:
        kind = _REFERENCE_CODES.get(d.code)
        m = _QUOTED.search(d.message)
        if kind and (UNPARSED_IMPORT in ctx.unparsed or (kind == "context" and UNPARSED_CONTEXT in ctx.unparsed)
                     or (kind == "name" and m and m.group(1) in ctx.unparsed)):
            continue
        kept.append(d)
    ctx.diags[before:] = kept


class _Checker:
    def __init__(self, ctx: _Ctx, files: list[n.PolicyFile], entry_path: Path,
                 training_filter: Callable[[TrainingRow], bool] | None = None):
        self.training_filter = training_filter
        self._training_files: dict[Path, list[TrainingRow] | None] = {}
        self.ctx = ctx
        self.files = files
        self.entry_path = entry_path
        self.blocks: dict[str, n.PatternDef | n.WordsDef | n.ConceptDef] = {}
        self.rules: dict[str, n.RuleDef] = {}
        self.context: dict[str, str] = {}
        self.context_span: dict[str, Span] = {}
        self.declared_context = False

    def err(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
        self.ctx.err(*a, **k)

    def run(self) -> CompiledPolicy:
        entry = self.files[0]
        headers = [(f, h) for f in self.files for h in f.of(n.Header)]
        header: n.Header | None = None
        for f, h in headers:
            if f is entry and header is None:
                header = h
            elif f is entry:
                self.err("E0201", "more than one 'policy' header", h.span, help="a file has at most one header")
        if header is None:
            header = n.Header(n.Name(Path(entry.path).stem.replace(".", "_")))
        model = header.model.value if header.model else DEFAULT_MODEL
        for f, h in headers:
            if f is not entry and h.model and h.model.value != model:
                self.err("E0202", f"imported policy pins model {h.model.value!r} but the entry policy uses {model!r}",
                         h.model.span, help="thresholds are calibrated per model; use one model per policy")

        self._declare()
        self.normalize = self._pipeline(header.normalize, ())
        patterns = self._compile_blocks()
        concepts = self._compile_concepts()
        rules = self._compile_rules()
        tests = self._check_tests()
        digest = hashlib.sha256()
        for f in self.files:
            # each file by its path relative to the entry file's folder (never as typed on the command line, so
            # the digest is the same from any working directory and for a bundle's copy of the sources);
            # surrogatepass: a policy given as text= (not read from a file) may hold lone surrogates
            digest.update(self._relpath(f.path).encode("utf-8", "surrogatepass") + b"\0"
                          + self.ctx.sources[f.path].text.encode("utf-8", "surrogatepass") + b"\0")
        for extra in self.ctx.extra_digest:
            digest.update(extra)
        return CompiledPolicy(
            name=header.name.value, version=header.version.value if header.version else None, model=model,
            model_pinned=header.model is not None, default=header.default, on_error=header.on_error,
            context=dict(self.context), patterns=patterns, concepts=concepts, rules=tuple(rules), tests=tuple(tests),
            digest="sha256:" + digest.hexdigest(), files=tuple(self.files), entry=entry.path,
            normalize=self.normalize)

    def _relpath(self, display: str) -> str:
        """A loaded file's path relative to the entry file's folder, with '/' separators (what the digest hashes)."""
        real = self.ctx.real_paths.get(display)
        if real is None:  # pragma: no cover - every loaded file is recorded
            return display
        return Path(os.path.relpath(real, self.ctx.root)).as_posix()

    def _pipeline(self, names: tuple[n.Name, ...] | None, default: tuple[str, ...]) -> tuple[str, ...]:
        """A declared `normalize [...]` list, checked and in canonical order; `default` when not declared."""
        if names is None:
            return default
        ok = []
        for nm in names:
            if nm.value in TRANSFORMS:
                ok.append(nm.value)
            else:
                self.err("E0309", f"unknown normalisation '{nm.value}'", nm.span, width=len(nm.value),
                         help=did_you_mean(nm.value, TRANSFORMS) or f"known: {', '.join(TRANSFORMS)}")
        return canonical(ok)

    def _safe(self, cp: CompiledPattern) -> CompiledPattern:
        """Attach the linear-time matchers; with casefold, the normalised text is matched ignoring case."""
        flags = cp.regex.flags & ~re.UNICODE
        safe = compile_safe(cp.regex.pattern, flags)
        norm = compile_safe(cp.regex.pattern, flags | re.IGNORECASE) \
            if "casefold" in cp.normalize and not flags & re.IGNORECASE else None
        return dataclasses.replace(cp, safe=safe, safe_normalized=norm)

    # -- declarations ----------------------------------------------------------------
    def _declare(self) -> None:
        for f in self.files:
            for item in f.items:
                if isinstance(item, n.ContextDecl):
                    self.declared_context = True
                    for cf in item.fields:
                        if cf.path in self.context and self.context[cf.path] != cf.type:
                            self.err("E0203", f"context attribute '{cf.path}' declared as {cf.type} here but as "
                                     f"{self.context[cf.path]} at {self.context_span[cf.path]}", cf.span)
                        self.context.setdefault(cf.path, cf.type)
                        self.context_span.setdefault(cf.path, cf.span)
                elif isinstance(item, (n.PatternDef, n.WordsDef, n.ConceptDef)):
                    prev = self.blocks.get(item.name.value)
                    if prev is not None:
                        self.err("E0204", f"'{item.name.value}' is already defined at {prev.name.span}",
                                 item.name.span, width=len(item.name.value), help="names are shared by all imported files")
                    else:
                        self.blocks[item.name.value] = item
                elif isinstance(item, n.RuleDef):
                    prev_r = self.rules.get(item.name.value)
                    if prev_r is not None:
                        self.err("E0205", f"rule '{item.name.value}' is already defined at {prev_r.name.span}",
                                 item.name.span, width=len(item.name.value))
                    else:
                        self.rules[item.name.value] = item

    def _compile_blocks(self) -> dict[str, CompiledPattern]:
        out: dict[str, CompiledPattern] = {}
        for name, item in self.blocks.items():
            if isinstance(item, n.PatternDef):
                cp = self._compile_pattern(item)
                if cp:
                    out[name] = cp
            elif isinstance(item, n.WordsDef):
                cw = self._compile_words(item)
                if cw:
                    out[name] = cw
        return out

    def _regex_pos(self, item: n.PatternDef, offset_in_literal: int) -> Span:
        """Span of a character of the /regex/flags literal (offset 0 = the opening slash)."""
        src = self.ctx.sources[item.span.file]
        literal = "/" + item.regex + "/"
        start = src.text.find(literal, item.name.span.end or item.span.start)
        if start < 0:
            return item.name.span
        line, col = src.position(start + offset_in_literal)
        return Span(item.span.file, line, col)

    def _compile_pattern(self, item: n.PatternDef) -> CompiledPattern | None:
        flags = 0
        ok = True
        for i, ch in enumerate(item.flags):
            if ch not in REGEX_FLAGS:
                self.err("E0301", f"unknown regex flag {ch!r} in pattern '{item.name.value}'",
                         self._regex_pos(item, len(item.regex) + 2 + i), help="flags are i (ignore case), m, s, x")
                ok = False
            else:
                flags |= REGEX_FLAGS[ch]
        if item.validate and item.validate.value not in VALIDATORS:
            self.err("E0302", f"unknown validator '{item.validate.value}'", item.validate.span,
                     width=len(item.validate.value),
                     help=did_you_mean(item.validate.value, VALIDATORS) or f"known: {', '.join(sorted(VALIDATORS))}")
            ok = False
        try:
            rx = re.compile(item.regex, flags)
        except re.error as e:
            self.err("E0303", f"invalid regex in pattern '{item.name.value}': {e.msg}",
                     self._regex_pos(item, 1 + (e.pos or 0)))
            return None
        if not ok:
            return None
        return self._safe(CompiledPattern(item.name.value, rx, f"/{item.regex}/{item.flags}",
                                          item.validate.value if item.validate else None, item.span,
                                          normalize=self._pipeline(item.normalize, self.normalize)))

    def _compile_words(self, item: n.WordsDef) -> CompiledPattern | None:
        words = [w.value for w in item.words]
        if item.file is not None:
            src_file = self._source_path(item.span.file)
            base = src_file.parent if src_file is not None else self.ctx.root
            target = Path(os.path.realpath(base / item.file.value))
            width = len(item.file.value) + 2
            if not _inside(target, self.ctx.root):
                self.err("E0104", f"word list {item.file.value!r} is outside the policy root", item.file.span,
                         width=width)
                return None
            if not target.is_file():
                self.err("E0105", f"word list file not found: {item.file.value!r}", item.file.span, width=width)
                return None
            try:
                data = target.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                self.err("E0106", f"cannot read word list {item.file.value!r}: {e}", item.file.span, width=width)
                return None
            self.ctx.extra_digest.append(item.file.value.encode() + b"\0" + data.encode())
            entries = [ln.strip() for ln in data.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            longest = max(entries, key=len, default="")
            if len(longest) > MAX_LITERAL_CHARS:
                self.err("E0011", f"word list {item.file.value!r} has an entry of {len(longest):,} characters, more "
                         f"than the limit of {MAX_LITERAL_CHARS:,}", item.file.span, width=width)
                return None
            words += entries
        words = [w for w in words if w.strip()]
        if not words:
            self.err("E0304", f"word list '{item.name.value}' is empty", item.name.span, width=len(item.name.value))
            return None
        rx = re.compile(words_regex(words), re.IGNORECASE)
        shown = ", ".join(repr(w) for w in words[:5]) + (", ..." if len(words) > 5 else "")
        return self._safe(CompiledPattern(item.name.value, rx, f"[{shown}]", None, item.span, kind="words",
                                          normalize=self._pipeline(item.normalize, self.normalize)))

    def _source_path(self, display: str) -> Path | None:
        return self.ctx.real_paths.get(display)

    def _compile_concepts(self) -> dict[str, ConceptSpec]:
        out: dict[str, ConceptSpec] = {}
        for name, item in self.blocks.items():
            if not isinstance(item, n.ConceptDef):
                continue
            w = len(name)
            trained = bool(item.train)
            if not item.examples and not trained:
                self.err("E0305", f"concept '{name}' has no examples", item.name.span, width=w,
                         help='add `examples { "a request this concept must catch" ... }` or `train "rows.jsonl"`')
            if item.threshold is None:
                self.err("E0306", f"concept '{name}' has no threshold", item.name.span, width=w,
                         help="add e.g. `threshold 0.8` (the classifier's probability)" if trained else
                         "add e.g. `threshold 0.6` (cosine similarity, calibrated for the policy's model)")
            elif not 0.0 < item.threshold <= 1.0:
                self.err("E0307", f"threshold {item.threshold} of concept '{name}' is outside (0, 1]", item.name.span,
                         width=w)
            if item.margin is not None and not 0.0 <= item.margin < 1.0:
                self.err("E0307", f"margin {item.margin} of concept '{name}' is outside [0, 1)", item.name.span, width=w)
            if trained and item.margin is not None:
                self.err("E0312", f"concept '{name}' is trained: 'margin' has no meaning for it", item.name.span,
                         width=w, help="a trained concept fires on the classifier's probability alone; remove "
                                       "`margin` (counter-examples are training rows labelled safe)")
            for t in (*item.examples, *item.counter):
                if not t.value.strip():
                    self.err("E0308", f"empty example in concept '{name}'", t.span, width=2)
            rows: list[TrainingRow] = []
            for src in item.train:
                got = self._training_rows(name, src)
                if got is not None:
                    rows += got
            if trained:
                labels = {r.unsafe for r in rows} | ({True} if item.examples else set()) \
                    | ({False} if item.counter else set())
                if rows and labels != {True, False}:
                    missing = "safe" if True in labels else "unsafe"
                    self.err("E0311", f"concept '{name}' has no {missing} training rows", item.name.span, width=w,
                             help="a classifier needs both labels: add rows labelled "
                                  f"{missing!r}" + (" or counter-examples" if missing == "safe" else " or examples"))
            if (item.examples or trained) and item.threshold is not None:
                out[name] = ConceptSpec(name, tuple(t.value for t in item.examples), tuple(t.value for t in item.counter),
                                        float(item.threshold), float(item.margin or 0.0), item.span,
                                        tuple(t.span for t in item.examples), tuple(t.span for t in item.counter),
                                        normalize=self._pipeline(item.normalize, self.normalize),
                                        training=tuple(rows), train_files=tuple(t.path.value for t in item.train))
        return out

    def _training_rows(self, concept: str, src: n.TrainSource) -> list[TrainingRow] | None:
        """The rows of one `train` clause (read once per file per compile), filtered by its categories and by the
        compile's training filter; None after an error (reported)."""
        value = src.path.value
        src_file = self._source_path(src.path.span.file)
        base = src_file.parent if src_file is not None else self.ctx.root
        target = Path(os.path.realpath(base / value))
        width = len(value) + 2
        if not _inside(target, self.ctx.root):
            self.err("E0107", f"training file {value!r} is outside the policy root", src.path.span, width=width,
                     help="training files resolve like imports: relative to the policy file, inside its folder")
            return None
        if target not in self._training_files:
            self._training_files[target] = self._read_training_file(target, value, src)
        rows = self._training_files[target]
        if rows is None:
            return None
        cats = tuple(c.value for c in src.categories) if src.categories is not None else None
        chosen = select(rows, cats)
        if not chosen:
            present = sorted({r.category for r in rows if r.category is not None})
            self.err("E0311", f"training file {value!r} has no rows" + (f" in categories {list(cats)}" if cats else ""),
                     src.span, help=f"categories in the file: {', '.join(present[:12])}" if present else None)
            return None
        if self.training_filter is not None:
            chosen = [r for r in chosen if self.training_filter(r)]
        return chosen

    def _read_training_file(self, target: Path, value: str, src: n.TrainSource) -> list[TrainingRow] | None:
        width = len(value) + 2
        if not target.is_file():
            self.err("E0108", f"training file not found: {value!r}", src.path.span, width=width)
            return None
        try:
            if target.stat().st_size > MAX_FILE_BYTES:
                self.err("E0108", f"training file {value!r} is larger than {MAX_FILE_BYTES // 2**20} MiB",
                         src.path.span, width=width)
                return None
            data = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            self.err("E0108", f"cannot read training file {value!r}: {e}", src.path.span, width=width)
            return None
        display = os.path.normpath(os.path.join(os.path.dirname(src.path.span.file), value))
        self.ctx.extra_digest.append(value.encode() + b"\0" + data.encode())
        rows, errors = parse_rows(data, value)
        if errors:
            source = Source(display, data)
            self.ctx.sources.setdefault(display, source)
            for e in errors[:20]:
                self.err("E0310", f"training row: {e.message}", Span(display, e.line, e.column),
                         help='rows are JSON objects: {"text": "...", "label": "safe" | "unsafe", "id": "..."}')
            if len(errors) > 20:
                self.err("E0310", f"{len(errors) - 20} more malformed training rows in {value!r}", src.path.span,
                         width=width)
            return None
        return rows

    def _kind(self, name: str) -> str | None:
        item = self.blocks.get(name)
        return {n.PatternDef: "pattern", n.WordsDef: "word list", n.ConceptDef: "concept"}.get(type(item)) \
            if item else None

    def _ref(self, name: n.Name, want: str, how: str) -> None:
        kind = self._kind(name.value)
        if kind == want:
            return
        w = len(name.value)
        if kind is None:
            cands = [k for k in self.blocks if self._kind(k) == want]
            self.err("E0401", f"unknown {want} '{name.value}'", name.span, width=w, help=did_you_mean(name.value, cands))
        else:
            verb = {"pattern": "matches", "word list": "contains", "concept": "similar"}[kind]
            self.err("E0402", f"'{name.value}' is a {kind}, not a {want}; `{how}` needs a {want}", name.span, width=w,
                     help=f"write `{verb} {name.value}`")

    def _context_path(self, path: str, span: Span) -> str | None:
        if path in self.context:
            return self.context[path]
        if self.declared_context:
            self.err("E0403", f"context attribute '{path}' is not declared", span,
                     help=did_you_mean(path, self.context) or "declare it: `context { " + path + ": string }`")
        return None

    def _check_literal(self, path: str, typ: str | None, value: object, span: Span) -> None:
        if typ is None:
            return
        ok = isinstance(value, CONTEXT_TYPES[typ]) and not (typ == "number" and isinstance(value, bool))
        if not ok:
            self.err("E0404", f"context.{path} is a {typ} but is compared with {_fmt(value)}", span)

    def _check_expr(self, e: n.Expr) -> None:
        if isinstance(e, n.Matches):
            self._ref(e.pattern, "pattern", "matches")
        elif isinstance(e, n.Contains):
            self._ref(e.words, "word list", "contains")
        elif isinstance(e, n.Similar):
            self._ref(e.concept, "concept", "similar")
        elif isinstance(e, n.Compare):
            typ = self._context_path(e.path, e.span)
            self._check_literal(e.path, typ, e.value, e.span)
            if typ in ("string", "bool") and e.op not in ("==", "!="):
                self.err("E0405", f"operator '{e.op}' needs a number but context.{e.path} is a {typ}", e.span)
        elif isinstance(e, n.InList):
            typ = self._context_path(e.path, e.span)
            for v in e.values:
                self._check_literal(e.path, typ, v, e.span)
        elif isinstance(e, n.Exists):
            self._context_path(e.path, e.span)
        elif isinstance(e, n.Not):
            self._check_expr(e.operand)
        elif isinstance(e, (n.And, n.Or)):
            for op in e.operands:
                self._check_expr(op)

    def _compile_rules(self) -> list[CompiledRule]:
        out: list[CompiledRule] = []
        for order, (name, r) in enumerate(self.rules.items()):
            w = len(name)
            if r.when is None:
                self.err("E0406", f"rule '{name}' has no 'when' condition", r.name.span, width=w,
                         help="add e.g. `when input similar some_concept`")
            else:
                self._check_expr(r.when)
            if r.action is None:
                self.err("E0407", f"rule '{name}' has no action", r.name.span, width=w,
                         help='add one of: block "message" | redact NAME | flag "message" | allow overrides RULE')
            else:
                a = r.action
                if a.kind == "redact":
                    for t in a.targets:
                        if self._kind(t.value) not in ("pattern", "word list"):
                            self.err("E0408", f"redact target '{t.value}' is not a pattern or word list", t.span,
                                     width=len(t.value),
                                     help=did_you_mean(t.value, [k for k in self.blocks if self._kind(k) != "concept"]))
                if a.kind == "allow":
                    for t in a.targets:
                        if t.value not in self.rules:
                            self.err("E0409", f"'{t.value}' in overrides is not a rule", t.span, width=len(t.value),
                                     help=did_you_mean(t.value, self.rules))
                        elif t.value == name:
                            self.err("E0410", f"rule '{name}' overrides itself", t.span, width=len(t.value))
            if r.when is not None and r.action is not None:
                out.append(CompiledRule(name, r.when, r.action, r.severity, r.mode,
                                        r.category.value if r.category else None, r.span, order))
        return out

    def _check_tests(self) -> list[n.TestDef]:
        out = []
        for f in self.files:
            for t in f.of(n.TestDef):
                for b in t.by:
                    if b.value not in self.rules:
                        self.err("E0501", f"test expects rule '{b.value}', which does not exist", b.span,
                                 width=len(b.value), help=did_you_mean(b.value, self.rules))
                for path, value in t.context:
                    typ = self._context_path(path, t.span)
                    self._check_literal(path, typ, value, t.span)
                out.append(t)
        return out
