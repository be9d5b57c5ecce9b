"""Reporters: each consumes the runner's event stream on its own (text to a terminal, JSON, JUnit XML).

A reporter has `handle(event)` and `close() -> None`; several can listen to one run (`--format text
--junit-xml report.xml`). The JSON document follows `schemas/test-report.schema.json` (the TestReport model below).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from typing import IO, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

from ..models import Decision

from .coverage import EXEMPLARS, STRUCTURAL, CoverageReport
from .runner import CaseResult, RunFinished, TargetFinished, TargetStarted

# ---- the JSON report model (published as schemas/test-report.schema.json) -------------------------------------


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TestCaseReport(_M):
    __test__ = False  # not a pytest class

    name: str
    file: str
    line: int
    column: int
    origin: Literal["policy", "cases"]
    target: str
    status: Literal["passed", "failed", "todo", "fixed", "error"]
    passed: bool
    expected: Literal["allow", "block", "redact", "flag"]
    expected_rules: list[str]
    missing_rules: list[str]
    todo: Optional[str] = None
    action: Optional[Literal["allow", "block", "redact", "flag"]] = None
    rule: Optional[str] = None
    error: Optional[str] = None
    duration_ms: float
    input: Optional[str] = None
    output: Optional[str] = None
    decision: Optional[Decision] = None  # the full decision, as in schemas/decision.schema.json


class CoverageItemReport(_M):
    kind: Literal["rule", "pattern", "words", "concept", "example", "counter"]
    name: str
    file: str
    line: int
    column: int
    text: Optional[str] = None
    covered: bool
    covered_by: list[str]


class CoverageKindReport(_M):
    covered: int
    total: int
    percent: float


class CoverageSummaryReport(_M):
    percent: float  # rules, patterns, word lists, concepts
    covered: int
    total: int
    exemplars: CoverageKindReport  # concept examples and counter-examples
    kinds: dict[str, CoverageKindReport]
    files: dict[str, CoverageKindReport]
    items: list[CoverageItemReport]
    min_coverage: Optional[float] = None
    min_example_coverage: Optional[float] = None
    ok: bool


class TestReport(_M):
    """`policyengine test --format json`."""

    __test__ = False

    schema_version: Literal[1] = 1
    passed: int
    failed: int
    todo: int
    fixed: int
    errors: int
    total: int
    ok: bool
    duration_ms: float
    tests: list[TestCaseReport]
    coverage: Optional[CoverageSummaryReport] = None


def case_report(r: CaseResult) -> TestCaseReport:
    d = r.decision
    return TestCaseReport(
        name=r.case.name, file=r.case.file, line=r.case.line, column=r.case.column, origin=r.case.origin,
        target=r.target, status=r.status, passed=r.passed, expected=r.case.expect, expected_rules=list(r.case.by),
        missing_rules=list(r.missing_rules), todo=r.case.todo, action=d.action if d else None,
        rule=d.rule if d else None, error=r.error, duration_ms=round(r.duration * 1000, 3), input=r.case.input,
        output=r.case.output, decision=d)


def coverage_report(c: CoverageReport, min_coverage: float | None,
                    min_example_coverage: float | None = None) -> CoverageSummaryReport:
    def kc(k: Any) -> CoverageKindReport:
        return CoverageKindReport(covered=k.covered, total=k.total, percent=round(k.percent, 2))

    return CoverageSummaryReport(
        percent=round(c.percent, 2), covered=c.covered, total=c.total, exemplars=kc(c.exemplars),
        kinds={k: kc(v) for k, v in c.by_kind().items()}, files={f: kc(v) for f, v in c.by_file().items()},
        items=[CoverageItemReport(kind=i.kind, name=i.name, file=i.file, line=i.line, column=i.column, text=i.text,
                                  covered=i.covered, covered_by=list(i.hits)) for i in c.items],
        min_coverage=min_coverage, min_example_coverage=min_example_coverage,
        ok=coverage_ok(c, min_coverage, min_example_coverage))


def coverage_ok(c: CoverageReport, min_coverage: float | None, min_example_coverage: float | None = None) -> bool:
    return (min_coverage is None or c.percent + 1e-9 >= min_coverage) and \
        (min_example_coverage is None or c.exemplars.percent + 1e-9 >= min_example_coverage)


# ---- reporters ---------------------------------------------------------------------------------------------------


class Reporter:
    def handle(self, event: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


def _indent(text: str, pad: str = "    ") -> str:
    return "\n".join(pad + ln if ln else ln for ln in text.splitlines())


class TextReporter(Reporter):
    """Human output: FAIL lines with the full explanation, TODO/FIXED notes, coverage, `N passed, N failed`."""

    def __init__(self, out: IO[str] | None = None, *, verbose: bool = False, min_coverage: float | None = None,
                 min_example_coverage: float | None = None, show_uncovered: int = 30):
        self.out = out or sys.stdout
        self.verbose = verbose
        self.min_coverage = min_coverage
        self.min_example_coverage = min_example_coverage
        self.show_uncovered = show_uncovered
        self.coverage: CoverageReport | None = None

    def _p(self, s: str = "") -> None:
        print(s, file=self.out, flush=True)

    def handle(self, event: Any) -> None:
        if isinstance(event, TargetStarted) and self.verbose:
            self._p(f"== {event.target} (policy {event.policy_name}): {event.cases} tests")
        elif isinstance(event, CaseResult):
            self._result(event)
        elif isinstance(event, CoverageReport):
            self.coverage = event
            self._coverage(event)
        elif isinstance(event, RunFinished):
            tail = "".join(f", {n} {w}" for n, w in ((event.errors, "errors"), (event.todo, "todo"),
                                                     (event.fixed, "fixed")) if n)
            self._p(f"{event.passed + event.fixed} passed, {event.failed + event.errors} failed{tail}")

    def _result(self, r: CaseResult) -> None:
        c = r.case
        head = f"{c.location} {c.name!r}: {r.detail}"
        if r.status == "failed" or r.status == "error":
            self._p(f"FAIL {head}")
            shown = [f"{k}: {v!r}" for k, v in (("input", c.input), ("output", c.output)) if v is not None]
            if c.context:
                shown.append(f"context: {json.dumps(dict(c.context), ensure_ascii=False)}")
            self._p(_indent("\n".join(shown)))
            if r.decision is not None:
                self._p(_indent(r.decision.explain()))
            self._p()
        elif r.status == "todo":
            self._p(f"TODO {head}" + (f" [known gap: {c.todo}]" if c.todo else " [known gap]"))
        elif r.status == "fixed":
            self._p(f"FIXED {c.location} {c.name!r}: marked todo but now passes; remove `todo`")
        elif self.verbose:
            self._p(f"PASS {head}")

    def _coverage(self, c: CoverageReport) -> None:
        names = {"rule": "rules", "pattern": "patterns", "words": "word lists", "concept": "concepts",
                 "example": "examples", "counter": "counter-examples"}
        kinds = c.by_kind()
        ex = c.exemplars
        self._p(f"coverage: {c.percent:.1f}% ({c.covered}/{c.total} rules, patterns, word lists, concepts)")
        for k in STRUCTURAL:
            if kinds[k].total:
                self._p(f"  {names[k]:<17} {kinds[k].covered:>4}/{kinds[k].total:<4} {kinds[k].percent:5.1f}%")
        if ex.total:
            self._p(f"example coverage: {ex.percent:.1f}% ({ex.covered}/{ex.total} examples and counter-examples)")
        for k in EXEMPLARS:
            if kinds[k].total:
                self._p(f"  {names[k]:<17} {kinds[k].covered:>4}/{kinds[k].total:<4} {kinds[k].percent:5.1f}%")
        missing = [i for i in c.uncovered() if i.kind in STRUCTURAL]
        if missing:
            self._p("  not covered:")
            for i in missing:
                self._p(f"    {i.file}:{i.line}:{i.column}: {i.label()}")
        missing_ex = [i for i in c.uncovered() if i.kind in EXEMPLARS]
        if missing_ex and self.verbose:
            self._p("  examples not covered:")
            for i in missing_ex[: self.show_uncovered]:
                self._p(f"    {i.file}:{i.line}:{i.column}: {i.label()}")
            if len(missing_ex) > self.show_uncovered:
                self._p(f"    ... and {len(missing_ex) - self.show_uncovered} more (--format json lists all)")
        elif missing_ex:
            self._p(f"  {len(missing_ex)} examples/counter-examples not covered (-v lists them)")
        if self.min_coverage is not None and not coverage_ok(c, self.min_coverage):
            self._p(f"coverage {c.percent:.1f}% is below --min-coverage {self.min_coverage:g}")
        if self.min_example_coverage is not None and not coverage_ok(c, None, self.min_example_coverage):
            self._p(f"example coverage {ex.percent:.1f}% is below --min-example-coverage "
                    f"{self.min_example_coverage:g}")


class JsonReporter(Reporter):
    """One JSON document (TestReport) when the run finishes."""

    def __init__(self, out: IO[str] | None = None, *, min_coverage: float | None = None,
                 min_example_coverage: float | None = None, indent: int | None = 2):
        self.out = out or sys.stdout
        self.min_coverage = min_coverage
        self.min_example_coverage = min_example_coverage
        self.indent = indent
        self.tests: list[TestCaseReport] = []
        self.coverage: CoverageSummaryReport | None = None
        self.report: TestReport | None = None

    def handle(self, event: Any) -> None:
        if isinstance(event, CaseResult):
            self.tests.append(case_report(event))
        elif isinstance(event, CoverageReport):
            self.coverage = coverage_report(event, self.min_coverage, self.min_example_coverage)
        elif isinstance(event, RunFinished):
            self.report = TestReport(
                passed=event.passed + event.fixed, failed=event.failed + event.errors, todo=event.todo,
                fixed=event.fixed, errors=event.errors, total=event.total,
                ok=event.ok and (self.coverage is None or self.coverage.ok),
                duration_ms=round(event.duration * 1000, 3), tests=self.tests, coverage=self.coverage)
            data = self.report.model_dump(mode="json")
            text = json.dumps(data, ensure_ascii=False, indent=self.indent)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates in a test's text
                text = json.dumps(data, ensure_ascii=True, indent=self.indent)
            print(text, file=self.out, flush=True)


class JUnitReporter(Reporter):
    """JUnit XML (the Jenkins/Surefire dialect read by GitHub Actions, GitLab, Jenkins, Azure, CircleCI): one
    <testsuite> per target policy, one <testcase> per test; failures carry the full explanation; todo tests are
    <skipped>; errors are <error>. Validated against schemas/junit.xsd in the test suite."""

    def __init__(self, out: IO[str] | None = None):
        self.out = out or sys.stdout
        self._suites: list[tuple[TargetStarted, list[CaseResult], float]] = []
        self._current: list[CaseResult] = []
        self._started: TargetStarted | None = None
        self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.coverage: CoverageReport | None = None

    def handle(self, event: Any) -> None:
        if isinstance(event, TargetStarted):
            self._started, self._current = event, []
        elif isinstance(event, CaseResult):
            self._current.append(event)
        elif isinstance(event, TargetFinished) and self._started is not None:
            self._suites.append((self._started, self._current, event.duration))
        elif isinstance(event, CoverageReport):
            self.coverage = event
        elif isinstance(event, RunFinished):
            self.out.write(self.render(event))
            self.out.flush()

    def render(self, fin: RunFinished) -> str:
        import xml.etree.ElementTree as ET

        root = ET.Element("testsuites", name="policyengine", tests=str(fin.total),
                          failures=str(fin.failed), errors=str(fin.errors), skipped=str(fin.todo),
                          time=f"{fin.duration:.3f}")
        for started, results, duration in self._suites:
            suite = ET.SubElement(root, "testsuite", name=started.target, tests=str(len(results)),
                                  failures=str(sum(r.status == "failed" for r in results)),
                                  errors=str(sum(r.status == "error" for r in results)),
                                  skipped=str(sum(r.status == "todo" for r in results)),
                                  time=f"{duration:.3f}", timestamp=self._stamp, hostname=_xml(platform.node()))
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="policy", value=_xml(started.policy_name))
            if self.coverage is not None:
                ET.SubElement(props, "property", name="coverage", value=f"{self.coverage.percent:.1f}")
            for r in results:
                case = ET.SubElement(suite, "testcase", name=_xml(r.case.name), classname=_classname(r.case.file),
                                     file=_xml(r.case.file), line=str(r.case.line), time=f"{r.duration:.3f}")
                body = _xml(_failure_text(r))
                if r.status == "failed":
                    ET.SubElement(case, "failure", message=_xml(r.detail), type="PolicyTestFailure").text = body
                elif r.status == "error":
                    ET.SubElement(case, "error", message=_xml(r.detail), type="PolicyTestError").text = body
                elif r.status == "todo":
                    ET.SubElement(case, "skipped", message=_xml("todo: " + (r.case.todo or "known gap") + "; "
                                                                 + r.detail))
                elif r.status == "fixed":
                    ET.SubElement(case, "system-out").text = "marked todo but now passes; remove `todo`"
        if self.coverage is not None:
            cov = self.coverage
            root.append(ET.Comment(f" coverage {cov.percent:.1f}% ({cov.covered}/{cov.total}) "))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _classname(file: str) -> str:
    name = file.replace("\\", "/")
    for suffix in (".yaml", ".policy"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.replace("/", ".").lstrip(".")


def _xml(s: str) -> str:
    """XML 1.0 cannot carry most control characters or lone surrogates: show them as escapes."""
    return "".join(ch if ch in "\t\n\r" or (" " <= ch <= "\ud7ff") or ("\ue000" <= ch <= "\ufffd")
                   or ch > "\uffff" else f"\\u{ord(ch):04x}" for ch in s)


def _failure_text(r: CaseResult) -> str:
    c = r.case
    lines = [f"{c.location} {c.name!r}: {r.detail}"]
    lines += [f"{k}: {v!r}" for k, v in (("input", c.input), ("output", c.output)) if v is not None]
    if r.decision is not None:
        lines.append(r.decision.explain())
    return "\n".join(lines)


def make_reporter(fmt: str, out: IO[str] | None = None, *, verbose: bool = False,
                  min_coverage: float | None = None, min_example_coverage: float | None = None) -> Reporter:
    if fmt == "json":
        return JsonReporter(out, min_coverage=min_coverage, min_example_coverage=min_example_coverage)
    if fmt == "junit":
        return JUnitReporter(out)
    return TextReporter(out, verbose=verbose, min_coverage=min_coverage, min_example_coverage=min_example_coverage)
