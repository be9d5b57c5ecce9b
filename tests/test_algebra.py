"""The decision algebra: precedence block > redact > flag > allow > default; severity then source order break
ties; `allow overrides` suppresses only the rules it names; shadow rules never change the action."""

from __future__ import annotations

import pytest

from policyengine import nodes as n
from policyengine.algebra import PRECEDENCE, combine
from policyengine.compiler import CompiledRule
from policyengine.source import Span


def R(name: str, kind: str = "block", severity: str = "medium", mode: str = "enforce", order: int = 0,
      overrides: tuple[str, ...] = ()) -> CompiledRule:
    action = n.Action(kind, n.Text(f"{name} says"), tuple(n.Name(t) for t in overrides))  # type: ignore[arg-type]
    return CompiledRule(name, n.Exists("x"), action, severity, mode, None, Span("x.policy", order + 1, 1), order)


def rules(*specs) -> list[CompiledRule]:
    """specs: (name, kind, severity, mode, overrides) tuples in source order."""
    out = []
    for i, s in enumerate(specs):
        name, kind, sev, mode, ovr = (*s, *(None,) * (5 - len(s)))
        out.append(R(name, kind or "block", sev or "medium", mode or "enforce", i, tuple(ovr or ())))
    return out


# (matched rules in source order, default, expected action, expected winner, expected overridden names)
TABLE = [
    # nothing matched -> default, no winner
    ([], "allow", "allow", None, []),
    ([], "block", "block", None, []),
    # precedence of actions, whatever the source order
    ([("f", "flag"), ("b", "block")], "allow", "block", "b", []),
    ([("b", "block"), ("f", "flag")], "allow", "block", "b", []),
    ([("r", "redact"), ("b", "block")], "allow", "block", "b", []),
    ([("f", "flag"), ("r", "redact")], "allow", "redact", "r", []),
    ([("a", "allow"), ("f", "flag")], "allow", "flag", "f", []),
    ([("a", "allow"), ("r", "redact"), ("f", "flag")], "block", "redact", "r", []),
    # a matched allow rule wins over the default only
    ([("a", "allow")], "block", "allow", "a", []),
    ([("a", "allow")], "allow", "allow", "a", []),
    # severity breaks ties between rules with the same action, then source order
    ([("low", "block", "low"), ("crit", "block", "critical"), ("high", "block", "high")], "allow", "block", "crit", []),
    ([("m1", "block", "medium"), ("m2", "block", "medium")], "allow", "block", "m1", []),
    ([("m2", "flag", "high"), ("m1", "flag", "high")], "allow", "flag", "m2", []),
    # severity never beats precedence
    ([("fc", "flag", "critical"), ("bl", "block", "low")], "allow", "block", "bl", []),
    # allow overrides suppresses exactly the named rules
    ([("b", "block"), ("ok", "allow", None, None, ["b"])], "allow", "allow", "ok", ["b"]),
    ([("ok", "allow", None, None, ["b"]), ("b", "block")], "block", "allow", "ok", ["b"]),
    ([("b", "block"), ("c", "block"), ("ok", "allow", None, None, ["b"])], "allow", "block", "c", ["b"]),
    ([("b", "block"), ("f", "flag"), ("ok", "allow", None, None, ["b"])], "allow", "flag", "f", ["b"]),
    ([("b", "block"), ("c", "block"), ("ok", "allow", None, None, ["b", "c"])], "allow", "allow", "ok", ["b", "c"]),
    # overriding a rule that did not match changes nothing
    ([("c", "block"), ("ok", "allow", None, None, ["zzz"])], "allow", "block", "c", []),
    # a shadow allow-overrides does not suppress anything
    ([("b", "block"), ("ok", "allow", None, "shadow", ["b"])], "allow", "block", "b", []),
    # shadow rules never change the action
    ([("s", "block", "critical", "shadow")], "allow", "allow", None, []),
    ([("s", "allow", None, "shadow")], "block", "block", None, []),
    ([("f", "flag"), ("s", "block", "critical", "shadow")], "allow", "flag", "f", []),
    ([("s", "redact", None, "shadow"), ("a", "allow")], "block", "allow", "a", []),
]


@pytest.mark.parametrize("specs, default, action, winner, overridden", TABLE,
                         ids=[f"{i}-{t[2]}" for i, t in enumerate(TABLE)])
def test_truth_table(specs, default, action, winner, overridden):
    matched = rules(*specs)
    out = combine(matched, default)
    assert out.action == action
    assert (out.winner.name if out.winner else None) == winner
    assert [r.name for r, _ in out.overridden] == overridden
    shadow = [r.name for r in matched if r.mode == "shadow"]
    assert [r.name for r in out.shadow] == shadow
    # effective = matched enforcing rules minus overridden ones, best first
    assert {r.name for r in out.effective} == {r.name for r in matched if r.mode != "shadow"} - set(overridden)
    if out.effective:
        assert out.effective[0] is out.winner


def test_effective_is_sorted_by_precedence_then_severity_then_order():
    matched = rules(("f", "flag", "critical"), ("b1", "block", "low"), ("r", "redact"), ("b2", "block", "high"),
                    ("b3", "block", "high"), ("a", "allow"))
    assert [r.name for r in combine(matched, "allow").effective] == ["b2", "b3", "b1", "r", "f", "a"]


def test_overridden_records_who_overrode():
    matched = rules(("b", "block"), ("ok1", "allow", None, None, ["b"]), ("ok2", "allow", None, None, ["b"]))
    out = combine(matched, "allow")
    assert [(r.name, by.name) for r, by in out.overridden] == [("b", "ok1")]  # first overriding rule in source order


def test_input_order_does_not_matter():
    matched = rules(("f", "flag", "high"), ("b", "block", "low"), ("ok", "allow", None, None, ["f"]))
    a = combine(matched, "allow")
    b = combine(list(reversed(matched)), "allow")
    assert (a.action, a.winner.name, [r.name for r in a.effective]) == \
        (b.action, b.winner.name, [r.name for r in b.effective])


def test_precedence_constants():
    assert sorted(PRECEDENCE, key=PRECEDENCE.get, reverse=True) == ["block", "redact", "flag", "allow"]
