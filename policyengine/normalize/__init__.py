"""Evasion-resistant normalisation with an offset map back to the original text.

A policy declares a pipeline (`normalize [nfkc, casefold, invisible, confusables, leet, spacing, base64]`, globally
in the header or per pattern / word list / concept). `normalize(text, pipeline)` returns a `NormalizedText`: the
normalised text, and for every character of it the range of ORIGINAL characters it came from, plus which transform
changed which original range. Matching runs on `.text`; `to_original(span)` maps a match back, and
`transforms_in(span)` says which transforms changed that region (for the explanation).

The transforms always run in one canonical order, whatever order the policy lists them in:
base64 -> invisible -> nfkc -> confusables -> casefold -> spacing -> leet.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

from . import tables

__all__ = ["TRANSFORMS", "ORDER", "NormalizedText", "normalize", "canonical", "evadable_by", "find_mapped",
           "MappedMatch"]

#: every transform a policy may name, with a one-line description (docs and lint use it)
TRANSFORMS: dict[str, str] = {
    "nfkc": "Unicode NFKC: fullwidth, mathematical, ligature and other compatibility forms become plain letters",
    "casefold": "Unicode case folding (lower case, ß -> ss, final sigma ...)",
    "invisible": "remove invisible and bidi control characters (zero-width, soft hyphen, RTL overrides, tags, NUL)",
    "confusables": "fold look-alike letters from other scripts (Cyrillic а, Greek ο ...) to ASCII (Unicode confusables)",
    "leet": "fold leetspeak inside words (b0mb -> bomb, $hit -> shit, h4ck -> hack)",
    "spacing": "collapse letter-spaced words (b o m b, b.o.m.b, b-o-m-b -> bomb)",
    "base64": "decode base64 / hex payloads (>= 16 characters) that hold text, and scan the decoded text",
}
ORDER: tuple[str, ...] = ("base64", "invisible", "nfkc", "confusables", "casefold", "spacing", "leet")
assert set(ORDER) == set(TRANSFORMS)


def canonical(transforms: Iterable[str]) -> tuple[str, ...]:
    """The transforms in the order they run; unknown names raise ValueError."""
    names = set(transforms)
    unknown = names - set(TRANSFORMS)
    if unknown:
        raise ValueError(f"unknown transform(s): {', '.join(sorted(unknown))}")
    return tuple(t for t in ORDER if t in names)


# ---- the normalised text and its offset map -------------------------------------------------------------------


@dataclass(frozen=True)
class NormalizedText:
    """`text` is `original` after `pipeline`. Character i of `text` came from original[starts[i]:ends[i]].
    With `starts is None` the map is the identity (nothing changed)."""

    original: str
    text: str
    pipeline: tuple[str, ...] = ()
    starts: Sequence[int] | None = field(default=None, repr=False)
    ends: Sequence[int] | None = field(default=None, repr=False)
    #: transform -> sorted, merged ranges of the ORIGINAL text that it changed
    changes: dict[str, list[tuple[int, int]]] = field(default_factory=dict, repr=False)

    @property
    def changed(self) -> bool:
        return self.starts is not None

    def to_original(self, span: tuple[int, int]) -> tuple[int, int]:
        """Map a [start, end) span of `text` to the span of `original` it was made from."""
        s, e = span
        if self.starts is None or self.ends is None:
            return s, e
        n = len(self.text)
        if e <= s:  # empty span: a position
            pos = self.starts[s] if s < n else len(self.original)
            return pos, pos
        return self.starts[min(s, n - 1)], self.ends[min(e, n) - 1]

    def transforms_in(self, span: tuple[int, int]) -> tuple[str, ...]:
        """Transforms that changed any character of `original[span]` (in pipeline order)."""
        s, e = span
        out = []
        for t in ORDER:
            ranges = self.changes.get(t)
            if not ranges:
                continue
            i = bisect.bisect_left(ranges, (e, -1)) - 1  # last range that starts before e
            if i >= 0 and (ranges[i][1] > s or ranges[i][0] == ranges[i][1] == s):
                out.append(t)
            elif i + 1 < len(ranges) and ranges[i + 1][0] == ranges[i + 1][1] == e == s:
                out.append(t)
        return tuple(out)


# An edit replaces text[i:j] (current text) with `repl`. Edits of one stage are sorted and do not overlap.
Edit = tuple[int, int, str]


def _apply(nt: NormalizedText, transform: str, edits: list[Edit]) -> NormalizedText:
    if not edits:
        return nt
    text = nt.text
    starts = nt.starts if nt.starts is not None else range(len(text))
    ends = nt.ends if nt.ends is not None else range(1, len(text) + 1)
    out_text: list[str] = []
    out_s: list[int] = []
    out_e: list[int] = []
    changed: list[tuple[int, int]] = []
    pos = 0
    for i, j, repl in edits:
        out_text.append(text[pos:i])
        out_s.extend(starts[pos:i])
        out_e.extend(ends[pos:i])
        if i < j:
            o_start, o_end = starts[i], ends[j - 1]
        else:  # insertion: attach to the character before (or the start)
            o_start = o_end = ends[i - 1] if i > 0 else 0
        if len(repl) == j - i:  # same length: map character by character
            out_s.extend(starts[i:j])
            out_e.extend(ends[i:j])
        else:
            out_s.extend([o_start] * len(repl))
            out_e.extend([o_end] * len(repl))
        out_text.append(repl)
        changed.append((o_start, o_end))
        pos = j
    out_text.append(text[pos:])
    out_s.extend(starts[pos:])
    out_e.extend(ends[pos:])
    changes = dict(nt.changes)
    changes[transform] = _merge(changes.get(transform, []) + changed)
    return NormalizedText(nt.original, "".join(out_text), nt.pipeline, out_s, out_e, changes)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1] and not (s == e and out[-1][0] == out[-1][1]):
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


# ---- the transforms: each returns the edits for one pass over the current text -------------------------------


def _nfkc(text: str) -> list[Edit]:
    if unicodedata.is_normalized("NFKC", text):
        return []
    edits: list[Edit] = []
    # Normalise cluster by cluster (a starter and the combining marks after it), so offsets stay local.
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        cluster = text[i:j]
        if not cluster.isascii():
            norm = unicodedata.normalize("NFKC", cluster)
            if norm != cluster:
                edits.append((i, j, norm))
        i = j
    return edits


def _casefold(text: str) -> list[Edit]:
    if text.isascii():
        return [(m.start(), m.end(), m.group(0).lower()) for m in _UPPER_ASCII.finditer(text)]
    edits: list[Edit] = []
    for i, c in enumerate(text):
        f = c.casefold()
        if f != c:
            edits.append((i, i + 1, f))
    return edits


_UPPER_ASCII = re.compile(r"[A-Z]+")


def _invisible(text: str) -> list[Edit]:
    return [(m.start(), m.end(), "") for m in tables.invisible_re().finditer(text)]


def _confusables(text: str) -> list[Edit]:
    if text.isascii():
        return []
    table = tables.confusables()
    edits: list[Edit] = []
    for m in _NON_ASCII.finditer(text):
        prev_ascii = m.start() > 0 and text[m.start() - 1].isalnum()
        for k, c in enumerate(m.group(0)):
            i = m.start() + k
            repl = table.get(c)
            if repl is not None:
                edits.append((i, i + 1, repl))
                prev_ascii = True
            elif prev_ascii and unicodedata.category(c) in ("Mn", "Me"):
                edits.append((i, i + 1, ""))  # a mark stacked on a folded letter (Zalgo: b̶o̶m̶b̶)
            else:
                prev_ascii = False
    return edits


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _spacing(text: str) -> list[Edit]:
    edits: list[Edit] = []
    for m in tables.SPACED_RUN.finditer(text):
        run = m.group(0)
        if sum(c.isalpha() for c in run[::1]) < 2:
            continue
        chars = [(k.start(), k.end()) for k in tables.SPACED_CHAR.finditer(run)]
        if len(chars) < 3:
            continue
        # "make a b o m b" -> "make a bomb": a leading a/I right after a word and one blank is the article
        st = m.start()
        keep_first = (len(chars) >= 4 and run[0] in "aAiI" and m.group("sep").isspace() and st >= 2
                      and text[st - 1] == " " and text[st - 2].isalnum())
        for idx in range(len(chars) - 1):
            if idx == 0 and keep_first:
                continue
            gap_s, gap_e = chars[idx][1], chars[idx + 1][0]
            if gap_e > gap_s:
                edits.append((m.start() + gap_s, m.start() + gap_e, ""))
    return edits


def _leet(text: str) -> list[Edit]:
    edits: list[Edit] = []
    emails = [e.span() for e in tables.EMAIL.finditer(text)] if "@" in text else []
    for m in tables.LEET_TOKEN.finditer(text):
        tok = m.group(0)
        if tok.isalpha() or not any(c.isalpha() for c in tok) or tables.LEET_EXEMPT.match(tok) \
                or tables.is_ordinal(tok) or (len(tok) >= 10 and tables.CODE_DIGITS.search(tok)) \
                or any(a < m.end() and m.start() < b for a, b in emails):
            continue  # words only: not codes (IBANs, IDs: long, 3+ digits in a row) nor e-mail addresses
        n = len(tok)
        for k, c in enumerate(tok):
            repl = tables.LEET.get(c)
            if repl is None:
                continue
            if not c.isdigit():
                # a symbol folds only inside a word: followed by a letter/digit, and not after another symbol run end
                if k + 1 >= n or not tok[k + 1].isalnum():
                    continue
            near = tok[max(0, k - 1):k] + tok[k + 1:k + 2]
            if any(x.isupper() for x in near) and not any(x.islower() for x in near):
                repl = repl.upper()
            edits.append((m.start() + k, m.start() + k + 1, repl))
    return edits


def _base64(text: str) -> list[Edit]:
    edits: list[Edit] = []
    for m in tables.PAYLOAD.finditer(text):
        decoded = tables.decode_payload(m.group(0))
        if decoded is not None:
            edits.append((m.start(), m.end(), decoded))
            if len(edits) >= tables.MAX_PAYLOADS:
                break
    return edits


_STAGES: dict[str, Callable[[str], list[Edit]]] = {
    "base64": _base64, "invisible": _invisible, "nfkc": _nfkc, "confusables": _confusables,
    "casefold": _casefold, "spacing": _spacing, "leet": _leet,
}


def normalize(text: str, pipeline: Iterable[str]) -> NormalizedText:
    """Run the pipeline (in canonical order) over `text`, keeping the offset map."""
    steps = canonical(pipeline)
    nt = NormalizedText(text, text, steps)
    for step in steps:
        nt = _apply(nt, step, _STAGES[step](nt.text))
    return nt


# ---- matching on a normalised view --------------------------------------------------------------------------


@dataclass(frozen=True)
class MappedMatch:
    span: tuple[int, int]           # into the ORIGINAL text
    transforms: tuple[str, ...]     # transforms that changed the matched region ((): matched the raw text)
    normalized: str | None          # the matched text after normalisation, when it differs from the original


def find_mapped(raw: Callable[[str], Iterable[tuple[int, int]]], nt: NormalizedText,
                norm: Callable[[str], Iterable[tuple[int, int]]] | None = None,
                limit: int | None = None) -> Iterator[MappedMatch]:
    """Matches of a matcher on the original text, plus (when the pipeline changed the text) matches on the
    normalised text mapped back to the original, without duplicates, in order of position.

    Normalisation only ever adds matches: a pattern that matches the raw text still matches (an e-mail address is
    still found when `leet` folds its '@')."""
    seen: set[tuple[int, int]] = set()
    found: list[MappedMatch] = []
    for s, e in raw(nt.original):
        if (s, e) not in seen:
            seen.add((s, e))
            found.append(MappedMatch((s, e), (), None))
            if limit is not None and len(found) >= limit and not nt.changed:
                break
    if nt.changed:
        raw_spans = sorted(seen)
        n_found = 0
        for s, e in (norm or raw)(nt.text):
            span = nt.to_original((s, e))
            if span[1] <= span[0] or span in seen:
                continue
            k = bisect.bisect_right(raw_spans, (span[0], len(nt.original) + 1)) - 1
            if k >= 0 and raw_spans[k][1] >= span[1]:
                continue  # inside a raw match (its start is the nearest before)
            seen.add(span)
            found.append(MappedMatch(span, nt.transforms_in(span), nt.text[s:e]))
            n_found += 1
            if limit is not None and n_found >= limit:
                break
    found.sort(key=lambda m: (m.span[0], -m.span[1]))
    kept: list[MappedMatch] = []
    for m in found:  # drop a match that lies inside the previous one (a raw part of a normalised match)
        if kept and m.span[1] <= kept[-1].span[1]:
            continue
        kept.append(m)
    yield from (kept[:limit] if limit is not None else kept)


# ---- lint support: which transforms would defeat a word list / pattern -------------------------------------


def evadable_by(pattern: str | re.Pattern[str] | Sequence[str], enabled: Iterable[str], *,
                words: bool | None = None, payloads: bool = False) -> dict[str, str]:
    """Which transforms the policy does NOT enable would let an attacker slip past `pattern`.

    `pattern` is a regex (str or compiled) or a word list (a sequence of entries; pass `words=True` for a single
    entry given as str). Returns {transform: example evasion} for every disabled transform whose perturbation of
    a literal the pattern matches is no longer matched. Empty dict: nothing to warn about. Encoded payloads
    (`base64`) are only probed with `payloads=True`. For the linter: `lint` warns when a word list or pattern is
    evadable by a transform the policy doesn't enable."""
    from . import probes

    return probes.evadable_by(pattern, canonical(enabled), words=words, payloads=payloads)
