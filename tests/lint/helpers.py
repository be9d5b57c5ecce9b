"""Run one lint rule on its annotated fixture (Semgrep style) and compare the flagged lines with the annotations:

    # ruleid: RULE      the next code line must be flagged by RULE
    # ok: RULE          the next code line must not be flagged by RULE
    # todoruleid: RULE  a known gap: the next line should be flagged one day (not checked)
Every line RULE flags must carry a `ruleid` (or `todoruleid`) annotation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from policyengine.lint import LintConfig, lint_paths

FIXTURES = Path(__file__).parent / "fixtures"
ANNOTATION = re.compile(r"#\s*(ruleid|ok|todoruleid|todook):\s*([a-z0-9-]+)")


def annotations(path: Path, rule: str) -> dict[str, set[int]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out: dict[str, set[int]] = {"ruleid": set(), "ok": set(), "todoruleid": set(), "todook": set()}
    for i, line in enumerate(lines, 1):
        m = ANNOTATION.search(line)
        if not m or m.group(2) != rule or not line.lstrip().startswith("#"):
            continue
        target = i + 1
        while target <= len(lines) and (not lines[target - 1].strip() or lines[target - 1].lstrip().startswith("#")):
            target += 1
        out[m.group(1)].add(target)
    return out


def check_fixture(rule: str, embedder: Any = None) -> list:
    path = FIXTURES / f"{rule}.policy"
    ann = annotations(path, rule)
    assert ann["ruleid"], f"{path} has no `# ruleid: {rule}` annotation"
    config = LintConfig(levels={rule: "error"})
    only = {rule, "compile-error"} if rule != "bad-suppression" else None
    report = lint_paths([str(path)], config, embedder=embedder, only=only)
    found = [f for f in report.findings if f.rule == rule]
    flagged = {f.span.line for f in found}
    missing = ann["ruleid"] - flagged
    unexpected = flagged - ann["ruleid"] - ann["todoruleid"]
    assert not missing, f"{rule}: expected findings on lines {sorted(missing)} of {path.name}"
    assert not unexpected, f"{rule}: unexpected findings: " + "\n".join(f.render() for f in found
                                                                         if f.span.line in unexpected)
    assert not (ann["ok"] & flagged)
    if rule != "compile-error":
        assert not [f for f in report.findings if f.rule == "compile-error"], \
            "fixture does not compile: " + "\n".join(f.render() for f in report.findings)
    return found
