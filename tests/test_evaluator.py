"""Evaluator behaviour on regexes, word lists, context and redaction (fake embedder, no real model)."""

from __future__ import annotations

import json

import pytest

from policyengine.engine import Engine
from policyengine.evaluator import ContextError, Limits, redact
from policyengine.validators import iban, luhn

from conftest import BrokenEmbedder

CARD_OK = "4111 1111 1111 1111"  # passes Luhn
CARD_BAD = "4111 1111 1111 1112"  # fails Luhn

POLICY = r'''policy shop { version "2.0" default allow }
context { user.role: string  user.age: number  vip: bool  channel: string }
pattern card = /\b\d(?:[ -]?\d){12,18}\b/ validate luhn
pattern email = /[\w.+-]+@[\w-]+\.[\w.-]+/i
pattern secret = /sk-[a-z0-9]{8}/
words slurs = ["ass", "darn it"]
words competitors = ["acme corp", "globex"]

rule no_slurs { severity high  when input contains slurs  block "Please keep it civil." }
rule mask { when input matches card or input matches email  redact card, email with "[X]" }
rule leak { when output matches secret  block "The answer leaked a secret." }
rule competitor_watch { mode shadow  when output contains competitors  flag "mentions a competitor" }
rule minors { when context.user.age < 18 and context.channel in ["web", "app"]  flag "minor" }
rule admin_ok { when context.user.role == "admin" and context.vip == true  allow overrides no_slurs }
rule has_role { when context.user.role exists and not context.user.role == "admin" and input matches secret  flag }
'''


@pytest.fixture
def engine(make_engine) -> Engine:
    return make_engine(POLICY, name="shop.policy")


def spans_ok(d, text_by_subject):
    for r in (*d.reasons, *d.shadow):
        for ev in r.evidence:
            if ev.kind in ("regex", "words", "similarity"):
                s, e = ev.span
                assert text_by_subject[ev.subject][s:e] == ev.text


# ---- evidence spans ------------------------------------------------------------------------------------


def test_regex_evidence_span_is_exact(engine):
    text = f"my card is {CARD_OK} and mail me at Jo.Doe+x@Example.co.uk please"
    d = engine.evaluate(text)
    assert d.action == "redact" and d.rule == "mask"
    ev = d.reasons[0].evidence
    assert [e.text for e in ev] == [CARD_OK]  # `or` keeps the evidence of the first true operand
    s, e = ev[0].span
    assert text[s:e] == CARD_OK and s == text.index("4111")
    assert ev[0].kind == "regex" and ev[0].pattern == "card" and ev[0].subject == "input"


def test_words_evidence_span_is_exact_and_case_insensitive(engine):
    text = "Well, DARN   It, you are an Ass."
    d = engine.evaluate(text)
    assert d.action == "block" and d.rule == "no_slurs" and d.message == "Please keep it civil."
    ev = d.reasons[0].evidence
    assert sorted(e.text for e in ev) == ["Ass", "DARN   It"]
    spans_ok(d, {"input": text})
    assert all(e.kind == "words" and e.words == "slurs" and e.matches == 2 for e in ev)


@pytest.mark.parametrize("text", ["first class passenger", "assassin", "bass guitar", "passing", "ass_hat", "darn"])
def test_words_are_whole_words(engine, text):
    assert engine.evaluate(text).action == "allow"


@pytest.mark.parametrize("text", ["ass", "you ass!", "(ass)", "ASS-backwards", "darn\tit"])
def test_words_match_at_word_boundaries(engine, text):
    assert engine.evaluate(text).rule == "no_slurs"


def test_luhn_validation(engine):
    assert engine.evaluate(f"card {CARD_OK}").action == "redact"
    assert engine.evaluate(f"card {CARD_BAD}").action == "allow"
    assert luhn("4111111111111111") and not luhn("4111111111111112") and not luhn("0000 0000 00")
    assert luhn("79927398713") is False  # valid Luhn but fewer than 12 digits
    assert iban("GB82 WEST 1234 5698 7654 32") and not iban("GB82 WEST 1234 5698 7654 33")


# ---- redaction ---------------------------------------------------------------------------------------------


def test_redaction_replaces_every_match(engine):
    text = f"a@b.io then {CARD_OK} then c@d.io"
    d = engine.evaluate(text)
    assert d.action == "redact"
    assert d.redacted == "[X] then [X] then [X]"
    assert d.redacted_output is None


def test_redaction_merges_overlapping_spans(make_engine):
    e = make_engine('pattern a = /abcd/\npattern b = /cdef/\nrule r { when input matches a redact a, b with "#" }')
    d = e.evaluate("xx abcdef yy")
    assert d.redacted == "xx # yy"


def test_redaction_default_replacement(make_engine):
    e = make_engine('words w = ["foo"]\nrule r { when input contains w redact w }')
    assert e.evaluate("a foo b FOO").redacted == "a [REDACTED] b [REDACTED]"


def test_redact_function_directly():
    assert redact("0123456789", [(2, 5, "A"), (4, 7, "B"), (8, 9, "C")]) == "01A7C9"
    assert redact("0123456789", [(2, 4, "A"), (4, 6, "B")]) == "01A6789"  # touching spans merge too
    assert redact("abc", []) == "abc"


def test_redaction_only_in_the_rule_subject(make_engine):
    e = make_engine('pattern p = /secret/\nrule r { when output matches p redact p with "***" }')
    d = e.evaluate(input="secret question", output="the secret is 42")
    assert d.action == "redact" and d.redacted is None and d.redacted_output == "the *** is 42"


def test_block_beats_redact_and_does_not_redact(engine):
    d = engine.evaluate(f"you ass, my card is {CARD_OK}")
    assert d.action == "block" and d.redacted is None
    assert [r.rule for r in d.reasons] == ["no_slurs", "mask"]


# ---- output subject, shadow ---------------------------------------------------------------------------------


def test_output_subject_rules(engine):
    assert engine.evaluate(input="what is the key?").action == "allow"
    d = engine.evaluate(input="what is the key?", output="it is sk-abcd1234")
    assert d.action == "block" and d.rule == "leak"
    ev = d.reasons[0].evidence[0]
    assert ev.subject == "output" and ev.text == "sk-abcd1234"
    # the same text as input does not trigger an output rule
    assert engine.evaluate(input="it is sk-abcd1234").rule != "leak"


def test_output_only_evaluation(engine):
    d = engine.evaluate(output="try ACME   Corp instead")
    assert d.action == "allow" and d.rule is None
    assert [r.rule for r in d.shadow] == ["competitor_watch"]
    assert d.shadow[0].evidence[0].text == "ACME   Corp"


def test_evaluate_needs_a_subject(engine):
    with pytest.raises(ValueError):
        engine.evaluate()
    with pytest.raises(TypeError):
        engine.evaluate(input=123)  # type: ignore[arg-type]


# ---- context -------------------------------------------------------------------------------------------------


def test_context_nested_dict(engine):
    d = engine.evaluate("hello", context={"user": {"age": 15}, "channel": "web"})
    assert d.action == "flag" and d.rule == "minors"
    ev = {e.attribute: e for e in d.reasons[0].evidence}
    assert ev["user.age"].actual == 15 and ev["user.age"].op == "<"
    assert ev["channel"].op == "in" and ev["channel"].expected == ["web", "app"]


def test_context_flat_dotted_keys_are_equivalent(engine):
    assert engine.evaluate("hello", context={"user.age": 15, "channel": "app"}).rule == "minors"


@pytest.mark.parametrize("ctx", [
    {"user": {"age": 18}, "channel": "web"},   # not < 18
    {"user": {"age": 15}, "channel": "tv"},    # not in list
    {"channel": "web"},                        # missing attribute: comparison is false, not an error
    {"user": {"age": None}, "channel": "web"},  # null = missing
    {},
    None,
])
def test_context_comparisons_false(engine, ctx):
    assert engine.evaluate("hello", context=ctx).action == "allow"


def test_missing_attribute_makes_negation_true(engine):
    # not context.user.role == "admin" is true when the role is missing
    d = engine.evaluate("sk-abcd1234", context={"user": {"role": "dev"}})
    assert d.rule == "has_role"
    neg = [e for e in d.reasons[0].evidence if e.kind == "context" and e.negated]
    assert neg and neg[0].attribute == "user.role" and neg[0].actual == "dev"
    assert engine.evaluate("sk-abcd1234").rule is None  # `exists` is false without a role


def test_allow_overrides_with_context(engine):
    d = engine.evaluate("you ass", context={"user": {"role": "admin"}, "vip": True})
    assert d.action == "allow" and d.rule == "admin_ok"
    assert [(o.rule, o.by) for o in d.overridden] == [("no_slurs", "admin_ok")]
    assert d.overridden[0].source.line == 14
    assert engine.evaluate("you ass", context={"user": {"role": "admin"}, "vip": False}).action == "block"


@pytest.mark.parametrize("ctx", [
    {"user": {"age": "fifteen"}},
    {"user": {"role": 7}},
    {"vip": "yes"},
    {"user": {"age": True}},  # a bool is not a number
    {"channel": ["web"]},
    "not a mapping",
    ["a", "b"],
])
def test_context_type_errors(engine, ctx):
    with pytest.raises(ContextError):
        engine.evaluate("hello", context=ctx)


def test_scalar_where_an_object_is_declared_is_a_context_error(engine):
    with pytest.raises(ContextError):
        engine.evaluate("hello", context={"user": "bob"})


def test_undeclared_context_keys_are_ignored(engine):
    assert engine.evaluate("hello", context={"extra": {"deep": [1, 2]}}).action == "allow"


def test_numbers_compare_as_numbers(make_engine):
    e = make_engine('context { n: number }\nrule r { when context.n >= 2.5 and context.n != 3 flag }')
    assert [e.evaluate("x", context={"n": v}).action for v in (2, 2.5, 3, 3.0, 4)] == \
        ["allow", "flag", "allow", "allow", "flag"]


# ---- decision JSON -------------------------------------------------------------------------------------------


def test_decision_json_fields(engine):
    text = "you ass"
    d = engine.evaluate(text, output="ask globex")
    data = json.loads(d.model_dump_json())
    for key in ("action", "rule", "message", "redacted", "reasons", "overridden", "shadow", "near_misses", "policy",
                "model"):
        assert key in data
    assert data["action"] == "block" and data["rule"] == "no_slurs" and data["message"] == "Please keep it civil."
    assert data["redacted"] is None and data["overridden"] == [] and data["near_misses"] == []
    assert data["model"] is None  # no concept used -> no model
    r = data["reasons"][0]
    assert r["rule"] == "no_slurs" and r["action"] == "block"
    assert r["source"] == {"file": "shop.policy", "line": 9, "column": 1}
    assert r["evidence"][0]["kind"] == "words" and r["evidence"][0]["span"] == [4, 7]
    assert text[slice(*r["evidence"][0]["span"])] == "ass"
    assert [s["rule"] for s in data["shadow"]] == ["competitor_watch"]
    assert data["shadow"][0]["source"]["line"] == 12
    assert data["policy"]["name"] == "shop" and data["policy"]["version"] == "2.0"
    assert data["policy"]["digest"].startswith("sha256:") and len(data["policy"]["digest"]) == 7 + 64


def test_decision_is_immutable(engine):
    d = engine.evaluate("hello")
    with pytest.raises(Exception):
        d.action = "block"  # type: ignore[misc]


def test_digest_changes_with_source(make_engine):
    a = make_engine('pattern p = /x/\nrule r { when input matches p block }')
    b = make_engine('pattern p = /y/\nrule r { when input matches p block }')
    a2 = make_engine('pattern p = /x/\nrule r { when input matches p block }')
    assert a.policy.digest == a2.policy.digest != b.policy.digest


def test_default_block_with_no_match(make_engine):
    e = make_engine('policy strict { default block }\nwords ok = ["hello"]\nrule greet { when input contains ok allow }')
    assert e.evaluate("hello there").action == "allow"
    d = e.evaluate("something else")
    assert d.action == "block" and d.rule is None and d.message == "Blocked by the policy's default."


def test_explain_text(engine):
    text = f"pay with {CARD_OK}"
    out = engine.evaluate(text).explain()
    assert out.startswith("REDACT by rule mask")
    assert "redacted input: 'pay with [X]'" in out
    assert "rule mask (redact, severity medium) at shop.policy:10:1" in out
    caret_line = [ln for ln in out.splitlines() if set(ln.strip()) <= {"|", "^", " "} and "^" in ln][0]
    assert caret_line.count("^") == len(CARD_OK)
    assert "policy shop 2.0" in out


# ---- failures are never a silent allow -----------------------------------------------------------------------

CONCEPT_POLICY = '''policy p { %s }
concept threats { examples { "i will hurt you" } threshold 0.5 }
rule no_threats { when input similar threats block "no threats" }
'''


@pytest.mark.parametrize("header, action", [("", "block"), ("on_error block", "block"), ("on_error allow", "allow")])
def test_failing_embedder(header, action):
    emb = BrokenEmbedder()
    e = Engine.from_source(CONCEPT_POLICY % header, name="p.policy", embedder=emb)
    emb.broken = True
    d = e.evaluate("hello there")
    assert d.action == action
    assert len(d.errors) == 1 and d.errors[0].rule == "no_threats"
    assert "embedding backend exploded" in d.errors[0].message
    assert any("could not be evaluated" in note for note in d.notes)
    if action == "block":
        assert d.rule == "no_threats"
    assert "error: no_threats:" in d.explain()


def test_failing_embedder_does_not_hide_a_regex_block():
    emb = BrokenEmbedder()
    e = Engine.from_source(CONCEPT_POLICY % "on_error allow" + 'words w = ["boom"]\nrule b { when input contains w '
                           'block "boom" }', name="p.policy", embedder=emb)
    emb.broken = True
    d = e.evaluate("boom")
    assert d.action == "block" and d.rule == "b" and d.errors


def test_failing_embedder_in_evaluate_many():
    emb = BrokenEmbedder()
    e = Engine.from_source(CONCEPT_POLICY % "", name="p.policy", embedder=emb)
    emb.broken = True
    with pytest.raises(RuntimeError):
        e.evaluate_many(["a", "b"])


# ---- limits ------------------------------------------------------------------------------------------------------


def test_long_input_is_truncated_with_a_note(make_engine):
    e = make_engine('words w = ["needle"]\nrule r { when input contains w block }',
                    limits=Limits(max_input_chars=100, on_oversize="truncate"))
    head = "x " * 40 + "needle"
    assert e.evaluate(head + " y" * 200).action == "block"
    d = e.evaluate("y " * 60 + "needle")
    assert d.action == "allow"  # the needle is past the limit
    assert any("max_input_chars" in note and "126 characters" in note for note in d.notes)
    assert "note:" in d.explain()
    assert e.evaluate("short").notes == []


def test_chunk_limit_note(make_engine):
    e = make_engine(CONCEPT_POLICY % "", limits=Limits(max_chunks=3))
    d = e.evaluate("One. Two. Three. Four. Five.")
    assert any("max_chunks" in note for note in d.notes)


# ---- fake-embedder similarity plumbing ---------------------------------------------------------------------------


def test_similarity_with_fake_embedder(make_engine, fake_embedder):
    e = make_engine(CONCEPT_POLICY % "")
    assert e.uses_model
    d = e.evaluate("Hello. I will hurt you")
    assert d.action == "block" and d.model == "sentence-transformers/all-MiniLM-L6-v2"
    ev = d.reasons[0].evidence[0]
    assert ev.kind == "similarity" and ev.text == "I will hurt you" and ev.score == pytest.approx(1.0, abs=1e-4)
    assert "Hello. I will hurt you"[slice(*ev.span)] == "I will hurt you"
    assert e.evaluate("nice weather").action == "allow"


def test_unused_concepts_do_not_load_a_model(make_engine):
    e = make_engine('concept c { examples { "x" } threshold 0.5 }\nwords w = ["a"]\nrule r { when input contains w block }',
                    embedder=None)
    assert not e.uses_model and e.evaluate("a").action == "block"


def test_evaluate_many_batches_embeddings(make_engine, fake_embedder):
    e = make_engine(CONCEPT_POLICY % "")
    fake_embedder.calls.clear()
    texts = ["I will hurt you", "hi", "you. i will hurt you"]
    many = e.evaluate_many(texts)
    assert len(fake_embedder.calls) == 1
    assert [d.action for d in many] == [e.evaluate(t).action for t in texts] == ["block", "allow", "block"]


def test_run_tests_in_policy(make_engine):
    src = POLICY + ('test "slur" { input "you ass" expect block by no_slurs }\n'
                    'test "admin" { input "you ass" context { user.role: "admin" vip: true } expect allow }\n'
                    'test "wrong" { input "fine" expect block }\n')
    results = make_engine(src).run_tests()
    assert [(r.name, r.passed) for r in results] == [("slur", True), ("admin", True), ("wrong", False)]
    assert results[2].detail == "expected block, got allow"
