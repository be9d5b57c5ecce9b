"""Run the lint rules over policies: load each entry policy with its imports, run every enabled rule, apply
configured levels and inline suppressions, and collect findings with notices (e.g. semantic rules skipped)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import nodes as n
from ..diagnostics import PolicyError
from ..source import Source, Span
from ..syntax import parse_with_comments
from .config import LintConfig
from .rule import Finding, LintContext, LintFile, RuleInfo, load_module_rules
from .suppress import Suppression, suppressions


@dataclass
class LintReport:
    findings: list[Finding]
    rules: list[RuleInfo]
    files: list[str]
    suppressed: int = 0
    notices: list[str] = field(default_factory=list)

    def count(self, level: str) -> int:
        return sum(f.level == level for f in self.findings)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("error") else 0


def expand_paths(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(sorted(str(f) for f in Path(p).rglob("*.policy") if f.is_file()))
        else:
            out.append(p)
    return out


class _Loader:
    """Reads and parses each file once (by real path)."""

    def __init__(self) -> None:
        self.cache: dict[str, LintFile | str] = {}

    def load(self, real: str, display: str) -> LintFile | str:
        if real not in self.cache:
            try:
                with open(real, encoding="utf-8") as fh:
                    text = fh.read()
            except FileNotFoundError:
                self.cache[real] = "file not found"
            except (OSError, UnicodeDecodeError) as e:
                self.cache[real] = f"cannot read: {e}"
            else:
                src = Source(display, text)
                self.cache[real] = LintFile(display, src, parse_with_comments(src))
        return self.cache[real]


def _imports(f: LintFile) -> list[n.Import]:
    return f.nodes.of(n.Import) if f.nodes is not None else []


def _closure(loader: _Loader, entry_real: str, entry_display: str) -> list[tuple[str, LintFile]]:
    root = os.path.dirname(entry_real)
    out: list[tuple[str, LintFile]] = []
    seen: set[str] = set()
    stack = [(entry_real, entry_display)]
    while stack:
        real, display = stack.pop(0)
        if real in seen:
            continue
        seen.add(real)
        f = loader.load(real, display)
        if isinstance(f, str):
            continue
        out.append((real, f))
        for imp in _imports(f):
            target = os.path.realpath(os.path.join(os.path.dirname(real), imp.path.value))
            if not target.startswith(root + os.sep):
                continue  # the compiler reports escapes
            shown = os.path.normpath(os.path.join(os.path.dirname(entry_display), os.path.relpath(target, root)))
            stack.append((target, shown))
    return out


def lint_paths(paths: list[str], config: LintConfig | None = None, *, embedder: Any = None,
               only: set[str] | None = None) -> LintReport:
    """Lint every .policy under `paths`. `embedder` overrides the model (tests); `only` restricts the rules."""
    from ..compiler import compile_policy

    config = config or LintConfig()
    rules = [(info, check) for info, check in load_module_rules() if only is None or info.id in only]
    infos = [info for info, _ in rules]
    level = {i.id: config.levels.get(i.id, i.level) for i in infos}
    covered = {code for i in infos if level[i.id] != "ignore" for code in i.covers}
    report = LintReport([], infos, [])
    loader = _Loader()

    files = expand_paths(paths)
    real_of = {p: os.path.realpath(p) for p in files}
    parsed: dict[str, LintFile] = {}
    for p in files:
        f = loader.load(real_of[p], p)
        if isinstance(f, str):
            report.findings.append(Finding("compile-error", "error", f"{f}", Span(p, 0, 0), category="correctness"))
        else:
            parsed[p] = f
    report.files = list(parsed)
    imported: set[str] = set()
    for p, f in parsed.items():
        for imp in _imports(f):
            imported.add(os.path.realpath(os.path.join(os.path.dirname(real_of[p]), imp.path.value)))
    entries = [p for p in parsed if real_of[p] not in imported]
    covered_files: set[str] = set()

    semantic_state: dict[str, Any] = {}
    findings: dict[tuple, Finding] = {}
    all_files: dict[str, LintFile] = {}

    def add(f: Finding) -> None:
        findings.setdefault(f.key, f)

    pending = list(entries)
    while pending or any(real_of[p] not in covered_files for p in parsed):
        if not pending:  # only files inside an import cycle are left: lint one of them as an entry
            pending = [next(p for p in parsed if real_of[p] not in covered_files)]
        entry = pending.pop(0)
        reals_and_files = _closure(loader, real_of[entry], entry)
        covered_files.update(r for r, _ in reals_and_files)
        covered_files.add(real_of[entry])
        closure = [f for _, f in reals_and_files]
        for f in closure:
            all_files.setdefault(f.path, f)
        policy, diags = None, ()
        try:
            policy = compile_policy(entry)
        except PolicyError as e:
            diags = e.diagnostics
        except Exception as e:  # noqa: BLE001 - an unreadable file etc.: reported, never a traceback
            report.findings.append(Finding("compile-error", "error", str(e), Span(entry, 0, 0), category="correctness"))
        ctx = LintContext(closure[0], closure, policy, tuple(diags)) if closure else None
        if ctx is None:
            continue
        ctx.extra_tested_rules = _case_file_rules(ctx)
        ctx.semantic = _semantic_factory(ctx, embedder, semantic_state)
        for d in diags:
            if d.severity == "error" and d.code not in covered:
                add(Finding("compile-error", "error", f"{d.message} [{d.code}]", d.span, d.help, d.line_text,
                            d.width, "correctness"))
        for info, check in rules:
            if level[info.id] == "ignore" or info.id in ("compile-error", "bad-suppression"):
                continue
            if info.needs_model:
                if not config.semantic:
                    semantic_state.setdefault("notice", "semantic rules skipped: disabled (--no-semantic or "
                                              "[tool.policyengine.lint] semantic = false)")
                    continue
                if semantic_state.get("failed"):
                    continue
            try:
                for f in check(ctx):
                    add(f)
            except _ModelUnavailable:
                continue
    if "notice" in semantic_state:
        skipped = [i.id for i in infos if i.needs_model and level[i.id] != "ignore"]
        if skipped:
            report.notices.append(f"{semantic_state['notice']} ({', '.join(skipped)})")

    # levels from the configuration, then inline suppressions
    result = [dataclasses.replace(f, level=level.get(f.rule, f.level)) for f in findings.values()]
    result = [f for f in result if f.level != "ignore"]
    sups: list[Suppression] = [s for lf in all_files.values() for s in suppressions(lf)]
    by_line: dict[tuple[str, int], list[Suppression]] = {}
    for s in sups:
        by_line.setdefault((s.file, s.line), []).append(s)
    kept = []
    for f in result:
        hit = next((s for s in by_line.get((f.span.file, f.span.line), []) if f.rule in s.ids and s.reason), None)
        if hit is not None:
            hit.used.add(f.rule)
            report.suppressed += 1
        else:
            kept.append(f)
    if level.get("bad-suppression", "ignore") != "ignore":
        from .rules.bad_suppression import check_suppressions

        kept.extend(check_suppressions(sups, all_files, {i.id for i in load_module_rules_infos()}, level))
    report.findings.extend(kept)
    report.findings.sort(key=lambda f: (f.span.file, f.span.line, f.span.column, f.rule))
    return report


def load_module_rules_infos() -> list[RuleInfo]:
    return [info for info, _ in load_module_rules()]


class _ModelUnavailable(Exception):
    pass


def _semantic_factory(ctx: LintContext, embedder: Any, state: dict[str, Any]):  # type: ignore[no-untyped-def]
    """A function that returns the SemanticIndex of `ctx`, loading the model on first use (once per run)."""
    cache: dict[str, Any] = {}

    def get():  # type: ignore[no-untyped-def]
        if "index" in cache:
            return cache["index"]
        from ..compiler import DEFAULT_MODEL
        from .semantic import SemanticIndex, benign_corpus

        model = next((h.model.value for h in (ctx.entry.nodes.of(n.Header) if ctx.entry.nodes else [])
                      if h.model is not None), DEFAULT_MODEL)
        emb = embedder
        if emb is None:
            if model in state.get("broken_models", set()):
                raise _ModelUnavailable()
            try:
                from ..engine import load_backend

                emb = load_backend(model, None, 1)  # the default backend: ONNX Runtime fp32 when installed
            except Exception as e:  # noqa: BLE001 - ModelLoadError, missing torch, ...: skip with a notice
                state.setdefault("broken_models", set()).add(model)
                state.setdefault("notice", f"semantic rules skipped: model {model!r} is not available ({e})")
                raise _ModelUnavailable() from None
        concepts = [c for _, c in ctx.items(n.ConceptDef)]
        cache["index"] = SemanticIndex(emb, concepts, benign_corpus())
        return cache["index"]

    return get


def _case_file_rules(ctx: LintContext) -> set[str]:
    """Rule ids named by `by:` in NAME.cases.yaml files next to the policy's files (the test runner's format)."""
    out: set[str] = set()
    for f in ctx.files:
        p = Path(f.path)
        case_file = p.with_name(p.name[: -len(".policy")] + ".cases.yaml") if p.name.endswith(".policy") else None
        if case_file is None or not case_file.is_file():
            continue
        try:
            import yaml

            data = yaml.safe_load(case_file.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - the test runner reports broken case files
            continue
        cases = data.get("cases", data) if isinstance(data, dict) else data
        for case in cases if isinstance(cases, list) else []:
            by = case.get("by") if isinstance(case, dict) else None
            if isinstance(by, str):
                out.add(by)
            elif isinstance(by, list):
                out.update(str(b) for b in by)
    return out
