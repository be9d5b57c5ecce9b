"""Inline suppression: `# policyengine: ignore[rule-id, other-id] reason` on the finding's line, or alone on
the line above it. The reason is required."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..source import Span
from .rule import LintFile

SUPPRESS = re.compile(r"#\s*policyengine:\s*ignore\[(?P<ids>[^\]]*)\]\s*(?P<reason>.*)$")


@dataclass
class Suppression:
    file: str
    line: int  # the line the suppression applies to
    ids: tuple[str, ...]
    reason: str
    span: Span
    used: set[str]


def suppressions(f: LintFile) -> list[Suppression]:
    out = []
    for c in f.parsed.comments:
        m = SUPPRESS.search(c.text)
        if not m:
            continue
        ids = tuple(x.strip() for x in m.group("ids").split(",") if x.strip())
        target = c.span.line
        if c.own_line:  # applies to the next line that holds code
            lines = f.source.text.splitlines()
            target = c.span.line + 1
            while target <= len(lines) and (not lines[target - 1].strip() or lines[target - 1].lstrip().startswith("#")):
                target += 1
        out.append(Suppression(f.path, target, ids, m.group("reason").strip(), c.span, set()))
    return out
