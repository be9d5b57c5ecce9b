"""The one-pass regex prefilter never changes a decision: hypothesis against the plain path.

Two levels:
- PatternSet.scan(text) is a superset of the patterns Python's `re` finds a non-empty match for (random patterns
  built from the constructs that differ between engines, random texts full of the characters where Unicode rules
  differ: dotless i, long s, Kelvin sign, U+001C..U+001F, NEL, NBSP, other scripts' digits, combining marks).
- Engine(regex_engine="hyperscan") and Engine(regex_engine="re") give identical decisions (action, rule, every
  reason's evidence with its spans, redactions) on the default pack, including its normalised word lists.
"""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

hyperscan = pytest.importorskip("hyperscan")

from policyengine.engine import Engine  # noqa: E402
from policyengine.matchers import multiregex  # noqa: E402
from policyengine.matchers.multiregex import PatternSet, translate  # noqa: E402
from tests.conftest import FakeEmbedder  # noqa: E402

TRICKY = ("ıİſKkKsSiIéÉßẞµΜμ\u0345ιΙ\u1fbeǅǄǆ" "\x1c\x1d\x1e\x1f\x85\xa0\u2028\u2029\u3000\u200b\t\r\n\x0b\x0c"
          "٣٤۵߁१२\u0300\u0301🙂𝐀𝟘Ⅻⅻ½²_-.,;:!?@/\\$^()[]{}|*+'\"“”")
ALPHABET = st.sampled_from(list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + list(TRICKY))
WORDS = ["ignore", "previous", "instructions", "kid", "sex", "a@b.co", "4111 1111 1111 1111", "123-45-6789",
         "192.168.0.1", "+1 (555) 010-2030", "DE89370400440532013000", "system prompt", "DAN mode", "nude", "child",
         "print \"", "lyrics", "keylogger", "write", "without getting caught", "ıgnore", "KID", "ſex", "Ignore",
         "PREVİOUS", "ignore\x1cprevious", "teen", "years old"]

FRAGMENTS = [
    r"\b", r"\B", r"\w+", r"\W", r"\s+", r"\S", r"\d{2,4}", r"\D", r"[a-z]+", r"[^a-z ]", r"[^.?!\n]{0,40}",
    r"(?<!\w)", r"(?!\w)", r"(?<=a)", r"(?=\d)", r".", r"^", r"$", r"\A", r"\Z", r"(?:a|bc)", r"x{,3}", r"k",
    r"i", r"s", r"ı", r"ſ", r"K", r"é", r"ß", r"[ks]", r"[^i]", r"[\w-]", r"[\s\d]", r"ignore", r"previous",
    r"(?i:kid)", r"(?-i:Kid)", r"(?>ab|a)", r"a*+", r"\d+?", r"[İ-ı]", r"\x1c", r"\u2028", r"[\u00e0-\u00ff]",
    r"(?s:.)", r"(?m:^)", r"(?m:$)", r"[^\W\d]", r"(a)\1", r"(?P<g>x)(?P=g)", r"(?(1)a|b)",
]
FLAGS = st.sampled_from([0, re.I, re.M, re.S, re.I | re.M, re.I | re.S, re.I | re.M | re.S])


def _compiles(p: str, f: int) -> bool:
    try:
        re.compile(p, f)
    except re.error:
        return False
    return True


patterns = st.builds(lambda parts, flags: ("".join(parts), flags),
                     st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4), FLAGS).filter(lambda pf: _compiles(*pf))
texts = st.one_of(
    st.text(ALPHABET, max_size=60),
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(ALPHABET, max_size=4)), max_size=8).map(" ".join),
)


def _re_names(regexes: dict[str, re.Pattern[str]], text: str) -> set[str]:
    return {n for n, rx in regexes.items() if any(m.end() > m.start() for m in rx.finditer(text))}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns, min_size=1, max_size=6), st.lists(texts, min_size=1, max_size=6))
def test_scan_is_a_superset_of_re(pats: list[tuple[str, int]], samples: list[str]) -> None:
    regexes = {f"p{i}": re.compile(p, f) for i, (p, f) in enumerate(pats)}
    ps = PatternSet(regexes, engine="hyperscan")
    for text in samples:
        missing = _re_names(regexes, text) - ps.scan(text)
        assert not missing, {n: (regexes[n].pattern, regexes[n].flags, translate(regexes[n].pattern,
                                                                                   regexes[n].flags)) for n in missing}


@pytest.mark.parametrize("pattern, flags, text", [
    ("ignore previous", re.I, "IGNORE PREVıOUS"),          # dotless i equals i under re.I
    ("sex", re.I, "ſex"),                                   # long s
    ("kid", re.I, "Kid"),                                   # Kelvin sign
    (r"ignore\s+previous", 0, "ignore\x1cprevious"),        # Python's \s includes U+001C..U+001F
    (r"ignore\s+previous", 0, "ignore\u2028previous"),
    (r"\d{3}", 0, "١٢٣"),                                   # Arabic-Indic digits are \d in Python
    (r"x{,3}y", 0, "xxy"),                                  # {,n} is a repeat in Python, a literal in PCRE
    (r"(?<!\w)kid(?!\w)", re.I, "a KID."),
    (r"\bcafé\b", 0, "un café."),
    (r"(a)\1", 0, "aa"),                                    # backreference: falls back to re
    (r"^print", re.M, "x\nprint"),
    (r"end$", 0, "the end\n"),
    (r"a.b", re.S, "a\nb"),
    (r"[^\W\d_]+", 0, "ñandú"),
    (r"(?x) ignore \s+ all", 0, "ignore all"),
])
def test_known_differences_are_handled(pattern: str, flags: int, text: str) -> None:
    rx = re.compile(pattern, flags)
    assert rx.search(text)
    assert "p" in PatternSet({"p": rx}, engine="hyperscan").scan(text)


def test_fallbacks_are_reported_and_still_run() -> None:
    ps = PatternSet({"backref": re.compile(r"(\w)\1"), "cond": re.compile(r"(a)?(?(1)b|c)"),
                     "ascii": re.compile(r"(?a)\w+"), "ok": re.compile(r"hello")}, engine="hyperscan")
    reasons = {f.name: f.reason for f in ps.fallbacks}
    assert reasons == {"backref": "backreference", "cond": "conditional group", "ascii": "ASCII/LOCALE flag"}
    assert ps.scan("nothing here") == {"backref", "cond", "ascii"}
    assert ps.scan("hello") == {"backref", "cond", "ascii", "ok"}
    assert "3 on re" in ps.describe()


def test_surrogates_fall_back_to_every_pattern() -> None:
    ps = PatternSet({"a": re.compile("abc"), "b": re.compile("xyz")}, engine="hyperscan")
    assert ps.scan("abc") == {"a"}
    assert ps.scan("q\ud800") == {"a", "b"}


def test_re_engine_answers_every_pattern() -> None:
    ps = PatternSet({"a": re.compile("abc")}, engine="re")
    assert ps.engine == "re" and ps.scan("zzz") == {"a"}


def test_no_cased_code_point_above_the_scanned_limit() -> None:
    import _sre

    assert not any(_sre.unicode_iscased(cp) for cp in range(multiregex.CASED_LIMIT, sys.maxunicode + 1))


def test_default_pack_compiles_without_fallback() -> None:
    eng = Engine.from_path("policies/default.policy", embedder=FakeEmbedder(), regex_engine="hyperscan")
    assert eng.scanner is not None and eng.scanner.engine == "hyperscan"
    assert eng.scanner.fallbacks == ()


# ---- decisions: the default pack, fast path vs plain path -------------------------------------------------------

_ENGINES: dict[str, Engine] = {}


def _engine(kind: str) -> Engine:
    if kind not in _ENGINES:
        _ENGINES[kind] = Engine.from_path("policies/default.policy", embedder=FakeEmbedder(), regex_engine=kind)
    return _ENGINES[kind]


def _view(d) -> dict:  # type: ignore[no-untyped-def]
    return d.model_dump(mode="json")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(texts, min_size=1, max_size=4))
def test_default_pack_decisions_identical(samples: list[str]) -> None:
    fast, plain = _engine("hyperscan"), _engine("re")
    for text in samples:
        assert _view(fast.evaluate(input=text)) == _view(plain.evaluate(input=text)), text
    assert [_view(d) for d in fast.evaluate_many(samples)] == [_view(d) for d in plain.evaluate_many(samples)]


def test_data_decisions_identical() -> None:
    """Every PII row of the shared data (real spans of e-mails, cards, phones, IBANs) decides the same."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "presidio_pii.jsonl"
    if not path.is_file():
        pytest.skip("shared data not present")
    rows = [json.loads(line)["text"] for line in path.open(encoding="utf-8")][:400]
    fast, plain = _engine("hyperscan"), _engine("re")
    assert [_view(d) for d in fast.evaluate_many(rows)] == [_view(d) for d in plain.evaluate_many(rows)]
