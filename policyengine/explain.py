"""Render a Decision as human-readable text, with carets under the matched characters when the text is known."""

from __future__ import annotations

from typing import Any

from .models import (ClassifierEvidence, ContextEvidence, Decision, Reason, RegexEvidence, SimilarityEvidence,
                     WordsEvidence)
from .source import text_caret


def _q(s: str, limit: int = 90) -> str:
    s = " ".join(s.split())
    return repr(s if len(s) <= limit else s[: limit - 1] + "…")


def _val(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    return repr(v) if isinstance(v, str) else str(v)


def _evidence_lines(ev: Any, texts: dict[str, str]) -> list[str]:
    lines: list[str] = []
    if isinstance(ev, SimilarityEvidence):
        lines.append(f"{ev.subject} similar {ev.concept}: {ev.subject}[{ev.span[0]}:{ev.span[1]}] {_q(ev.text)}")
        lines.append(f"  score {ev.score:.2f} >= threshold {ev.threshold:.2f}; nearest example {_q(ev.example, 70)}")
        if ev.transforms:
            lines.append(f"  compared after normalisation ({', '.join(ev.transforms)}): {_q(ev.normalized or '', 70)}")
        if ev.counter_example is not None:
            lines.append(f"  nearest counter-example {_q(ev.counter_example, 70)} scored {ev.counter_score:.2f}"
                         f" (< {ev.score:.2f}{f' - margin {ev.margin:.2f}' if ev.margin else ''})")
    elif isinstance(ev, ClassifierEvidence):
        lines.append(f"{ev.subject} similar {ev.concept} (trained): {ev.subject}[{ev.span[0]}:{ev.span[1]}] "
                     f"{_q(ev.text)}")
        lines.append(f"  {ev.probability:.0%} unsafe (probability {ev.probability:.3f} >= threshold {ev.threshold:.2f})"
                     if ev.probability >= ev.threshold else
                     f"  {ev.probability:.0%} unsafe (probability {ev.probability:.3f} < threshold {ev.threshold:.2f})")
        if ev.transforms:
            lines.append(f"  compared after normalisation ({', '.join(ev.transforms)}): {_q(ev.normalized or '', 70)}")
        if ev.nearest:
            lines.append("  closest training rows:")
            for r in ev.nearest:
                lines.append(f"    {r.label:<6} {r.similarity:.2f} {_q(r.text, 70)} ({r.id}, {r.file})")
    elif isinstance(ev, (RegexEvidence, WordsEvidence)):
        what = f"matches {ev.pattern} {ev.regex}" if isinstance(ev, RegexEvidence) else f"contains {ev.words}"
        more = f" (1 of {ev.matches} matches)" if ev.matches > 1 else ""
        lines.append(f"{ev.subject} {what}: {ev.subject}[{ev.span[0]}:{ev.span[1]}] {_q(ev.text)}{more}")
        if ev.transforms:
            lines.append(f"  matched after normalisation ({', '.join(ev.transforms)}): {_q(ev.normalized or '')}")
    elif isinstance(ev, ContextEvidence):
        cond = f"context.{ev.attribute} {ev.op} {_val(ev.expected)}" if ev.op != "exists" else \
            f"context.{ev.attribute} exists"
        lines.append(f"{'not ' if ev.negated else ''}{cond}  (actual: {_val(ev.actual)})")
        return lines
    text = texts.get(getattr(ev, "subject", ""), None)
    if text is not None and ev.span is not None:
        lines += text_caret(text, ev.span[0], ev.span[1]).splitlines()
    return lines


def _reason_block(r: Reason, texts: dict[str, str], indent: str = "  ") -> list[str]:
    head = f"{indent}rule {r.rule} ({r.action}, severity {r.severity}) at {r.source}"
    out = [head]
    shown_more = 0
    for ev in r.evidence:
        if isinstance(ev, (RegexEvidence, WordsEvidence)) and ev.matches > 1:
            if shown_more >= 3:
                continue
            shown_more += 1
        out += [indent + "    " + ln for ln in _evidence_lines(ev, texts)]
    return out


def render_text(d: Decision, texts: dict[str, str] | None = None) -> str:
    texts = texts or {}
    lines: list[str] = []
    if d.rule:
        head = f"{d.action.upper()} by rule {d.rule}"
    elif d.action == "block":
        head = "BLOCK by the policy default"
    else:
        head = f"{d.action.upper()} (no rule matched; policy default)" if not d.reasons else d.action.upper()
    if d.message:
        head += f": {d.message}"
    lines.append(head)
    if d.redacted is not None:
        lines.append(f"  redacted input: {_q(d.redacted, 200)}")
    if d.redacted_output is not None:
        lines.append(f"  redacted output: {_q(d.redacted_output, 200)}")
    for r in d.reasons:
        lines += _reason_block(r, texts)
    for o in d.overridden:
        lines.append(f"  overridden: {o.rule} by {o.by} (allow overrides at {o.source})")
    for r in d.shadow:
        lines.append(f"  shadow (reported, not enforced): {r.rule} would {r.action}")
        lines += _reason_block(r, texts, indent="    ")[1:]
    for nm in d.near_misses:
        nearest = "closest unsafe training row" if nm.kind == "classifier" else "nearest example"
        lines.append(f"  near miss: rule {nm.rule} ({nm.source}) — {nm.subject} similar {nm.concept} {nm.why};"
                     f" {nearest} {_q(nm.example, 60)} in {nm.subject}[{nm.span[0]}:{nm.span[1]}]")
    for e in d.errors:
        lines.append(f"  error: {e.rule + ': ' if e.rule else ''}{e.message}")
    for note in d.notes:
        lines.append(f"  note: {note}")
    ver = f" {d.policy.version}" if d.policy.version else ""
    lines.append(f"  policy {d.policy.name}{ver} ({d.policy.digest[:19]}…)" + (f", model {d.model}" if d.model else ""))
    return "\n".join(lines)
