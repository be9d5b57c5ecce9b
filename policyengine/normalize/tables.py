"""Data behind the transforms: invisible characters, confusables (Unicode confusables.txt via the
`confusable-homoglyphs` package), leetspeak, letter-spacing and encoded payloads. Loaded lazily, once."""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from functools import lru_cache
from importlib import resources

# ---- invisible and bidi control characters ---------------------------------------------------------------
# Every format character (Unicode category Cf) except the visible Arabic/Syriac number signs, plus the
# characters that render as nothing although they are not Cf: combining grapheme joiner, Hangul fillers,
# Khmer inherent vowels, Mongolian variation selectors, variation selectors, and C0/C1 controls other than
# tab, newline, carriage return, vertical tab and form feed (those separate words and are kept).
INVISIBLE_CLASS = (
    "\x00-\x08\x0e-\x1f\x7f-\x9f"
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164"
    "\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f\U000e0100-\U000e01ef"
)
#: Cf characters deliberately kept (they are visible signs)
VISIBLE_FORMAT_CHARS = frozenset("\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2")


@lru_cache(maxsize=1)
def invisible_re() -> re.Pattern[str]:
    return re.compile(f"[{INVISIBLE_CLASS}]+")


# ---- confusables ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def confusables() -> dict[str, str]:
    """Non-ASCII character -> the ASCII letter or digit it is confusable with (UTS #39 data), plus Latin letters
    with diacritics -> their base letter (bömb -> bomb)."""
    raw = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    candidates: dict[str, set[str]] = {}
    for key, items in raw.items():
        group = [key] + [it["c"] for it in items]
        group = [g for g in group if len(g) == 1]
        ascii_ = [g for g in group if g.isascii() and g.isalnum()]
        for g in group:
            if not g.isascii() and ascii_:
                candidates.setdefault(g, set()).update(ascii_)
    table: dict[str, str] = {}
    for ch, opts in candidates.items():
        letters = sorted(o for o in opts if o.isalpha())
        pool = letters or sorted(opts)
        same_case = [o for o in pool if o.islower() == ch.islower()] if ch.isalpha() else []
        table[ch] = (same_case or pool)[0]
    # Latin letters with diacritics that the confusables data does not list
    for cp in range(0x00C0, 0x0250):
        ch = chr(cp)
        if ch in table:
            continue
        base = unicodedata.normalize("NFD", ch)[0]
        if base.isascii() and base.isalpha() and base != ch:
            table[ch] = base
    for ch, base in {"ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ħ": "h", "ŧ": "t", "ß": "ss"}.items():
        table.setdefault(ch, base)
    return table


# ---- leetspeak --------------------------------------------------------------------------------------------
LEET: dict[str, str] = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
                        "@": "a", "$": "s", "!": "i", "|": "l", "€": "e"}
LEET_TOKEN = re.compile(r"(?:[^\W_]|[@$!|€])+")
# numbers with units (10am, 4k, 5kg, 100mph, 1990s) and names with version numbers (covid19, win2000); ordinals
# (1st, 2nd, 3rd, 4th) are checked in code, so that "4nd" (and) is still folded
LEET_EXEMPT = re.compile(
    r"(?i)^(?:\d+(?:[.,]\d+)?(?:s|am|pm|k|m|x|kg|km|mg|ml|cm|mm|gb|mb|tb|kb|hz|khz|mhz|ghz"
    r"|px|pt|kw|kwh|mph|kph|fps|yo|min|mins|sec|secs|ms|ft|lb|lbs|oz|yr|yrs|gen)"
    r"|[^\W\d_]{4,}\d{2,})$")
CODE_DIGITS = re.compile(r"\d{3}")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]*\w")
_ORDINAL = re.compile(r"(?i)^(\d*?)(\d)(st|nd|rd|th)$")


def is_ordinal(token: str) -> bool:
    m = _ORDINAL.match(token)
    if not m:
        return False
    tens = m.group(1)[-1:] == "1"
    want = "th" if tens or m.group(2) not in "123" else {"1": "st", "2": "nd", "3": "rd"}[m.group(2)]
    return m.group(3).lower() == want


# ---- letter spacing -----------------------------------------------------------------------------------------
_C = r"(?:[^\W_]|[@$])"
#: 3+ single characters separated by the same separator: "b o m b", "b.o.m.b", "b - o - m - b"
SPACED_RUN = re.compile(rf"(?<!\w)(?<![@$]){_C}(?P<sep>[ \t]{{1,3}}|[.\-_*~+|/\\,:;] ?| [.\-_*~+|/\\,:;] )"
                        rf"{_C}(?:(?P=sep){_C})+(?!\w)(?![@$])(?![.\-_*~+|/\\,:;]\w)")
SPACED_CHAR = re.compile(_C)

# ---- encoded payloads -----------------------------------------------------------------------------------------
PAYLOAD = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{16,}={0,2}(?![\w+/=-])")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
MAX_PAYLOADS = 64


def decode_payload(token: str) -> str | None:
    """The text inside a base64 (standard or URL-safe) or hex token, or None when it does not decode to text."""
    data: bytes | None = None
    if _HEX.fullmatch(token):
        try:
            data = bytes.fromhex(token)
        except ValueError:
            data = None
    if data is None:
        body = token.rstrip("=")
        if len(body) % 4 == 1:
            return None
        padded = body + "=" * (-len(body) % 4)
        try:
            if "-" in body or "_" in body:
                data = base64.urlsafe_b64decode(padded)
            else:
                data = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 4 or not all(c.isprintable() or c in "\n\t\r" for c in text):
        return None
    # every byte printable already makes random binary very unlikely (12 random bytes: < 1e-5); also ask for words
    wordy = sum(c.isalnum() or c.isspace() for c in text)
    if wordy < 0.6 * len(text) or sum(c.isalpha() for c in text) < 2:
        return None
    return f"\n{text}\n"  # its own line: concepts see the payload as a chunk of its own
