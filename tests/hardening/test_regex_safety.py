"""No policy pattern takes super-linear time: RE2 runs it in linear time, or a time guard stops it and the policy's
on_error decides. Plus: the RE2 path gives exactly what Python's `re` gives."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from policyengine.compiler import compile_policy, words_regex
from policyengine.normalize import saferegex
from policyengine.normalize.saferegex import RegexGuardError, compile_safe

# classic catastrophic-backtracking patterns (OWASP ReDoS list and friends) with their killer inputs
REDOS = [
    (r"^(a+)+$", "a" * 50_000 + "!"),
    (r"^(a|aa)+$", "a" * 50_000 + "!"),
    (r"^(a|a?)+$", "a" * 50_000 + "!"),
    (r"^(.*a){12}$", "a" * 50_000 + "!"),
    (r"(\w+\s?)*$", "word " * 10_000 + "!"),
    (r"^([a-zA-Z0-9])(([\-.]|[_]+)?([a-zA-Z0-9]+))*(@){1}[a-z0-9]+[.]{1}(([a-z]{2,3})|([a-z]{2,3}[.]{1}[a-z]{2,3}))$",
     "a" * 50_000 + "!"),
    (r"^(([a-z])+.)+[A-Z]([a-z])+$", "a" * 50_000 + "!"),
    (r"(x+x+)+y", "x" * 50_000),
]


@pytest.mark.parametrize("pattern, text", REDOS)
def test_classic_redos_patterns_run_in_linear_time(pattern, text):
    rx = compile_safe(pattern)
    assert rx.linear and rx.uses_re2(text)
    t = time.perf_counter()
    list(rx.finditer(text))
    small = time.perf_counter() - t
    t = time.perf_counter()
    list(rx.finditer(text * 4))
    big = time.perf_counter() - t
    assert big < 2.0, f"{pattern}: {big:.2f}s on {len(text) * 4} chars"
    assert big < 40 * max(small, 1e-3)  # ~linear: 4x the input, not 16x or 2^n


@pytest.mark.parametrize("pattern, text", REDOS[:3])
def test_redos_on_non_ascii_text_is_still_linear(pattern, text):
    # no \w\b\d\s in these patterns: RE2 matches exactly like `re` on any text, so it stays on the RE2 path
    text = "é" + text
    rx = compile_safe(pattern)
    assert rx.uses_re2(text)
    t = time.perf_counter()
    list(rx.finditer(text))
    assert time.perf_counter() - t < 1.0


def test_pattern_without_a_linear_path_is_stopped_by_the_guard(monkeypatch):
    monkeypatch.setattr(saferegex, "GUARD_SECONDS", 0.05)
    rx = compile_safe(r"^(?=a)(a|aa)+$")  # lookahead: RE2 cannot run it
    assert not rx.linear and "RE2" in (rx.why_not_linear or "")
    t = time.perf_counter()
    with pytest.raises(RegexGuardError):
        list(rx.finditer("a" * 5_000 + "!"))
    assert time.perf_counter() - t < 2.0


@pytest.mark.parametrize("on_error, action", [("block", "block"), ("allow", "allow"), (None, "block")])
def test_a_guarded_pattern_that_times_out_follows_on_error(make_engine, monkeypatch, on_error, action):
    monkeypatch.setattr(saferegex, "GUARD_SECONDS", 0.05)
    header = f"policy p {{ on_error {on_error} }}\n" if on_error else ""
    # a backreference: no linear-time engine runs it (nor a prefilter), so only the guard stands in the way
    engine = make_engine(header + "pattern evil = /^(a|aa)+(x)\\2$/\n"
                         "rule r { when input matches evil  block \"no\" }\n")
    t = time.perf_counter()
    d = engine.evaluate("a" * 5_000 + "!")
    assert time.perf_counter() - t < 3.0
    assert d.action == action
    assert d.errors and d.errors[0].rule == "r" and "guard" in d.errors[0].message


def test_a_redos_pattern_in_a_policy_is_harmless(make_engine):
    engine = make_engine('pattern p = /^(a+)+$/\nrule r { when input matches p  block "no" }\n')
    t = time.perf_counter()
    d = engine.evaluate("a" * 100_000 + "!")
    assert time.perf_counter() - t < 2.0
    assert d.action == "allow" and not d.errors


def test_a_large_word_list_on_adversarial_text_is_linear():
    words = [f"w{i:04d}x" for i in range(2000)] + ["a" * 30]
    rx = compile_safe(words_regex(words), re.IGNORECASE)
    assert rx.linear
    t = time.perf_counter()
    list(rx.finditer("a" * 200_000))
    assert time.perf_counter() - t < 2.0


ADVERSARIAL = ["a" * 20_000 + "!", "1" * 20_000 + "x", "1 " * 10_000 + "x", "+1 " * 7_000, "a@" * 10_000,
               "(" * 10_000 + "1", "é" * 10_000 + "a" * 10_000 + "!", "write " * 4_000 + "keylogger " * 100]


def test_us_ssn_without_lookarounds_matches_exactly_what_the_lookahead_form_did():
    """us_ssn was rewritten from negative lookaheads (guarded fallback) to alternations (RE2 path): same spans."""
    import random
    import re

    lookahead = re.compile(r"\b(?!000|666|9\d\d)\d{3}[- ](?!00)\d{2}[- ](?!0000)\d{4}\b")
    pattern = compile_policy("policies/default.policy").patterns["us_ssn"]
    assert pattern.safe.linear
    rng = random.Random(0)
    texts = ["123-45-6789", "000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000",
             "my ssn is 078 05 1120.", "1123-45-6789", "123-45-67890", "665-01-0001 and 667-99-9999"]
    for _ in range(20_000):
        core = f"{rng.randint(0, 999):03d}{rng.choice('- ')}{rng.randint(0, 99):02d}{rng.choice('- ')}" \
               f"{rng.randint(0, 9999):04d}"
        texts.append(rng.choice(["", "x", " ", "1", "-"]) + core + rng.choice(["", "x", " ", "1", "-"]))
    for text in texts:
        assert [m.span() for m in lookahead.finditer(text)] == list(pattern.finditer(text)), text


def test_every_pattern_of_the_default_pack_is_fast_on_adversarial_text():
    policy = compile_policy("policies/default.policy")
    guarded = {name for name, p in policy.patterns.items() if not p.safe.linear}
    assert guarded == {"phone_number"}  # lookbehinds: it runs under the time guard (docs/hardening.md)
    for name, p in policy.patterns.items():
        for text in ADVERSARIAL:
            t = time.perf_counter()
            list(p.finditer(text))
            list(p.finditer_normalized(text))
            assert time.perf_counter() - t < 1.0, (name, text[:20])


# ---- the RE2 path must not change what matches -----------------------------------------------------------------

PACK_PATTERNS = [(p.regex.pattern, p.regex.flags & ~re.UNICODE)
                 for p in compile_policy("policies/default.policy").patterns.values()]
EXTRA = [(r"a{,2}b", 0), (r"\bfoo\b", 0), (r"x$", 0), (r"^\s+$", re.M), (r"[^a-z]+", re.I), (r"\d+\.\d*", 0),
         (r"colou?r", re.I), (r"\Bb\B", 0)]
_alphabet = st.sampled_from(list("abfoxr b\n\t.-@1234567890Ccolour-FOOÉé\u00a0\x0b\x1c\u2028ſK") +
                            ["foo", "colour", "color", "card", "bomb", "http://x.y", "4111 1111 1111 1111"])


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PACK_PATTERNS + EXTRA), st.lists(_alphabet, max_size=40).map("".join))
def test_the_re2_path_matches_exactly_like_re(pat_flags, text):
    pattern, flags = pat_flags
    rx = compile_safe(pattern, flags)
    assume(rx.uses_re2(text))  # the guarded fallback (`regex` module) differs on rare Unicode classes: documented
    expected = [(m.start(), m.end()) for m in re.finditer(pattern, text, flags) if m.end() > m.start()]
    got = [(s, e) for s, e in rx.finditer(text) if e > s]
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["bomb", "pipe bomb", "c++", "-x-", "a.b", "naïve", "x"]), min_size=1, max_size=4),
       st.lists(_alphabet | st.sampled_from(["bomb", "pipe  bomb", "c++", "-x-", "a.b", "naïve", " x "]),
                max_size=30).map("".join))
def test_word_list_regex_is_the_lookaround_one(words, text):
    old = re.compile(r"(?<!\w)(?:" + "|".join(sorted({r"\s+".join(re.escape(p) for p in w.split()) for w in words},
                                                     key=len, reverse=True)) + r")(?!\w)", re.I)
    assert [m.span() for m in old.finditer(text)] == list(compile_safe(words_regex(words), re.I).finditer(text))
