"""Bad input never crashes, hangs or passes silently: any str gets a decision; limits have a declared behaviour;
the CLI reads bytes and malformed JSONL lines one by one; a matcher that fails follows on_error."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import BrokenEmbedder
from policyengine.cli.main import main
from policyengine.engine import Engine, Limits

POLICY = '''
policy p { normalize [nfkc, casefold, invisible, confusables, leet, spacing, base64] }
words bad = ["bomb"]
pattern card = /\\b(?:\\d[ -]?){13,19}\\b/ validate luhn
concept weapons { examples { "how do I build a bomb" } counter { "how do I kill a python process" } threshold 0.7 }
rule no_bombs { when input contains bad or input similar weapons  block "no" }
rule cards { when input matches card  redact card }
'''

NASTY = {
    "empty": "",
    "blank": " \n\t ",
    "nul": "b\x00omb \x00\x00",
    "lone surrogates": "bo\ud800mb \udfff",
    "rtl override": "\u202ebmob\u202c a \u202ebomb",
    "100k emoji": "\U0001f4a3" * 100_000,
    "combining flood": "a" + "\u0301" * 50_000,
    "zero-width flood": "\u200b" * 100_000 + "bomb",
    "10 MB": "x" * 10_000_000,
    "base64 flood": "QUFB" * 50_000,
    "spaced flood": "a " * 100_000,
}


@pytest.fixture(scope="module")
def engine():
    from conftest import FakeEmbedder
    return Engine.from_source(POLICY, name="p.policy", embedder=FakeEmbedder())


@pytest.mark.parametrize("name", sorted(NASTY))
def test_any_text_gets_a_decision_quickly(engine, name):
    text = NASTY[name]
    t = time.perf_counter()
    d = engine.evaluate(text)
    assert time.perf_counter() - t < 20
    assert d.action in ("allow", "block", "redact", "flag")
    json.loads(d.to_json())  # serialisable even with lone surrogates
    d.explain()
    if "bomb" in text.replace("\x00", "").replace("\u200b", "") or name == "rtl override":
        assert d.action == "block"


def test_oversize_blocks_by_default_and_truncation_is_opt_in_with_a_note():
    from conftest import FakeEmbedder
    blocked = Engine.from_source(POLICY, name="p.policy", embedder=FakeEmbedder(), limits=Limits(max_input_chars=1000))
    d = blocked.evaluate("x" * 3000 + " bomb")
    assert d.action == "block" and d.rule is None and "max_input_chars" in d.errors[0].message
    cut = Engine.from_source(POLICY, name="p.policy", embedder=FakeEmbedder(),
                             limits=Limits(max_input_chars=1000, on_oversize="truncate"))
    d = cut.evaluate("x" * 3000 + " bomb")
    assert d.action == "allow"  # the bomb is past the limit: truncation was asked for, and the decision says so
    assert any("max_input_chars" in n and "2005 characters were not checked" in n for n in d.notes)


def test_default_limit_is_far_above_the_old_200k(engine):
    d = engine.evaluate("x" * 300_000 + " bomb")  # cut at 200,000 characters (allow) before the hard limit
    assert d.action == "block" and d.rule == "no_bombs" and not d.notes


def test_oversize_can_be_a_decision_of_its_own():
    from conftest import FakeEmbedder
    e = Engine.from_source(POLICY, name="p.policy", embedder=FakeEmbedder(),
                           limits=Limits(max_input_chars=1000, on_oversize="block"))
    d = e.evaluate("hello " * 1000)
    assert d.action == "block" and d.rule is None and d.errors and "max_input_chars" in d.errors[0].message
    assert e.evaluate("hello").action == "allow"


def test_limits_are_validated():
    with pytest.raises(ValueError):
        Limits(on_oversize="drop")
    with pytest.raises(ValueError):
        Limits(max_chunks=0)


def test_max_chunks_is_a_note_not_a_loop():
    from conftest import FakeEmbedder
    e = Engine.from_source(POLICY, name="p.policy", embedder=FakeEmbedder(), limits=Limits(max_chunks=5))
    d = e.evaluate("Hello there. " * 100)
    assert any("max_chunks" in n for n in d.notes)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_random_unicode_never_crashes(engine, text):
    d = engine.evaluate(text)
    for r in d.reasons:
        for ev in r.evidence:
            if ev.span is not None:
                assert 0 <= ev.span[0] <= ev.span[1] <= len(text)
                assert text[ev.span[0]:ev.span[1]] == ev.text


def test_failing_model_at_run_time_follows_on_error():
    for on_error, action in (("", "block"), ("on_error block", "block"), ("on_error allow", "allow")):
        emb = BrokenEmbedder()
        e = Engine.from_source(POLICY.replace("policy p {", "policy p { " + on_error, 1), name="p.policy", embedder=emb)
        emb.broken = True
        d = e.evaluate("hello there")
        assert d.action == action, on_error
        assert d.errors and "exploded" in d.errors[0].message
        assert e.evaluate("a b0mb").action == "block"  # the words still decide where they can


def test_cli_reads_bytes_and_keeps_going_after_bad_lines(tmp_path, capsys):
    pol = tmp_path / "p.policy"
    pol.write_text('words bad = ["bomb"]\nrule r { when input contains bad  block "no" }\n')
    data = tmp_path / "in.jsonl"
    data.write_bytes(b'{"text": "b0mb"}\n'
                     b'\xff\xfe not utf-8\n'
                     b'{"text": "fine"\n'
                     b'["not", "an", "object"]\n'
                     b'{"text": 42}\n'
                     b'{"text": "nul \\u0000 and \\ud800 surrogate"}\n'
                     b'{"text": "a bomb", "context": 3}\n'
                     b'{"text": "a bomb"}\n')
    code = main(["check", str(pol), "--input", str(data), "--format", "json"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 2  # some lines were bad
    assert all("action" in r for r in rows)  # line errors go to stderr, never among the decisions
    errors = {int(ln.split(":")[1]) for ln in err.splitlines() if ln.startswith(str(data) + ":")}
    assert errors == {2, 3, 4, 5, 7}
    decided = {r["id"]: r["action"] for r in rows}
    assert decided == {1: "allow", 6: "allow", 8: "block"}
    assert "in.jsonl:2:" in err and "not UTF-8" in err
