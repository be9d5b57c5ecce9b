"""The pytest plugin: opt-in collection of .policy tests and case files, todo as xfail, failures with the
explanation, imported policies collected with their entry, and never the project's own malformed fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MAIN = '''policy main {}
import "part.policy"
test "main test" { input "darn" expect block by no_rude }
'''
PART = '''words rude = ["darn"]
rule no_rude { when input contains rude  block "civil" }
test "part test" { input "hello" expect allow }
'''
CASES = '''- {name: passes, input: oh darn, expect: block}
- {name: fails, input: hello, expect: block}
- {name: gap, input: d4rn, expect: block, todo: leetspeak}
- {name: fixed gap, input: darn, expect: block, todo: true}
'''


def pytest_run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("proj")
    pol = root / "pol"
    pol.mkdir()
    (pol / "main.policy").write_text(MAIN)
    (pol / "part.policy").write_text(PART)
    (pol / "part.cases.yaml").write_text(CASES)
    (root / "broken").mkdir()
    (root / "broken" / "bad.policy").write_text("rule r { when input matches nope block }\n")
    (root / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    return root


def test_nothing_collected_without_opt_in(project):
    r = pytest_run(project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout and ".policy" not in r.stdout


def test_flag_collects_everything_visited(project):
    r = pytest_run(project, "--policyengine", "--continue-on-collection-errors", "pol", "broken")
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert "PASSED pol/main.policy::main test" in out and "PASSED pol/main.policy::part test" in out
    assert "part.policy::" not in out  # imported: collected with main.policy
    assert "PASSED pol/part.cases.yaml::passes" in out
    assert "FAILED pol/part.cases.yaml::fails" in out
    assert "XFAIL pol/part.cases.yaml::gap" in out and "XPASS pol/part.cases.yaml::fixed gap" in out
    # the failure shows the message and the full explanation
    assert "pol/part.cases.yaml:2 'fails': expected block, got allow" in out
    assert "ALLOW (no rule matched; policy default)" in out
    # a broken policy is a collection error with the compiler's diagnostic, not a traceback
    assert "ERROR broken/bad.policy" in out and "error[E0401]: unknown pattern 'nope'" in out
    assert "Traceback" not in out


def test_ini_paths_scope_collection(project):
    (project / "pytest.ini").write_text("[pytest]\npolicyengine_paths = pol\n")
    try:
        r = pytest_run(project)
    finally:
        (project / "pytest.ini").unlink()
    assert "pol/main.policy::main test PASSED" in r.stdout.replace("PASSED pol/main.policy::main test",
                                                                   "pol/main.policy::main test PASSED")
    assert "broken" not in r.stdout and "1 failed" in r.stdout and "4 passed" in r.stdout


def test_project_suite_does_not_collect_malformed_golden_fixtures():
    r = pytest_run(ROOT, "--collect-only", "-q", "tests/golden/errors")
    assert r.returncode == 5 and "no tests collected" in r.stdout, r.stdout + r.stderr
