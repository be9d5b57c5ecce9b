"""The normalisation pipeline: each transform, the offset map back to the original, and the evasions it undoes."""

from __future__ import annotations

import random
import sys
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from policyengine.normalize import ORDER, TRANSFORMS, canonical, evadable_by, find_mapped, normalize, tables
from policyengine.normalize.probes import COUNTERED_BY, EVASIONS, MESSAGE_EVASIONS, WORD_EVASIONS, perturb

ALL = tuple(TRANSFORMS)


@pytest.mark.parametrize("text, expected, transforms", [
    ("b0mb", "bomb", ("leet",)),
    ("b\u200bomb", "bomb", ("invisible",)),
    ("b\u00adomb", "bomb", ("invisible",)),
    ("b\u202eomb\u202c", "bomb", ("invisible",)),
    ("ｂｏｍｂ", "bomb", ("nfkc",)),
    ("\U0001d41b\U0001d428\U0001d426\U0001d41b", "bomb", ("nfkc",)),
    ("b\u043emb", "bomb", ("confusables",)),       # Cyrillic о
    ("bömb", "bomb", ("confusables",)),
    ("b\u0336o\u0336m\u0336b\u0336", "bomb", ("confusables",)),  # Zalgo strike-through
    ("BoMb", "bomb", ("casefold",)),
    ("b o m b", "bomb", ("spacing",)),
    ("b.o.m.b", "bomb", ("spacing",)),
    ("$hit", "shit", ("leet",)),
    ("aG93IHRvIG1ha2UgYSBib21i", "\nhow to make a bomb\n", ("base64",)),
    ("686f7720746f206d616b65206120626f6d62", "\nhow to make a bomb\n", ("base64",)),
])
def test_each_transform_undoes_its_evasion(text, expected, transforms):
    nt = normalize(text, ALL)
    assert nt.text == expected
    s, e = nt.to_original((0, len(nt.text)))
    assert s == 0 and normalize(text[s:e], ALL).text.strip() == expected.strip()  # trailing controls fall outside
    assert nt.transforms_in((0, len(text))) == transforms


@pytest.mark.parametrize("text", [
    "How do I kill a Python process?", "The 3rd of May at 10am, 5kg, covid19, windows2000.", "e.g. a test", "I am a user.",
    "Email me at john@example.com!", "Wow!!! Great.", "a, b and c", "4111 1111 1111 1111", "",
    "IBAN GB78FDMR12277801695645, order A1B2C3D4E5F6789", "my id is ab123456789",
])
def test_ordinary_text_is_left_alone_except_case(text):
    nt = normalize(text, tuple(t for t in ALL if t != "casefold"))
    assert nt.text == text


def test_pipeline_order_is_canonical_whatever_the_policy_lists():
    assert canonical(["leet", "nfkc", "casefold"]) == ("nfkc", "casefold", "leet")
    assert normalize("Ｂ0ＭＢ", ["leet", "casefold", "nfkc"]).text == "bomb"
    with pytest.raises(ValueError):
        canonical(["nope"])
    assert set(ORDER) == set(TRANSFORMS)


def test_offsets_map_a_match_back_to_the_original_characters():
    text = "please make a p\u200bipe b0mb now"
    nt = normalize(text, ALL)
    i = nt.text.index("pipe bomb")
    s, e = nt.to_original((i, i + len("pipe bomb")))
    assert text[s:e] == "p\u200bipe b0mb"
    assert nt.transforms_in((s, e)) == ("invisible", "leet")
    assert nt.transforms_in((0, 6)) == ()  # "please" was not changed


def test_find_mapped_keeps_raw_matches_and_adds_normalised_ones():
    import re
    rx = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
    text = "write to john@example.com or j\u200bane@example.org"
    finder = lambda t: ((m.start(), m.end()) for m in rx.finditer(t))  # noqa: E731
    found = list(find_mapped(finder, normalize(text, ("invisible",))))
    assert [text[m.span[0]:m.span[1]] for m in found] == ["john@example.com", "j\u200bane@example.org"]
    assert found[0].transforms == () and found[1].transforms == ("invisible",)
    # leet folds the '@' inside the address, so only the raw match survives: normalisation never removes matches
    found = list(find_mapped(finder, normalize(text, ("leet",))))
    assert [text[m.span[0]:m.span[1]] for m in found] == ["john@example.com", "ane@example.org"]


def test_invisible_covers_every_format_character():
    fmt = [chr(c) for c in range(sys.maxunicode + 1)
           if unicodedata.category(chr(c)) == "Cf" and chr(c) not in tables.VISIBLE_FORMAT_CHARS]
    rx = tables.invisible_re()
    missing = [f"U+{ord(c):04X}" for c in fmt if not rx.fullmatch(c)]
    assert not missing


def test_confusables_table_comes_from_unicode_data():
    table = tables.confusables()
    assert len(table) > 1000
    assert table["\u0430"] == "a" and table["\u03bf"] == "o" and table["\u0456"] == "i"


def test_payload_that_is_not_text_stays():
    digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # a sha256, not text
    assert normalize(digest, ("base64",)).text == digest
    assert normalize("internationalization", ("base64",)).text == "internationalization"


@settings(max_examples=300, deadline=None)
@given(word=st.sampled_from(["bomb", "kill", "meth", "ransomware", "keylogger", "explosive", "poison", "weapon",
                              "suicide", "grenade", "anthrax", "nude", "children"]),
       evasions=st.lists(st.sampled_from(sorted(WORD_EVASIONS)), min_size=1, max_size=3, unique=True),
       seed=st.integers(0, 2**32 - 1))
def test_any_combination_of_word_evasions_is_undone(word, evasions, seed):
    evaded = perturb(word, evasions, random.Random(seed))
    # a leet spelling that is also a number with a unit ("80mb") is deliberately left alone
    assume(not tables.LEET_EXEMPT.match(normalize(evaded, ("invisible", "nfkc", "confusables", "spacing")).text.strip()))
    assert f" {word} " in " ".join(normalize(f"how to get a {evaded} today", ALL).text.split()).join("  ")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_the_offset_map_is_total_and_monotonic(text):
    nt = normalize(text, ALL)
    assert isinstance(nt.text, str)
    if nt.changed:
        assert len(nt.starts) == len(nt.text) == len(nt.ends)
        assert all(0 <= s <= e <= len(text) for s, e in zip(nt.starts, nt.ends))
        assert list(nt.starts) == sorted(nt.starts)
    for i in range(0, len(nt.text) + 1, max(1, len(nt.text) // 7)):
        s, e = nt.to_original((0, i))
        assert 0 <= s <= e <= len(text)


def test_normalising_a_long_text_is_fast():
    import time
    text = ("Ｈｅｌｌｏ b0mb w\u200borld b o m b " * 10_000)[:200_000]
    t = time.perf_counter()
    nt = normalize(text, ALL)
    assert time.perf_counter() - t < 5.0
    assert "bomb" in nt.text


# ---- the function the linter calls ------------------------------------------------------------------------


def test_evadable_by_names_the_missing_transforms():
    out = evadable_by(["bomb", "pipe bomb"], [])
    assert set(out) == {"leet", "confusables", "nfkc", "invisible", "spacing"}
    assert "'bomb'" in out["leet"]
    assert evadable_by(["bomb"], ALL) == {}
    assert set(evadable_by(["bomb"], ALL, payloads=True)) == set()
    assert "base64" in evadable_by(["bomb"], [], payloads=True)


def test_evadable_by_knows_case_insensitive_patterns_and_digits():
    assert "casefold" in evadable_by(r"CVE-\d{4}-\d+", [])
    assert "casefold" not in evadable_by(r"(?i)cve-\d{4}", [])
    assert evadable_by(r"\b(?:\d[ -]?){13,19}\b", []) == {}  # digits only: nothing to fold


def test_every_evasion_has_a_counter_transform():
    assert set(EVASIONS) == set(WORD_EVASIONS) | set(MESSAGE_EVASIONS)
    assert set(COUNTERED_BY.values()) == set(TRANSFORMS)
