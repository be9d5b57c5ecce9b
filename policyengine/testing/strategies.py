"""Hypothesis strategies for testing policies: texts a pattern matches, meaning-preserving variants of a message,
evasions of it, and paraphrase templates around it. Every strategy shrinks towards the plainest text (the
original message with no change), so a failing case is reported in its simplest form."""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from hypothesis import strategies as st

__all__ = ["texts_matching", "benign_variants", "evasions", "paraphrase_templates", "PARAPHRASE_TEMPLATES",
           "HOMOGLYPHS", "ZERO_WIDTH", "LEET"]

# ---- texts_matching ---------------------------------------------------------------------------------------------


def texts_matching(pattern: Any, *, fullmatch: bool = False, alphabet: Any = None) -> st.SearchStrategy[str]:
    """Texts in which `pattern` finds a match.

    `pattern` is a regex string, a compiled `re.Pattern`, or a compiled policy pattern / word list
    (`engine.policy.patterns["card_number"]`), whose flags, word boundaries and validator (e.g. luhn) are then
    honoured: only texts in which the policy's pattern really matches are produced.
    """
    finder: Callable[[str], bool]
    if hasattr(pattern, "finditer") and hasattr(pattern, "source_text"):  # CompiledPattern
        compiled = pattern.regex
        policy_pattern = pattern

        def finder(t: str) -> bool:
            return next(policy_pattern.finditer(t), None) is not None
    else:
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern

        def finder(t: str) -> bool:
            m = compiled.fullmatch(t) if fullmatch else compiled.search(t)
            return m is not None and (fullmatch or m.end() > m.start())

    kw = {"alphabet": alphabet} if alphabet is not None else {}
    core = st.from_regex(compiled, fullmatch=True, **kw)
    if fullmatch:
        return core.filter(finder)
    # the match inside ordinary surroundings (kept simple so word boundaries hold and shrinking stays readable)
    return st.tuples(st.sampled_from(SURROUNDINGS[0]), core, st.sampled_from(SURROUNDINGS[1])) \
        .map("".join).filter(finder)


SURROUNDINGS = (("", "see ", "so: ", "my text "), ("", " ok", ".", " thanks"))


# ---- benign variants --------------------------------------------------------------------------------------------

POLITE_PREFIXES = ("", "please ", "Please, ", "hi! ", "Hello, ", "could you tell me: ", "quick question: ",
                   "hey, ", "sorry to bother you, ")
POLITE_SUFFIXES = ("", " please", " thanks", " thank you!", " :)", " (asking for a friend)")


def _case(text: str, how: str) -> str:
    return {"same": text, "lower": text.lower(), "upper": text.upper(), "title": text.title(),
            "capitalize": text[:1].upper() + text[1:]}[how]


def _spaces(text: str, how: str) -> str:
    if how == "same":
        return text
    words = text.split()
    if how == "double":
        return "  ".join(words)
    if how == "tabs":
        return "\t".join(words)
    if how == "newline-end":
        return " ".join(words) + "\n"
    if how == "padded":
        return "  " + " ".join(words) + "  "
    return text


def _punct(text: str, how: str) -> str:
    core = text.rstrip(" .!?")
    trail = text[len(core):]
    return {"same": text, "none": core, "question": core + "?", "bang": core + "!", "period": core + ".",
            "many": core + (trail.strip() or "?") * 3}[how]


def benign_variants(text: str) -> st.SearchStrategy[str]:
    """Variants of `text` with the same meaning: letter case, whitespace, end punctuation, polite framing.
    Shrinks to `text` itself. Use with assert_stable(): a decision should not flip on any of these."""
    return st.builds(
        lambda c, s, p, pre, suf: pre + _spaces(_punct(_case(text, c), p), s) + suf,
        st.sampled_from(["same", "lower", "upper", "title", "capitalize"]),
        st.sampled_from(["same", "double", "tabs", "newline-end", "padded"]),
        st.sampled_from(["same", "none", "question", "bang", "period", "many"]),
        st.sampled_from(POLITE_PREFIXES), st.sampled_from(POLITE_SUFFIXES))


# ---- evasions -------------------------------------------------------------------------------------------------

HOMOGLYPHS = {"a": "а", "c": "с", "e": "е", "i": "і", "o": "о", "p": "р", "s": "ѕ", "x": "х", "y": "у",
              "A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М", "O": "О", "P": "Р", "T": "Т"}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "l": "1", "b": "8", "g": "9"}


def _evade(text: str, technique: str, positions: Sequence[int], extra: int) -> str:
    idx = [i for i, ch in enumerate(text) if not ch.isspace()]
    if not idx:
        return text
    chosen = sorted({idx[p % len(idx)] for p in positions})
    chars = list(text)
    if technique == "homoglyphs":
        for i in chosen:
            chars[i] = HOMOGLYPHS.get(chars[i], chars[i])
    elif technique == "leetspeak":
        for i in chosen:
            chars[i] = LEET.get(chars[i].lower(), chars[i])
    elif technique == "zero-width":
        for i in reversed(chosen):
            chars.insert(i + 1, ZERO_WIDTH[extra % len(ZERO_WIDTH)])
    elif technique == "spacing":  # spread the letters of some words: "b o m b"
        words = text.split(" ")
        targets = sorted({p % len(words) for p in positions})
        sep = (" ", ".", "-", "_")[extra % 4]
        for w in targets:
            words[w] = sep.join(words[w])
        return " ".join(words)
    return "".join(chars)


def evasions(text: str, techniques: Sequence[str] = ("homoglyphs", "zero-width", "leetspeak", "spacing"),
             ) -> st.SearchStrategy[str]:
    """Obfuscated forms of `text` a determined user might send: Cyrillic homoglyphs, zero-width characters,
    leetspeak, letters spread out with spaces or dots. Each draw applies one or more techniques at some positions;
    it shrinks towards a single technique at a single position."""
    one = st.tuples(st.sampled_from(list(techniques)), st.lists(st.integers(0, 10_000), min_size=1, max_size=8),
                    st.integers(0, 3))

    def apply(steps: list[tuple[str, list[int], int]]) -> str:
        out = text
        for tech, pos, extra in steps:
            out = _evade(out, tech, pos, extra)
        return out

    return st.lists(one, min_size=1, max_size=3).map(apply).filter(lambda t: t != text)


# ---- paraphrases ----------------------------------------------------------------------------------------------

PARAPHRASE_TEMPLATES: tuple[str, ...] = (
    "{text}",
    "{text}?",
    "Can you tell me {text}",
    "I was wondering, {text}",
    "Quick question: {text}",
    "My friend asked me this and I didn't know what to say: {text}",
    "I need an answer to this: {text}",
    "Be honest with me. {text}",
    "{text} Please answer in detail.",
    "Hi there! {text} Thanks in advance.",
)


def paraphrase_templates(text: str, templates: Sequence[str] = PARAPHRASE_TEMPLATES) -> st.SearchStrategy[str]:
    """`text` inside conversational framings ("Can you tell me {text}", ...), first letter lower-cased where it
    follows a framing. Shrinks to the first template ("{text}": the message itself). Pass your own `templates`
    (each with one `{text}`) for a domain."""
    for t in templates:
        if "{text}" not in t:
            raise ValueError(f"template {t!r} has no {{text}}")

    def fill(t: str) -> str:
        inner = text
        if not t.startswith("{text}") and inner[:1].isupper() and inner[1:2].islower():
            inner = inner[:1].lower() + inner[1:]
        return t.replace("{text}", inner)

    return st.sampled_from(list(templates)).map(fill)
