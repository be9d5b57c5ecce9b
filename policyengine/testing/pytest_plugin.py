"""pytest plugin (entry point `pytest11: policyengine`): collect the `test` blocks of `.policy` files and the cases
of `NAME.cases.yaml` files as pytest items.

Collection is opt-in, so installing policyengine never changes another project's test run:
- `pytest --policyengine` collects every `.policy` / `.cases.yaml` file pytest visits, or
- the ini option `policyengine_paths` (e.g. `[tool.pytest.ini_options] policyengine_paths = ["policies"]`)
  collects those under the listed folders or files only (pytest must still visit them: list them in `testpaths`
  or on the command line).

A `.policy` file that another `.policy` in its folder imports is not collected on its own: its tests run under the
entry policy that imports it, as they do in production. Case files run against the entry policy that loads their
NAME.policy. A `todo:` case is an expected failure (xfail; XPASS when the gap is fixed). A failing test shows the
input and the decision's full explanation. One engine per entry policy per session.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .cases import CASE_SUFFIX, Case


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("policyengine", "policyengine policy tests")
    group.addoption("--policyengine", action="store_true", default=False,
                    help="collect the tests of .policy files and NAME.cases.yaml files that pytest visits")
    parser.addini("policyengine_paths", type="paths", default=[],
                  help="collect policy tests only under these folders/files (enables collection without the flag)")


def _enabled(config: Any, path: Path) -> bool:
    if config.getoption("policyengine", False):
        return True
    roots = config.getini("policyengine_paths") or []
    real = os.path.realpath(path)
    for root in roots:
        r = os.path.realpath(root)
        if real == r or real.startswith(r.rstrip(os.sep) + os.sep):
            return True
    return False


def pytest_collect_file(file_path: Path, parent: Any) -> Any:
    name = file_path.name
    if not (name.endswith(".policy") or name.endswith(CASE_SUFFIX)):
        return None
    if not _enabled(parent.config, file_path):
        return None
    if name.endswith(".policy"):
        if _entry_for(file_path) != Path(os.path.realpath(file_path)):
            return None  # imported by another policy: collected with it
        return PolicyFile.from_parent(parent, path=file_path)
    return CaseFile.from_parent(parent, path=file_path)


def _entry_for(policy: Path) -> Path:
    """The policy in the same folder that (transitively) imports `policy`, or `policy` itself."""
    from .runner import _imports

    me = Path(os.path.realpath(policy))
    siblings = sorted(Path(os.path.realpath(q)) for q in me.parent.glob("*.policy"))
    graph = {q: _imports(q) for q in siblings}
    importers = {q for q, deps in graph.items() if me in deps}
    seen: set[Path] = set()
    while importers:
        q = sorted(importers)[0]
        seen.add(q)
        me = q
        importers = {x for x, deps in graph.items() if q in deps and x not in seen}
    return me


class PolicyTestFailure(Exception):
    pass


class _PolicyCollectError(Exception):
    pass


_KEY: Any = pytest.StashKey[dict]()
_ENGINES: Any = pytest.StashKey[dict]()


class _Base(pytest.File):
    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, _PolicyCollectError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class PolicyFile(_Base):
    """The `test` blocks of an entry policy and of every file it imports."""

    def collect(self) -> Any:
        from .cases import policy_cases

        compiled = _compiled(self.config, self.path)
        for case in policy_cases(compiled.tests):
            yield CaseItem.from_parent(self, name=case.name, case=case, policy=self.path)


class CaseFile(_Base):
    """The cases of a NAME.cases.yaml file."""

    def collect(self) -> Any:
        from ..diagnostics import PolicyError
        from .cases import check_against, load_case_file

        try:
            cf = load_case_file(_shown(self.path))
        except PolicyError as e:
            raise _PolicyCollectError(e.render()) from None
        entry = _entry_for(cf.policy) if cf.policy.is_file() else cf.policy
        compiled = _compiled(self.config, entry)
        try:
            check_against(cf, compiled)
        except PolicyError as e:
            raise _PolicyCollectError(e.render()) from None
        seen: dict[str, int] = {}
        for case in cf.cases:
            seen[case.name] = seen.get(case.name, 0) + 1
            name = case.name if seen[case.name] == 1 else f"{case.name} [{seen[case.name]}]"
            yield CaseItem.from_parent(self, name=name, case=case, policy=entry)


def _shown(path: Path) -> str:
    """Paths in messages: relative to the working directory when below it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def _compiled(config: Any, policy: Path) -> Any:
    compiled, _, _ = _engine_parts(config, policy, build=False)
    return compiled


def _engine_parts(config: Any, policy: Path, build: bool) -> Any:
    from ..compiler import compile_policy
    from ..diagnostics import PolicyError

    cache = config.stash.setdefault(_KEY, {})
    key = os.path.realpath(policy)
    if key not in cache:
        try:
            cache[key] = (compile_policy(_shown(policy)), None)
        except PolicyError as e:
            cache[key] = (None, e.render())
    compiled, err = cache[key]
    if err is not None:
        raise _PolicyCollectError(err)
    engine = None
    if build:
        from ..engine import Engine

        engines = config.stash.setdefault(_ENGINES, {})
        if key not in engines:
            engines[key] = Engine(compiled)
        engine = engines[key]
    return compiled, engine, key


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, policy: Path, **kw: Any):
        super().__init__(**kw)
        self.case = case
        self.policy = policy
        if case.todo is not None:
            self.add_marker(pytest.mark.xfail(reason=f"todo: {case.todo or 'known gap'}", strict=False,
                                              raises=PolicyTestFailure))

    def runtest(self) -> None:
        from .runner import judge

        _, engine, _ = _engine_parts(self.config, self.policy, build=True)
        decision = engine.evaluate_many([self.case.item()])[0]
        result = judge(self.case, decision)
        self.result = result
        if result.status in ("failed", "todo"):
            c = self.case
            lines = [f"{c.location} {c.name!r}: {result.detail}"]
            lines += [f"    {k}: {v!r}" for k, v in (("input", c.input), ("output", c.output)) if v is not None]
            lines += ["    " + ln for ln in decision.explain().splitlines()]
            raise PolicyTestFailure("\n".join(lines))

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, (PolicyTestFailure, _PolicyCollectError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, self.case.line - 1, f"policy test {self.case.name!r}"
