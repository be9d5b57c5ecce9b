"""The policy test runner: find targets, evaluate their cases in batches, stream results to reporters.

    targets = discover(["policies/"])          # entry policies + the case files that belong to them
    for event in run(targets, coverage=True):  # TargetStarted, CaseResult ..., CoverageReport, RunFinished
        for r in reporters: r.handle(event)

Discovery: a directory yields every `.policy` under it that no other `.policy` there imports (an "entry"), with
the `test` blocks of every file it loads and the `NAME.cases.yaml` next to each of them. A `.policy` path yields
itself as an entry with the same case files. A `.cases.yaml` path yields only its cases, run against its policy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence, Union

from ..diagnostics import Diagnostic, PolicyError
from ..source import Span
from .cases import CASE_SUFFIX, Case, CaseFile, cases_file_for, check_against, load_case_file, policy_cases

Status = Literal["passed", "failed", "todo", "fixed", "error"]
BATCH = 32


@dataclass(frozen=True)
class CaseResult:
    case: Case
    status: Status
    decision: Any | None  # policyengine.models.Decision
    missing_rules: tuple[str, ...] = ()
    error: str | None = None
    duration: float = 0.0
    target: str = ""

    @property
    def passed(self) -> bool:
        """True unless the case is a real failure (todo and fixed cases never fail a run)."""
        return self.status in ("passed", "todo", "fixed")

    @property
    def got(self) -> str:
        if self.decision is None:
            return "error"
        d = self.decision
        return d.action + (f" by {d.rule}" if d.rule else "")

    @property
    def detail(self) -> str:
        if self.error:
            return f"error: {self.error}"
        out = f"expected {self.case.want}, got {self.got}"
        if self.missing_rules and self.decision is not None and self.decision.action == self.case.expect:
            out += f" (rule{'s' if len(self.missing_rules) > 1 else ''} {', '.join(self.missing_rules)} did not match)"
        return out


@dataclass
class Target:
    """One policy to compile and the cases to run against it."""

    policy: str
    include_policy_tests: bool = True
    case_files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class TargetStarted:
    target: str
    policy_name: str
    cases: int


@dataclass(frozen=True)
class TargetFinished:
    target: str
    duration: float


@dataclass(frozen=True)
class RunFinished:
    passed: int
    failed: int
    todo: int
    fixed: int
    errors: int
    duration: float

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.todo + self.fixed + self.errors

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0


Event = Union[TargetStarted, CaseResult, TargetFinished, "CoverageReport", RunFinished]  # noqa: F821


# ---- discovery --------------------------------------------------------------------------------------------------


def _imports(path: Path) -> set[Path]:
    """Real paths a .policy file imports (parse only; unreadable or broken files import nothing here)."""
    from .. import nodes as n
    from ..source import Source
    from ..syntax import parse_policy

    try:
        pf, _ = parse_policy(Source(str(path), path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return set()
    if pf is None:
        return set()
    return {Path(os.path.realpath(path.parent / imp.path.value)) for imp in pf.of(n.Import)}


def discover(paths: Sequence[str | os.PathLike[str]]) -> list[Target]:
    """Targets for `policyengine test PATH...`. Raises PolicyError for a path that does not exist or fits nothing."""
    targets: dict[str, Target] = {}
    diags: list[Diagnostic] = []

    def target(policy: str, include_tests: bool = True) -> Target:
        key = os.path.realpath(policy)
        if key not in targets:
            targets[key] = Target(policy, include_policy_tests=include_tests)
        t = targets[key]
        t.include_policy_tests = t.include_policy_tests or include_tests
        return t

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            policies = sorted(q for q in p.rglob("*.policy") if q.is_file())
            imported: set[Path] = set()
            for q in policies:
                imported |= _imports(q)
            entries = [q for q in policies if Path(os.path.realpath(q)) not in imported]
            for q in entries:
                target(str(q))
            # NAME.cases.yaml next to a loaded policy is picked up by load(); others attach to their policy
            for cf in sorted(p.rglob("*" + CASE_SUFFIX)):
                pol = _case_policy(cf)
                real = Path(os.path.realpath(pol))
                auto = os.path.realpath(cases_file_for(pol)) == os.path.realpath(cf)
                if auto and (real in imported or any(os.path.realpath(q) == str(real) for q in entries)):
                    continue
                t = target(str(pol), include_tests=auto and real not in imported)
                t.case_files.append(cf)
        elif p.is_file() and p.name.endswith(CASE_SUFFIX):
            pol = _case_policy(p)
            t = target(str(pol), include_tests=False)
            if p not in t.case_files:
                t.case_files.append(p)
        elif p.is_file():
            target(str(p))
        else:
            diags.append(Diagnostic("E0100", f"no such file or directory: {raw}", Span(str(raw), 0, 0)))
    if diags:
        raise PolicyError(diags)
    return list(targets.values())


def _case_policy(case_file: Path) -> Path:
    """The policy a case file belongs to: its `policy:` key, else NAME.policy next to it."""
    import yaml

    default = case_file.with_name(case_file.name[: -len(CASE_SUFFIX)] + ".policy")
    try:
        data = yaml.safe_load(case_file.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - load_case_file reports it properly later
        return default
    if isinstance(data, dict) and isinstance(data.get("policy"), str):
        return case_file.parent / data["policy"]
    return default


# ---- loading ----------------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    target: Target
    policy: Any  # CompiledPolicy
    engine: Any  # Engine, or None until build()
    cases: list[Case]
    bundle: str | None = None  # the target is a bundle from `policyengine compile`

    def build(self, engine_factory: Any = None) -> "Loaded":
        if self.engine is None:
            from ..engine import Engine

            if self.bundle is not None and engine_factory is None:
                from ..bundle import load_engine

                self.engine = load_engine(self.bundle)
            else:
                self.engine = engine_factory(self.policy) if engine_factory else Engine(self.policy)
        return self


def load(target: Target, *, engine_factory: Any = None, build: bool = True) -> Loaded:
    """Compile the target's policy, gather its cases and (with `build`) build its engine, which loads the model
    when the policy uses concepts. Raises PolicyError with all problems of the policy and its case files."""
    from ..bundle import is_bundle
    from ..compiler import compile_policy

    bundle = None
    if is_bundle(target.policy):  # a bundle: its own copy of the sources (and its tests), nothing embedded again
        from ..bundle import BundleError, fresh_policy, read_manifest

        try:
            policy = fresh_policy(target.policy, read_manifest(target.policy))
        except BundleError as e:
            raise PolicyError([Diagnostic("E0100", str(e), Span(str(target.policy), 0, 0))]) from None
        bundle = str(target.policy)
    else:
        policy = compile_policy(target.policy)
    cases: list[Case] = policy_cases(policy.tests) if target.include_policy_tests else []
    case_files = list(target.case_files)
    if target.include_policy_tests:  # NAME.cases.yaml next to every file the policy loads
        for f in policy.files:
            cand = cases_file_for(f.path)
            if cand.is_file() and all(os.path.realpath(cand) != os.path.realpath(x) for x in case_files):
                case_files.append(cand)
    diags: list[Diagnostic] = []
    for path in case_files:
        try:
            cf: CaseFile = load_case_file(path)
            check_against(cf, policy)
            cases += cf.cases
        except PolicyError as e:
            diags += e.diagnostics
    if diags:
        raise PolicyError(diags)
    loaded = Loaded(target, policy, None, cases, bundle)
    return loaded.build(engine_factory) if build else loaded


# ---- running ----------------------------------------------------------------------------------------------------


def judge(case: Case, decision: Any, duration: float = 0.0, target: str = "") -> CaseResult:
    """Pass when the action is the expected one and every expected rule matched (reasons, or shadow reasons)."""
    matched = {r.rule for r in decision.reasons} | {r.rule for r in decision.shadow}
    missing = tuple(r for r in case.by if r not in matched)
    ok = decision.action == case.expect and not missing
    if case.todo is not None:
        status: Status = "fixed" if ok else "todo"
    else:
        status = "passed" if ok else "failed"
    return CaseResult(case, status, decision, missing, None, duration, target)


def evaluate_cases(engine: Any, cases: Sequence[Case], *, trace: list | None = None,
                   target: str = "") -> Iterator[CaseResult]:
    """Evaluate cases in batches (all embedding work of a batch in one call), yielding one result per case.
    With `trace=[]`, appends (case, decision, concept trace) per case for coverage."""
    from ..evaluator import ContextError

    for lo in range(0, len(cases), BATCH):
        batch = list(cases[lo:lo + BATCH])
        t0 = time.perf_counter()
        step: list[dict] = []
        try:
            decisions = engine.evaluate_many([c.item() for c in batch], trace=step)
        except (ContextError, ValueError, TypeError):  # find the culprit: evaluate one by one
            decisions, step = [], []
            for c in batch:
                one: list[dict] = []
                try:
                    decisions.append(engine.evaluate_many([c.item()], trace=one)[0])
                    step += one
                except (ContextError, ValueError, TypeError) as e:
                    decisions.append(e)
                    step.append({})
        each = (time.perf_counter() - t0) / max(1, len(batch))
        for c, d, tr in zip(batch, decisions, step):
            if isinstance(d, Exception):
                yield CaseResult(c, "error", None, (), str(d), each, target)
                continue
            if trace is not None:
                trace.append((c, d, tr))
            yield judge(c, d, each, target)


def run(targets: Iterable[Target | Loaded], *, coverage: bool = False, engine_factory: Any = None) -> Iterator[Any]:
    """Run every target, streaming events: TargetStarted, CaseResult..., TargetFinished, [CoverageReport],
    RunFinished. Targets are loaded (compiled) first, so a broken policy or case file raises PolicyError before
    any result is reported."""
    from .coverage import Coverage

    t_start = time.perf_counter()
    loaded = [t if isinstance(t, Loaded) else load(t, build=False) for t in targets]
    counts = {"passed": 0, "failed": 0, "todo": 0, "fixed": 0, "error": 0}
    cov = Coverage() if coverage else None
    for lt in loaded:
        t0 = time.perf_counter()
        lt.build(engine_factory)
        yield TargetStarted(lt.target.policy, lt.engine.policy.name, len(lt.cases))
        trace: list | None = [] if cov is not None else None
        for r in evaluate_cases(lt.engine, lt.cases, trace=trace, target=lt.target.policy):
            counts[r.status] += 1
            yield r
        if cov is not None and trace is not None:
            cov.add(lt.engine.policy, trace)
        yield TargetFinished(lt.target.policy, time.perf_counter() - t0)
    if cov is not None:
        yield cov.report()
    yield RunFinished(counts["passed"], counts["failed"], counts["todo"], counts["fixed"], counts["error"],
                      time.perf_counter() - t_start)
