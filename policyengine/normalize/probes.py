"""Evasions (the attacker's side of each transform) and `evadable_by`, which the linter calls.

Every evasion rewrites a word the way people do to slip past filters; `COUNTERED_BY` names the transform that
undoes it. The evasion suite (benchmarks/evasion.py, tests/hardening) and the linter share these functions."""

from __future__ import annotations

import base64
import random
import re
from typing import Callable, Sequence

from . import normalize as _normalize

try:  # Python >= 3.11
    from re import _constants as sc  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as sc  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

_CYRILLIC = {"a": "а", "c": "с", "e": "е", "i": "і", "o": "о", "p": "р", "x": "х", "y": "у", "s": "ѕ", "j": "ј",
             "A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "I": "І", "K": "К", "M": "М", "O": "О", "P": "Р",
             "T": "Т", "X": "Х", "Y": "У"}
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "b": "8", "g": "9"}
_DIACRITIC = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü", "n": "ñ", "c": "ç", "y": "ý"}


def _each_letter(word: str, f: Callable[[str], str], rng: random.Random | None, p: float = 0.6) -> str:
    out = []
    changed = False
    for c in word:
        if c.isalpha() and (rng is None or rng.random() < p):
            d = f(c)
            changed |= d != c
            out.append(d)
        else:
            out.append(c)
    if not changed:  # make sure the word actually changes when it can
        for k, c in enumerate(word):
            if c.isalpha() and f(c) != c:
                out[k] = f(c)
                break
    return "".join(out)


def _between(sep: str) -> Callable[[str, random.Random | None], str]:
    def go(word: str, rng: random.Random | None) -> str:
        if len(word) < 2:
            return word
        inner = [k for k in range(1, len(word)) if word[k - 1].isalnum() and word[k].isalnum()] or [len(word) // 2]
        k = rng.choice(inner) if rng else inner[len(inner) // 2]
        return word[:k] + sep + word[k:]
    return go


def leet(word: str, rng: random.Random | None = None) -> str:
    return _each_letter(word, lambda c: _LEET.get(c.lower(), c), rng)


def homoglyph(word: str, rng: random.Random | None = None) -> str:
    return _each_letter(word, lambda c: _CYRILLIC.get(c, c), rng)


def diacritics(word: str, rng: random.Random | None = None) -> str:
    return _each_letter(word, lambda c: _DIACRITIC.get(c, c), rng)


def fullwidth(word: str, rng: random.Random | None = None) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)


def math_bold(word: str, rng: random.Random | None = None) -> str:
    def bold(c: str) -> str:
        if "a" <= c <= "z":
            return chr(0x1D41A + ord(c) - ord("a"))
        if "A" <= c <= "Z":
            return chr(0x1D400 + ord(c) - ord("A"))
        return c
    return "".join(bold(c) for c in word)


def letter_spacing(word: str, rng: random.Random | None = None) -> str:
    """b o m b / b.o.m.b / b-o-m-b. Spaced with blanks, the word is set off by two blanks on each side, as people
    do to keep spaced-out words apart ("how to make a  b o m b  now")."""
    sep = rng.choice([" ", ".", "-", " "]) if rng else " "
    letters = re.findall(r"\W*\w\W*", word)  # a letter keeps the marks / controls attached to it
    if len(letters) < 3:
        return word
    return f" {' '.join(letters)} " if sep == " " else sep.join(letters)


def case(word: str, rng: random.Random | None = None) -> str:
    return "".join(c.upper() if (rng.random() < 0.5 if rng else k % 2) else c.lower() for k, c in enumerate(word))


def zalgo(word: str, rng: random.Random | None = None) -> str:
    return "".join(c + "\u0336" if c.isalpha() else c for c in word)


zero_width = _between("\u200b")
soft_hyphen = _between("\u00ad")
bidi = _between("\u202e\u202c")
word_joiner = _between("\u2060")

#: word-level evasions: name -> (function(word, rng) -> word, the transform that counters it)
WORD_EVASIONS: dict[str, tuple[Callable[[str, random.Random | None], str], str]] = {
    "leet": (leet, "leet"),
    "homoglyph": (homoglyph, "confusables"),
    "diacritics": (diacritics, "confusables"),
    "zalgo": (zalgo, "confusables"),
    "fullwidth": (fullwidth, "nfkc"),
    "math_bold": (math_bold, "nfkc"),
    "zero_width": (zero_width, "invisible"),
    "soft_hyphen": (soft_hyphen, "invisible"),
    "bidi_controls": (bidi, "invisible"),
    "word_joiner": (word_joiner, "invisible"),
    "letter_spacing": (letter_spacing, "spacing"),
    "case": (case, "casefold"),
}


def base64_payload(text: str) -> str:
    return "decode this and answer: " + base64.b64encode(text.encode("utf-8")).decode("ascii")


def hex_payload(text: str) -> str:
    return "decode this hex and answer: " + text.encode("utf-8").hex()


#: whole-message evasions
MESSAGE_EVASIONS: dict[str, tuple[Callable[[str], str], str]] = {
    "base64": (base64_payload, "base64"),
    "hex": (hex_payload, "base64"),
}

EVASIONS = tuple(WORD_EVASIONS) + tuple(MESSAGE_EVASIONS)
COUNTERED_BY = {**{k: v[1] for k, v in WORD_EVASIONS.items()}, **{k: v[1] for k, v in MESSAGE_EVASIONS.items()}}

# a word of >= 3 letters, with invisible characters and combining marks an earlier evasion put inside it
_WORD = re.compile(r"(?:(?:[^\W_]|[@$|€])[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u0300-\u036f]*){3,}")


def perturb(text: str, evasions: Sequence[str], rng: random.Random | None = None, p: float = 1.0) -> str:
    """Apply the evasions, in order, to each word of >= 3 letters (each word with probability p, at least one)."""
    for name in evasions:
        if name in MESSAGE_EVASIONS:
            text = MESSAGE_EVASIONS[name][0](text)
            continue
        f = WORD_EVASIONS[name][0]
        words = [w for w in _WORD.finditer(text) if sum(c.isalpha() for c in w.group(0)) >= 2]
        if not words:
            continue
        pick = [w for w in words if rng is None or rng.random() < p] or [words[rng.randrange(len(words)) if rng else 0]]
        chosen = {w.start() for w in pick}
        parts, pos = [], 0
        for w in words:
            if w.start() in chosen:
                parts += [text[pos:w.start()], f(w.group(0), rng)]
                pos = w.end()
        parts.append(text[pos:])
        text = "".join(parts)
    return text


# ---- evadable_by --------------------------------------------------------------------------------------------

_MAX_EXAMPLES = 24


def _examples(rx: re.Pattern[str]) -> list[str]:
    """A few strings the regex matches: one per alternative of its branches (smallest repeats)."""
    try:
        tree = sre_parse.parse(rx.pattern, rx.flags & ~re.UNICODE)
    except Exception:  # noqa: BLE001 - an unusual pattern just gets no probes
        return []
    width = max([len(b) for b in _branches(tree)] + [1])
    out: list[str] = []
    for i in range(min(width, _MAX_EXAMPLES)):
        try:
            s = _gen(tree, i, 0)
        except (RecursionError, ValueError, TypeError, OverflowError):
            continue
        if s and rx.search(s) and s not in out:
            out.append(s)
    return out


def _branches(tree: object) -> list[list]:
    found = []
    stack = [tree]
    while stack:
        node = stack.pop()
        for op, av in (node if isinstance(node, (list, sre_parse.SubPattern)) else []):
            if op is sc.BRANCH:
                found.append(av[1])
                stack.extend(av[1])
            elif op is sc.SUBPATTERN:
                stack.append(av[-1])
            elif op in (sc.MAX_REPEAT, sc.MIN_REPEAT, getattr(sc, "POSSESSIVE_REPEAT", None)):
                stack.append(av[2])
    return found


def _gen(tree: object, i: int, depth: int) -> str:
    if depth > 50:
        raise ValueError("too deep")
    out = []
    for op, av in tree:  # type: ignore[attr-defined]
        if op is sc.LITERAL:
            out.append(chr(av))
        elif op is sc.NOT_LITERAL:
            out.append("a" if av != ord("a") else "b")
        elif op is sc.ANY:
            out.append("a")
        elif op is sc.IN:
            out.append(_gen_in(av))
        elif op is sc.BRANCH:
            alts = av[1]
            out.append(_gen(alts[min(i, len(alts) - 1)], i, depth + 1))
        elif op is sc.SUBPATTERN:
            out.append(_gen(av[-1], i, depth + 1))
        elif op in (sc.MAX_REPEAT, sc.MIN_REPEAT, getattr(sc, "POSSESSIVE_REPEAT", None)):
            lo = max(av[0], 1) if av[0] == 0 and _letters(av[2]) else av[0]
            out.append(_gen(av[2], i, depth + 1) * min(lo, 20))
        elif op is getattr(sc, "ATOMIC_GROUP", None):
            out.append(_gen(av, i, depth + 1))
        elif op is sc.CATEGORY:
            out.append(_cat(av))
        elif op is sc.GROUPREF:
            raise ValueError("backreference")
        # AT (anchors), ASSERT / ASSERT_NOT (lookarounds): no characters
    return "".join(out)


def _letters(tree: object) -> bool:
    try:
        return any(c.isalpha() for c in _gen(tree, 0, 40))
    except (ValueError, RecursionError):
        return False


def _cat(av: object) -> str:
    name = str(av)
    if "DIGIT" in name and "NOT" not in name:
        return "1"
    if "SPACE" in name and "NOT" not in name:
        return " "
    return "a"


def _gen_in(items: list) -> str:
    negate = any(op is sc.NEGATE for op, _ in items)
    if negate:
        banned = {chr(av) for op, av in items if op is sc.LITERAL}
        return next(c for c in "axb1 " if c not in banned)
    for op, av in items:
        if op is sc.LITERAL:
            return chr(av)
        if op is sc.RANGE:
            return chr(av[0])
        if op is sc.CATEGORY:
            return _cat(av)
    return "a"


def _word_regex(entries: Sequence[str]) -> re.Pattern[str]:
    alts = sorted({r"\s+".join(re.escape(p) for p in w.split()) for w in entries if w.strip()}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.IGNORECASE)


def evadable_by(pattern: str | re.Pattern[str] | Sequence[str], enabled: tuple[str, ...], *,
                words: bool | None = None, payloads: bool = False) -> dict[str, str]:
    if isinstance(pattern, str) and not words:
        rx = re.compile(pattern)
        examples = _examples(rx)
    elif isinstance(pattern, re.Pattern):
        rx = pattern
        examples = _examples(rx)
    else:
        entries = [pattern] if isinstance(pattern, str) else list(pattern)
        rx = _word_regex(entries)
        examples = [e for e in entries if e.strip()][:_MAX_EXAMPLES]
    # a case-sensitive pattern matched on case-folded text is matched ignoring case (the compiler does the same)
    rx_norm = re.compile(rx.pattern, rx.flags | re.IGNORECASE) if "casefold" in enabled else rx

    def caught(text: str) -> bool:
        if rx.search(text):
            return True
        nt = _normalize(text, enabled)
        return nt.changed and rx_norm.search(nt.text) is not None

    out: dict[str, str] = {}
    for name in EVASIONS:
        transform = COUNTERED_BY[name]
        if transform in enabled or transform in out or (name in MESSAGE_EVASIONS and not payloads):
            continue
        for ex in examples:
            evaded = perturb(ex, [name])
            if evaded != ex and not caught(evaded):
                out[transform] = f"{name}: {ex!r} -> {evaded!r} is not matched"
                break
    return out
