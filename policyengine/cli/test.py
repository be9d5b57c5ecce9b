"""`policyengine test [--coverage] [--min-coverage N] [--fragile DELTA] [--format text|json|junit] PATH...`

Runs the `test` blocks of policies and the case files next to them (`NAME.cases.yaml`), streaming results to one
reporter on stdout and, optionally, more reporters writing files (--junit-xml, --json-report).
With --fragile DELTA, the passing tests are run again with every concept threshold and margin moved by -DELTA and
+DELTA, and each one whose result changes is listed (policyengine/testing/fragile.py).
Exit 0 when every test passes (todo tests never fail a run), coverage reaches --min-coverage and no test is
fragile; 1 otherwise; 2 when a policy or case file has errors.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> dict:
    t = subparsers.add_parser(
        "test", help="run the tests of policies and their NAME.cases.yaml files, with coverage",
        description="Run the `test` blocks of policies and the case files next to them (NAME.cases.yaml). "
                    "PATH is a .policy file, a .cases.yaml file or a directory.")
    t.add_argument("policy", nargs="+", metavar="PATH", help="policy files, case files or directories")
    t.add_argument("--format", choices=["text", "json", "junit"], default="text", help="report on stdout")
    t.add_argument("--coverage", action="store_true",
                   help="report which rules, patterns, examples and counter-examples the tests exercised")
    t.add_argument("--min-coverage", type=float, metavar="N", default=None,
                   help="fail (exit 1) when total coverage is below N percent (implies --coverage)")
    t.add_argument("--min-example-coverage", type=float, metavar="N", default=None,
                   help="fail when coverage of concept examples and counter-examples is below N percent")
    t.add_argument("--junit-xml", metavar="FILE", help="also write a JUnit XML report to FILE")
    t.add_argument("--json-report", metavar="FILE", help="also write the JSON report to FILE")
    t.add_argument("--fragile", type=float, metavar="DELTA", default=None,
                   help="re-run the passing tests with every concept threshold and margin moved by -DELTA and "
                        "+DELTA; list (and fail on) each test whose result changes, e.g. 0.02")
    t.add_argument("-v", "--verbose", action="store_true", help="print passing tests too")
    return {"test": cmd_test}


def cmd_test(args: argparse.Namespace) -> int:
    from ..testing.coverage import CoverageReport
    from ..testing.reporters import coverage_ok, make_reporter
    from ..testing.runner import CaseResult, RunFinished, discover, load, run
    from .main import EXIT_FAIL, EXIT_OK, UsageError

    for opt, value in (("--min-coverage", args.min_coverage), ("--min-example-coverage", args.min_example_coverage)):
        if value is not None and not 0 <= value <= 100:
            raise UsageError(f"{opt} must be between 0 and 100")
    if args.fragile is not None and not 0 < args.fragile < 1:
        raise UsageError("--fragile must be between 0 and 1 (a similarity shift, e.g. 0.02)")
    coverage = args.coverage or args.min_coverage is not None or args.min_example_coverage is not None
    limits = {"min_coverage": args.min_coverage, "min_example_coverage": args.min_example_coverage}
    targets = discover(args.policy)  # a missing path: PolicyError E0100 (exit 2)
    if not targets:
        raise UsageError(f"no .policy or .cases.yaml files found in {' '.join(args.policy)}")
    loaded = _load_all(targets, load)  # every policy/case-file error before any result
    files = []
    reporters = [make_reporter(args.format, sys.stdout, verbose=args.verbose, **limits)]
    try:
        for fmt, path in (("junit", args.junit_xml), ("json", args.json_report)):
            if path:
                try:
                    f = open(path, "w", encoding="utf-8")  # noqa: SIM115
                except OSError as e:
                    raise UsageError(f"{path}: error: {e.strerror}") from None
                files.append(f)
                reporters.append(make_reporter(fmt, f, **limits))
        ok = True
        # with --fragile, every engine shares one caching embedder, so the shifted runs embed nothing again
        factory = None
        if args.fragile is not None:
            from ..measure.runner import build_engine as factory
        passing: dict[str, list] = {}
        for event in run(loaded, coverage=coverage, engine_factory=factory):
            for r in reporters:
                r.handle(event)
            if isinstance(event, CaseResult) and event.status == "passed":
                passing.setdefault(event.target, []).append(event.case)
            if isinstance(event, RunFinished):
                ok = ok and event.ok
            elif isinstance(event, CoverageReport):
                ok = ok and coverage_ok(event, args.min_coverage, args.min_example_coverage)
        if args.fragile is not None:
            out = sys.stdout if args.format == "text" else sys.stderr
            ok = _report_fragile(loaded, passing, args.fragile, factory, out) and ok
    finally:
        for f in files:
            f.close()
    return EXIT_OK if ok else EXIT_FAIL


def _report_fragile(loaded: list, passing: dict[str, list], delta: float, factory: Any, out: Any) -> bool:
    """List the fragile tests of every target; True when there are none."""
    from ..testing.fragile import describe, fragile_cases

    n_passing = n_fragile = 0
    for lt in loaded:
        cases = passing.get(lt.target.policy, [])
        n_passing += len(cases)
        for f in fragile_cases(lt.policy, cases, delta, factory):
            n_fragile += 1
            print(describe(f), file=out)
    print(f"{n_fragile} of {n_passing} passing tests fragile (result changes with every concept threshold and "
          f"margin moved by ±{delta:g})", file=out)
    return n_fragile == 0


def _load_all(targets: list, load: Any) -> list:
    from ..diagnostics import PolicyError

    loaded, diags = [], []
    for t in targets:
        try:
            loaded.append(load(t, build=False))
        except PolicyError as e:
            diags += e.diagnostics
    if diags:
        raise PolicyError(diags)
    return loaded
