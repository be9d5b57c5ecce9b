"""Lint reporters: text (file:line:col, excerpt with caret, help), JSON (schema in data/lint-report.schema.json)
and SARIF 2.1.0 (GitHub code scanning)."""

from __future__ import annotations

import json
from typing import Any

from .. import __version__
from .runner import LintReport

DOCS_URL = "https://github.com/policyengine/policyengine/blob/main/docs/lint/rules/{id}.md"


def render_text(report: LintReport) -> str:
    out = [f.render() for f in report.findings]
    errors, warnings = report.count("error"), report.count("warning")
    summary = (f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''} "
               f"in {len(report.files)} file{'s' if len(report.files) != 1 else ''}")
    if report.suppressed:
        summary += f" ({report.suppressed} suppressed)"
    tail = [f"note: {n}" for n in report.notices] + [summary]
    return "\n\n".join(out + ["\n".join(tail)]) + "\n"


def to_json(report: LintReport) -> dict[str, Any]:
    return {
        "version": 1,
        "tool": {"name": "policyengine lint", "version": __version__},
        "findings": [{"rule": f.rule, "level": f.level, "category": f.category, "message": f.message,
                      "file": f.span.file, "line": f.span.line, "column": f.span.column,
                      "end_line": f.span.end_line or f.span.line,
                      "end_column": (f.span.column + f.width) if f.span.line else 0,
                      "help": f.help} for f in report.findings],
        "summary": {"errors": report.count("error"), "warnings": report.count("warning"),
                    "suppressed": report.suppressed, "files": len(report.files)},
        "notices": list(report.notices),
    }


def render_json(report: LintReport) -> str:
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"


def to_sarif(report: LintReport) -> dict[str, Any]:
    rules = sorted(report.rules, key=lambda r: r.id)
    index = {r.id: i for i, r in enumerate(rules)}
    results = []
    for f in report.findings:
        region: dict[str, Any] = {}
        if f.span.line > 0:
            region = {"startLine": f.span.line, "startColumn": max(1, f.span.column),
                      "endLine": f.span.line, "endColumn": max(1, f.span.column) + f.width}
            if f.line_text:
                region["snippet"] = {"text": f.line_text}
        location: dict[str, Any] = {"artifactLocation": {"uri": f.span.file.replace("\\", "/"),
                                                         "uriBaseId": "%SRCROOT%"}}
        if region:
            location["region"] = region
        message = f.message + (f"\nhelp: {f.help}" if f.help else "")
        results.append({"ruleId": f.rule, "ruleIndex": index.get(f.rule, 0), "level": f.level,
                        "message": {"text": message}, "locations": [{"physicalLocation": location}]})
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "policyengine-lint",
                "version": __version__,
                "informationUri": "https://github.com/policyengine/policyengine/blob/main/docs/lint.md",
                "rules": [{"id": r.id, "name": "".join(w.capitalize() for w in r.id.split("-")),
                           "shortDescription": {"text": r.summary},
                           "helpUri": DOCS_URL.format(id=r.id),
                           "defaultConfiguration": {"level": "none" if r.level == "ignore" else r.level},
                           "properties": {"category": r.category, "tags": [r.category]}} for r in rules],
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the directory lint ran in"}}},
            "results": results,
            "invocations": [{"executionSuccessful": True,
                             "toolExecutionNotifications": [{"message": {"text": n}, "level": "note"}
                                                            for n in report.notices]}],
        }],
    }


def render_sarif(report: LintReport) -> str:
    return json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"
