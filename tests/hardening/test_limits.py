"""Fail-closed limits (docs/hardening.md, "Bad input and limits"): regex, word-list and redaction rules scan the
whole message; concepts see a bounded sample of chunks and the decision says what they did not see; past the hard
limit a message is blocked unless truncation is asked for; huge policy files and literals are compile errors."""

from __future__ import annotations

import random
import time

import pytest

from conftest import BrokenEmbedder, FakeEmbedder
from policyengine.chunking import chunk_text, sample_spans
from policyengine.compiler import MAX_LITERAL_CHARS, MAX_POLICY_CHARS, compile_policy
from policyengine.diagnostics import PolicyError
from policyengine.engine import Engine, Limits
from policyengine.evaluator import sample_note

CARD = "4111 1111 1111 1111"  # Luhn-valid test number
# the default pack's card pattern (policies/pii.policy)
POLICY = '''
pattern card_number = /\\b(?:\\d[ -]?){12,18}\\d\\b/ validate luhn
words bad = ["detonator"]
concept weapons { examples { "how do I build a pipe bomb at home" } threshold 0.9 }
rule no_weapons { when input contains bad or input similar weapons  block "no" }
rule redact_card { when input matches card_number  redact card_number with "[CARD]" }
'''


def long_text(chars: int, seed: int = 0) -> str:
    rnd = random.Random(seed)
    words = "the report meeting budget quarter we will discuss plan next week team customer order".split()
    parts, n = [], 0
    while n < chars:
        s = " ".join(rnd.choice(words) for _ in range(rnd.randint(5, 20))).capitalize() + ". "
        parts.append(s)
        n += len(s)
    return "".join(parts)[:chars]


def at(text: str, pos: int, insert: str) -> str:
    return text[:pos] + " " + insert + " " + text[pos:]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_source(POLICY, name="p.policy", embedder=FakeEmbedder())


def test_card_at_600k_of_a_1mb_message_is_redacted(engine):
    text = at(long_text(1_000_000), 600_000, f"my card is {CARD}")[:1_000_000]
    d = engine.evaluate(text)
    assert d.action == "redact" and d.rule == "redact_card"
    assert CARD not in d.redacted and "my card is [CARD]" in d.redacted
    assert len(d.redacted) == len(text) - len(CARD) + len("[CARD]")
    ev = d.reasons[0].evidence[0]
    assert ev.span[0] > 600_000 and text[ev.span[0]:ev.span[1]] == CARD
    # concepts were compared on a sample: the note says how much they did not see
    assert any("concepts were compared on 256 of" in n and "not compared" in n for n in d.notes)


@pytest.mark.model
def test_card_at_600k_is_redacted_by_the_default_pack():
    """The target of issue 21: with the shipped pack and its real model, a 1 MB message is decided whole."""
    e = Engine.from_path("policies/default.policy")
    text = at(long_text(1_000_000), 600_000, f"my card is {CARD}")[:1_000_000]
    t = time.perf_counter()
    d = e.evaluate(text)
    assert time.perf_counter() - t < 30  # ~1.8 s on the shared 2-core machine
    assert d.action == "redact" and d.rule == "redact_card"
    assert CARD not in d.redacted and "[CARD]" in d.redacted
    assert any("concepts were compared on" in n for n in d.notes)


def test_a_word_near_the_end_of_a_long_message_blocks(engine):
    d = engine.evaluate(long_text(1_500_000) + " where do I buy a detonator")
    assert d.action == "block" and d.rule == "no_weapons"


def test_concepts_see_the_end_of_a_long_message(engine):
    """The sample always includes the last chunk: a request appended after filler is still compared."""
    text = long_text(200_000) + "\nhow do I build a pipe bomb at home"
    chunks, total = chunk_text(text, 256)
    assert total > 256 and len(chunks) == 256 and chunks[-1].text == "how do I build a pipe bomb at home"
    d = engine.evaluate(text)
    assert d.action == "block" and d.rule == "no_weapons"
    assert d.reasons[0].evidence[0].span[1] == len(text)


def test_sample_is_the_start_then_evenly_spread_with_the_last_included():
    spans = [(i, i + 1) for i in range(1000)]
    assert sample_spans(spans[:10], 10) == spans[:10]
    got = sample_spans(spans, 10)
    assert got[:5] == spans[:5] and got[-1] == spans[-1] and len(set(got)) == 10 and got == sorted(got)
    gaps = [b[0] - a[0] for a, b in zip(got[5:], got[6:])]
    assert max(gaps) - min(gaps) <= 1  # evenly spread
    assert sample_spans(spans, 1) == spans[:1]
    assert sample_spans(spans, 2) == [spans[0], spans[-1]]
    short, total = chunk_text("One. Two. Three.", 256)
    assert total == len(short) == 4  # three sentences and the whole message, as before
    assert "5 chunks were not compared" in sample_note("input", 5, 10, 5)


def test_past_the_hard_limit_nothing_is_embedded_and_the_decision_blocks():
    e = Engine.from_source(POLICY, name="p.policy", embedder=BrokenEmbedder(), limits=Limits(max_input_chars=10_000))
    for d in (e.evaluate("hello " * 5000), e.evaluate_many(["hello " * 5000])[0]):
        assert d.action == "block" and d.rule is None
        assert "max_input_chars" in d.errors[0].message and "blocked without evaluation" in d.notes[0]


def test_default_limits():
    assert (Limits().max_input_chars, Limits().max_chunks, Limits().on_oversize) == (2_000_000, 256, "block")


def test_a_huge_policy_file_is_a_compile_error_quickly(tmp_path):
    p = tmp_path / "huge.policy"
    p.write_text('words w = ["' + "a" * 3_000_000 + '"]\nrule r { when input contains w block }\n')
    t = time.perf_counter()
    with pytest.raises(PolicyError) as info:
        compile_policy(p)
    assert time.perf_counter() - t < 5  # was 33 s and 830 MB before the limit
    (d,) = info.value.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E0010", 1, MAX_POLICY_CHARS + 1)
    rendered = info.value.render()
    assert "3,000,054 characters, more than the limit of 1,000,000" in rendered
    assert max(len(line) for line in rendered.splitlines()) < 200  # the excerpt is a window, not the 3 MB line


def test_an_imported_file_over_the_limit_is_reported_at_its_own_file(tmp_path):
    (tmp_path / "big.policy").write_text("# " + "x" * MAX_POLICY_CHARS + "\n")
    (tmp_path / "main.policy").write_text('import "big.policy"\nrule r { when input matches p block }\n'
                                          "pattern p = /x/\n")
    with pytest.raises(PolicyError) as info:
        compile_policy(tmp_path / "main.policy")
    assert [d.code for d in info.value.diagnostics] == ["E0010"]
    assert info.value.diagnostics[0].span.file.endswith("big.policy")


def test_a_long_entry_in_a_word_list_file_is_a_compile_error(tmp_path):
    (tmp_path / "w.txt").write_text("fine\n" + "a" * (MAX_LITERAL_CHARS + 1) + "\n")
    (tmp_path / "main.policy").write_text('words w = file "w.txt"\nrule r { when input contains w block }\n')
    with pytest.raises(PolicyError) as info:
        compile_policy(tmp_path / "main.policy")
    (d,) = info.value.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E0011", 1, 16)
    assert "has an entry of 10,001 characters" in d.message


def test_literals_at_the_limit_compile():
    words = '"' + "a" * MAX_LITERAL_CHARS + '"'
    p = compile_policy(text=f"words w = [{words}]\npattern p = /{'b' * MAX_LITERAL_CHARS}/\n"
                            "rule r { when input contains w or input matches p block }", name="x.policy")
    assert set(p.patterns) == {"w", "p"}
