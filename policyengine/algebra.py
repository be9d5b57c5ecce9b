"""The decision algebra, in one place.

| step | what happens |
|------|--------------|
| 1 | rules in `mode shadow` that matched are reported in `shadow` and take no further part |
| 2 | every matched enforcing `allow overrides R, ...` rule suppresses the named rules (if they matched): they are listed in `overridden` with the overriding rule |
| 3 | of the remaining matched rules, the action with the highest precedence wins: block > redact > flag > allow |
| 4 | among rules with the winning action, the winner is the highest severity (critical > high > medium > low), then the first in source order |
| 5 | if no rule remains, the policy default applies (`default allow` or `default block`), with no winning rule |

`redact` applies every remaining redact rule's spans (overlaps merged); `allow` wins only over the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .compiler import CompiledRule

PRECEDENCE = {"block": 3, "redact": 2, "flag": 1, "allow": 0}
SEVERITY = {"critical": 3, "high": 2, "medium": 1, "low": 0}


@dataclass(frozen=True)
class Outcome:
    action: str
    winner: CompiledRule | None
    effective: tuple[CompiledRule, ...]  # sorted: precedence, severity, source order
    overridden: tuple[tuple[CompiledRule, CompiledRule], ...]  # (rule, by)
    shadow: tuple[CompiledRule, ...]


def rank(rule: CompiledRule) -> tuple[int, int, int]:
    return (-PRECEDENCE[rule.action.kind], -SEVERITY.get(rule.severity, 1), rule.order)


def combine(matched: Sequence[CompiledRule], default: str) -> Outcome:
    shadow = tuple(r for r in matched if r.mode == "shadow")
    enforced = [r for r in matched if r.mode != "shadow"]
    by_name = {r.name: r for r in enforced}
    overridden: dict[str, tuple[CompiledRule, CompiledRule]] = {}
    for r in sorted(enforced, key=lambda r: r.order):
        if r.action.kind == "allow":
            for t in r.action.targets:
                if t.value in by_name and t.value not in overridden:
                    overridden[t.value] = (by_name[t.value], r)
    effective = tuple(sorted((r for r in enforced if r.name not in overridden), key=rank))
    if effective:
        winner = effective[0]
        return Outcome(winner.action.kind, winner, effective, tuple(overridden.values()), shadow)
    return Outcome(default, None, effective, tuple(overridden.values()), shadow)
