"""`policyengine diff OLD NEW --data ...`: every row whose action changes between two versions of a policy, grouped by
direction and by the rule responsible, with the FRR and catch-rate delta. Rows are embedded once for both."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

from .runner import RowResult, build_engine, run_rows
from .scoring import DEFAULT_RULE, Metrics, metrics


@dataclass(frozen=True)
class Change:
    old: RowResult
    new: RowResult

    @property
    def direction(self) -> str:
        if self.new.blocked and not self.old.blocked:
            return "newly blocked"
        if self.old.blocked and not self.new.blocked:
            return "newly allowed"
        return "other change"

    @property
    def rule(self) -> str:
        """The rule responsible: the new winner for a new block, the old winner for a lifted one."""
        d = self.old.decision if self.direction == "newly allowed" else self.new.decision
        return d.rule or DEFAULT_RULE


@dataclass
class DiffReport:
    old_policy: str
    new_policy: str
    old: Metrics
    new: Metrics
    changes: list[Change]
    rows: int

    def grouped(self) -> dict[str, dict[str, list[Change]]]:
        out: dict[str, dict[str, list[Change]]] = {}
        for direction in ("newly blocked", "newly allowed", "other change"):
            by_rule: dict[str, list[Change]] = defaultdict(list)
            for c in self.changes:
                if c.direction == direction:
                    by_rule[c.rule].append(c)
            if by_rule:
                out[direction] = dict(sorted(by_rule.items(), key=lambda kv: (-len(kv[1]), kv[0])))
        return out

    @property
    def new_blocks(self) -> int:
        return sum(c.direction == "newly blocked" for c in self.changes)

    def render_text(self, explain: bool = False) -> str:
        out = [f"diff {self.old_policy} -> {self.new_policy} on {self.rows} rows: {len(self.changes)} change action",
               "", f"{'':6}{'false refusals':>32}  {'catch':>32}",
               f"{'old':6}{self.old.frr.pct():>32}  {self.old.catch.pct():>32}",
               f"{'new':6}{self.new.frr.pct():>32}  {self.new.catch.pct():>32}",
               f"{'delta':6}{_delta(self.old.frr.rate, self.new.frr.rate, self.new.frr.k - self.old.frr.k):>32}  "
               f"{_delta(self.old.catch.rate, self.new.catch.rate, self.new.catch.k - self.old.catch.k):>32}"]
        for direction, by_rule in self.grouped().items():
            total = sum(len(v) for v in by_rule.values())
            out += ["", f"{direction} ({total}):"]
            for rule, cs in by_rule.items():
                s = sum(not c.new.row.unsafe for c in cs)
                out.append(f"  {rule}: {len(cs)} rows ({s} safe, {len(cs) - s} unsafe)")
                for c in cs:
                    out.append(f"    {c.old.action} → {c.new.action} [{c.new.row.label}] {c.new.row.id} "
                               f"({c.new.row.file}:{c.new.row.line}): {_short(c.new.row.text)}")
                    if explain:
                        d = c.old.decision if direction == "newly allowed" else c.new.decision
                        out += ["        " + ln for ln in d.explain().splitlines()]
        if not self.changes:
            out += ["", "no row changes action"]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"old_policy": self.old_policy, "new_policy": self.new_policy, "rows": self.rows,
                "old": self.old.to_dict(), "new": self.new.to_dict(),
                "changes": {d: {rule: [{"id": c.new.row.id, "file": c.new.row.file, "line": c.new.row.line,
                                        "label": c.new.row.label, "text": c.new.row.text, "old": c.old.action,
                                        "new": c.new.action, "old_rule": c.old.decision.rule,
                                        "new_rule": c.new.decision.rule} for c in cs]
                                for rule, cs in by_rule.items()} for d, by_rule in self.grouped().items()}}


def _delta(a: float | None, b: float | None, k: int) -> str:
    if a is None or b is None:
        return "-"
    return f"{100 * (b - a):+.1f} pts ({k:+d} rows)"


def _short(text: str, k: int = 110) -> str:
    t = " ".join(text.split())
    return repr(t if len(t) <= k else t[:k - 1] + "…")


def diff(old_path: str, new_path: str, rows: Sequence[Any], *, threads: int = 1, progress: bool | None = None,
         embedder: Any = None) -> DiffReport:
    """`embedder` (default: the process-wide CachingEmbedder of the policy's model) is shared by both engines."""
    old_engine = build_engine(old_path, threads=threads, embedder=embedder)
    new_engine = build_engine(new_path, threads=threads, embedder=embedder)  # same model: shares the embeddings
    old = run_rows(old_engine, rows, progress=progress, desc="old policy")
    new = run_rows(new_engine, rows, progress=progress, desc="new policy")
    changes = [Change(a, b) for a, b in zip(old, new) if a.action != b.action]
    return DiffReport(old_engine.policy.entry, new_engine.policy.entry, metrics("old", old), metrics("new", new),
                      changes, len(rows))
