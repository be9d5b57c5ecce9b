"""bad-suppression: a `# policyengine: ignore[...]` comment without a reason, naming an unknown rule, or that
suppresses nothing."""

from __future__ import annotations

from typing import Iterable

from ...diagnostics import did_you_mean
from ..rule import Finding, LintContext, LintFile, RuleInfo

RULE = RuleInfo("bad-suppression", "hygiene", "warning",
                "Suppression comment without a reason, for an unknown rule, or unused")


def check(ctx: LintContext) -> Iterable[Finding]:
    return ()  # run by the runner after every other rule (it needs their findings): see check_suppressions


def check_suppressions(sups, files: dict[str, LintFile], known: set[str], levels: dict[str, str]) -> list[Finding]:  # type: ignore[no-untyped-def]
    out = []
    level = levels.get(RULE.id, RULE.level)
    for s in sups:
        f = files.get(s.file)
        line_text = f.source.line_text(s.span.line) if f else ""

        def finding(msg: str, help: str) -> Finding:
            return Finding(RULE.id, level, msg, s.span, help, line_text, max(1, s.span.end - s.span.start),
                           RULE.category)

        if not s.ids:
            out.append(finding("suppression names no rule", "write `# policyengine: ignore[rule-id] reason`"))
            continue
        if not s.reason:
            out.append(finding(f"suppression of {', '.join(s.ids)} gives no reason, so it is not applied",
                               "say why the finding does not apply: `# policyengine: ignore[rule-id] because ...`"))
            continue
        for rid in s.ids:
            if rid not in known:
                out.append(finding(f"unknown lint rule '{rid}' in suppression",
                                   did_you_mean(rid, known) or "see `policyengine lint --list-rules`"))
            elif rid not in s.used and levels.get(rid, "warning") != "ignore":
                out.append(finding(f"suppression of '{rid}' is unused: no such finding on line {s.line}",
                                   "delete it (the problem is gone) or move it to the line of the finding"))
    return out
