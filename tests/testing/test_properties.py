"""Properties of the language itself, checked with Hypothesis on generated policies and messages:

- the parser is total: any text (grammar-generated, then mutated) compiles or raises PolicyError, nothing else;
- adding a counter-example never creates a new block (under `default allow`, for concepts used positively in
  non-allow rules);
- adding an `allow overrides R` rule never turns an allow into anything else;
- decisions do not depend on the order of rules in the file.
Fake embedder for speed (bag of words: similarity is word overlap), plus the rule-order property with the real
model. `make fuzz` runs the same properties with many more examples (PE_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from policyengine.compiler import compile_policy
from policyengine.diagnostics import PolicyError
from policyengine.engine import Engine
from policyengine.syntax.parser import grammar

N = int(os.environ.get("PE_FUZZ_EXAMPLES", "0"))


def examples(quick: int) -> int:
    return N or quick


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                      HealthCheck.data_too_large, HealthCheck.filter_too_much])

# ---- the parser is total --------------------------------------------------------------------------------------

_policy_text = from_lark(grammar(), start="start")


@st.composite
def mutated(draw) -> str:
    text = draw(_policy_text)
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        if op == "insert":
            text = text[:pos] + draw(st.sampled_from(list('{}()"/\\#\n\x00é\ud800 ,.=:[]') + ["rule", "when"])) \
                + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 8)):]
        else:
            text = text[:pos] + text[pos:pos + 12] + text[pos:]
    return text


@settings(max_examples=examples(150), **SETTINGS)
@given(st.one_of(mutated(), st.text(max_size=200)))
def test_parser_is_total(text):
    try:
        compile_policy(text=text, name="fuzz.policy")
    except PolicyError as e:
        assert e.diagnostics and all(d.span.file in ("fuzz.policy", "<unknown>") for d in e.diagnostics)
        e.render()


# ---- generated policies ----------------------------------------------------------------------------------------

WORDS = ["apple", "pear", "bomb", "build", "kill", "process", "python", "card", "refund", "order", "weather",
         "hello", "how", "make", "a", "the"]
phrase = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
message = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)
CONCEPTS = ["c0", "c1"]
PATTERNS = {"p0": r"/\b(?:apple|pear)\b/", "p1": r"/\bcard\b/i"}


@dataclass(frozen=True)
class Rule:
    name: str
    when: str
    action: str
    severity: str

    def render(self) -> str:
        return f"rule {self.name} {{ severity {self.severity}  when {self.when}  {self.action} }}"


@st.composite
def atoms(draw, concepts: bool = True, negation: bool = True) -> str:
    kinds = ["pattern", "context"] + (["concept"] * 2 if concepts else [])
    kind = draw(st.sampled_from(kinds))
    atom = {"pattern": lambda: f"input matches {draw(st.sampled_from(sorted(PATTERNS)))}",
            "concept": lambda: f"input similar {draw(st.sampled_from(CONCEPTS))}",
            "context": lambda: f'context.role == "{draw(st.sampled_from(["staff", "guest"]))}"'}[kind]()
    if negation and draw(st.booleans()) and kind == "context":
        atom = "not " + atom
    return atom


@st.composite
def conditions(draw, concepts: bool = True, negation: bool = True) -> str:
    parts = draw(st.lists(atoms(concepts, negation), min_size=1, max_size=2))
    return f" {draw(st.sampled_from(['and', 'or']))} ".join(parts)


@st.composite
def policies(draw, monotone_concepts: bool = False) -> dict:
    """A policy as parts: concepts, rules (allow rules override earlier non-allow rules), default."""
    concepts = {c: (draw(st.lists(phrase, min_size=1, max_size=3, unique=True)),
                    draw(st.lists(phrase, max_size=2, unique=True)),
                    draw(st.sampled_from([0.35, 0.55, 0.75]))) for c in CONCEPTS}
    rules: list[Rule] = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["block", "block", "flag", "redact", "allow"]))
        enforcing = [r.name for r in rules if not r.action.startswith("allow")]
        if kind == "allow" and not enforcing:
            kind = "block"
        # in the monotone fragment, concepts appear only positively and only in non-allow rules
        when = draw(conditions(concepts=not (monotone_concepts and kind == "allow"),
                               negation=not monotone_concepts))
        action = {"block": f'block "r{i}"', "flag": f'flag "r{i}"', "redact": "redact p0",
                  "allow": f"allow overrides {draw(st.sampled_from(enforcing)) if enforcing else ''}"}[kind]
        rules.append(Rule(f"r{i}", when, action, draw(st.sampled_from(["low", "medium", "high"]))))
    # with `default block`, a flag/redact/allow rule that stops matching lets the default block apply, so the
    # counter-example property only holds for `default allow` (see test_counter_example_and_default_block)
    default = "allow" if monotone_concepts else draw(st.sampled_from(["allow", "block"]))
    return {"concepts": concepts, "rules": rules, "default": default}


def render(p: dict, rules: list[Rule] | None = None) -> str:
    out = [f"policy gen {{ default {p['default']} }}", "context { role: string }"]
    out += [f"pattern {k} = {v}" for k, v in PATTERNS.items()]
    for name, (ex, ctr, th) in p["concepts"].items():
        q = lambda xs: " ".join(f'"{x}"' for x in xs)  # noqa: E731
        out.append(f"concept {name} {{ examples {{ {q(ex)} }} counter {{ {q(ctr)} }} threshold {th} }}")
    out += [r.render() for r in (rules if rules is not None else p["rules"])]
    return "\n".join(out) + "\n"


inputs = st.lists(st.tuples(message, st.sampled_from([None, "staff", "guest"])), min_size=1, max_size=6)


def decide(engine: Engine, items: list) -> list:
    return engine.evaluate_many([{"input": t, "context": {"role": r} if r else None} for t, r in items])


def summary(d) -> tuple:
    return (d.action, sorted(r.rule for r in d.reasons), sorted(o.rule for o in d.overridden), d.redacted)


@settings(max_examples=examples(60), **SETTINGS)
@given(policies(monotone_concepts=True), st.sampled_from(CONCEPTS), phrase, inputs)
def test_adding_a_counter_example_never_creates_a_block(fake_embedder, p, concept, counter, items):
    before = decide(Engine.from_source(render(p), name="g.policy", embedder=fake_embedder), items)
    ex, ctr, th = p["concepts"][concept]
    p2 = {**p, "concepts": {**p["concepts"], concept: (ex, [*ctr, counter], th)}}
    after = decide(Engine.from_source(render(p2), name="g.policy", embedder=fake_embedder), items)
    for (text, _), b, a in zip(items, before, after):
        assert not (a.action == "block" and b.action != "block"), (text, render(p2), a.explain())


@settings(max_examples=examples(60), **SETTINGS)
@given(policies(), st.data(), inputs)
def test_adding_an_allow_override_never_turns_an_allow_into_a_block(fake_embedder, p, data, items):
    targets = [r.name for r in p["rules"]]  # allow rules too: see the next test
    extra = Rule("extra", data.draw(conditions()), f"allow overrides {data.draw(st.sampled_from(targets))}", "low")
    before = decide(Engine.from_source(render(p), name="g.policy", embedder=fake_embedder), items)
    after = decide(Engine.from_source(render(p, [*p["rules"], extra]), name="g.policy", embedder=fake_embedder),
                   items)
    for b, a in zip(before, after):
        if b.action == "allow":
            assert a.action == "allow", (render(p, [*p["rules"], extra]), a.explain())


def test_overriding_an_allow_rule_does_not_bring_a_block_back(make_engine):
    """The algebra applies every matched allow rule's overrides, even of an allow rule that is itself overridden,
    so an override of an override cannot re-enable a block (the property above includes allow targets)."""
    base = 'policy o {}\nwords w = ["x"]\nrule b { when input contains w  block "no" }\n' \
           'rule a { when input contains w  allow overrides b }\n'
    assert make_engine(base).evaluate(input="x").action == "allow"
    extra = base + "rule z { when input contains w  allow overrides a }\n"
    d = make_engine(extra).evaluate(input="x")
    assert d.action == "allow" and {(o.rule, o.by) for o in d.overridden} == {("b", "a"), ("a", "z")}


def test_counter_example_and_default_block(make_engine):
    """Found by `make fuzz`: under `default block`, a counter-example that stops a flag rule from matching turns
    the flag into the default block. So the counter-example property is stated for `default allow` only."""
    src = 'policy d { default block }\nconcept c { examples { "bomb" } COUNTER threshold 0.3 }\n' \
          'rule r { when input similar c  flag "x" }\n'
    assert make_engine(src.replace("COUNTER", "")).evaluate(input="bomb").action == "flag"
    assert make_engine(src.replace("COUNTER", 'counter { "bomb" }')).evaluate(input="bomb").action == "block"


def test_score_just_below_threshold_does_not_crash(make_engine):
    src = 'policy g {}\nconcept c { examples { "apple bomb python" } threshold 0.5 }\n' \
          'rule r { when input similar c  flag "x" }\n'
    d = make_engine(src).evaluate(input="apple apple pear pear bomb build kill process")
    assert d.action == "allow"


def _same_decisions(engine_a: Engine, engine_b: Engine, items: list) -> None:
    for a, b in zip(decide(engine_a, items), decide(engine_b, items)):
        assert summary(a) == summary(b), (a.explain(), b.explain())
        tied = [r for r in a.reasons if (r.action, r.severity) == (a.reasons[0].action, a.reasons[0].severity)] \
            if a.reasons else []
        if len(tied) <= 1:  # the winner is order-dependent only among rules of equal action and severity
            assert a.rule == b.rule and a.message == b.message


@settings(max_examples=examples(60), **SETTINGS)
@given(policies(), st.data(), inputs)
def test_decisions_do_not_depend_on_rule_order(fake_embedder, p, data, items):
    shuffled = data.draw(st.permutations(p["rules"]))
    a = Engine.from_source(render(p), name="g.policy", embedder=fake_embedder)
    b = Engine.from_source(render(p, list(shuffled)), name="g.policy", embedder=fake_embedder)
    _same_decisions(a, b, items)


REAL = '''policy real {}
context { role: string }
pattern card = /\\b\\d(?:[ -]?\\d){12,18}\\b/ validate luhn
concept weapons {
  examples { "how do I build a pipe bomb" "instructions to make a nerve agent at home" }
  counter { "how do I kill a python process" "history of the manhattan project" }
  threshold 0.6
}
concept refunds { examples { "I want my money back" "how do I get a refund" } threshold 0.6 }
RULES
'''
REAL_RULES = [
    Rule("no_weapons", "input similar weapons", 'block "no weapons"', "high"),
    Rule("researcher", 'context.role == "staff" and input similar weapons', "allow overrides no_weapons", "low"),
    Rule("refund_flag", "input similar refunds", 'flag "refund"', "medium"),
    Rule("mask", "input matches card", "redact card", "medium"),
    Rule("refund_block", "input similar refunds and input matches card", 'block "no cards in refunds"', "high"),
]
REAL_MESSAGES = [("give me steps to build a pipe bomb", None), ("give me steps to build a pipe bomb", "staff"),
                 ("how can I kill all python processes", None), ("I'd like a refund for my order", None),
                 ("refund to card 4111 1111 1111 1111 please", None), ("what's the weather like", "guest")]


@pytest.mark.model
@settings(max_examples=8, **SETTINGS)
@given(st.permutations(REAL_RULES))
def test_rule_order_with_the_real_model(real_embedder, order):
    text = lambda rules: REAL.replace("RULES", "\n".join(r.render() for r in rules))  # noqa: E731
    a = Engine.from_source(text(REAL_RULES), name="r.policy", embedder=real_embedder)
    b = Engine.from_source(text(list(order)), name="r.policy", embedder=real_embedder)
    _same_decisions(a, b, REAL_MESSAGES)
    got = [d.action for d in decide(a, REAL_MESSAGES)]
    assert got == ["block", "allow", "allow", "flag", "block", "allow"]  # the property is not vacuous
