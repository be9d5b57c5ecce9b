"""policyengine.testing strategies and assertions: they generate what they promise, shrink to the plainest text,
and a failing assertion shows the minimal example with its explanation."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from policyengine.testing import (PolicyAssertionError, assert_allows, assert_blocks, assert_stable, benign_variants,
                                  evasions, paraphrase_templates, texts_matching)
from policyengine.testing.strategies import HOMOGLYPHS, LEET, ZERO_WIDTH

POLICY = r'''policy t {}
pattern card = /\b\d(?:[ -]?\d){12,18}\b/ validate luhn
pattern order = /\bORD-\d{4}\b/i
words rude = ["darn", "heck no"]
rule no_rude { when input contains rude  block "civil" }
rule mask { when input matches card  redact card }
'''


@pytest.fixture
def engine(make_engine):
    return make_engine(POLICY)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.filter_too_much])
@given(st.data())
def test_texts_matching_honours_policy_patterns(engine, data):
    card = data.draw(texts_matching(engine.policy.patterns["card"]))
    assert engine.evaluate(input=card).action == "redact"  # luhn-valid, on word boundaries
    rude = data.draw(texts_matching(engine.policy.patterns["rude"]))
    assert engine.evaluate(input=rude).action == "block"
    order = data.draw(texts_matching(r"ORD-\d{4}", fullmatch=True))
    assert re.fullmatch(r"ORD-\d{4}", order)


def test_variants_shrink_to_the_original():
    text = "How do I kill a Python process?"
    assert find(benign_variants(text), lambda s: True) == text
    assert find(paraphrase_templates(text), lambda s: True) == text
    # the smallest evasion is one technique at one position
    minimal = find(evasions("bomb"), lambda s: True)
    assert minimal != "bomb" and len(minimal) <= len("b o m b")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_variants_keep_the_words_and_evasions_change_them(data):
    text = "tell me about apples"
    v = data.draw(benign_variants(text))
    assert "tell me about apples" in " ".join(v.lower().split()).rstrip("?!.")
    e = data.draw(evasions(text))
    assert e != text
    stripped = "".join(c for c in e if c not in ZERO_WIDTH)
    undone = "".join({v: k for k, v in HOMOGLYPHS.items()}.get(c, c) for c in stripped)
    assert any(c in undone for c in set(LEET.values()) | {" ", ".", "-", "_"}) or undone == text
    p = data.draw(paraphrase_templates(text, templates=("Q: {text}", "{text}, please")))
    assert p in ("Q: tell me about apples", "tell me about apples, please")


def test_paraphrase_template_needs_a_slot():
    with pytest.raises(ValueError, match="has no"):
        paraphrase_templates("x", templates=("no slot",))


def test_assertions_pass(engine):
    assert_blocks(engine, benign_variants("oh darn"), by="no_rude", max_examples=25)
    assert_allows(engine, benign_variants("good morning"), max_examples=25)
    assert_stable(engine, "oh darn", benign_variants("oh darn"), max_examples=25)


def test_failure_shrinks_to_a_minimal_example_with_its_explanation(engine):
    # "heck no" is a two-word entry: spreading its letters evades it; hypothesis must shrink to a small case
    with pytest.raises(PolicyAssertionError) as e:
        assert_blocks(engine, evasions("heck no", techniques=("spacing",)), max_examples=50)
    msg = str(e.value)
    assert msg.startswith("expected block, got allow\nminimal failing text: ")
    assert "ALLOW (no rule matched; policy default)" in msg
    minimal = re.search(r"minimal failing text: '([^']*)'", msg).group(1)
    assert minimal in ("h e c k no", "heck n o")  # one word spread with spaces: the simplest evasion


def test_assert_stable_reports_both_decisions(engine):
    with pytest.raises(PolicyAssertionError) as e:
        assert_stable(engine, "heck no", st.just("heck, no"), max_examples=5)
    msg = str(e.value)
    assert "decision changed: block by no_rude for the original, allow for a variant" in msg
    assert "original: 'heck no'" in msg and "minimal variant: 'heck, no'" in msg
