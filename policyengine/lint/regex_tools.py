"""Regex analysis for the regex lint rules, on Python's own regex parser (`re._parser`, `sre_parse` before 3.11).

ReDoS detection uses regexploit (Doyensec, Apache-2.0) for nested and adjacent overlapping quantifiers, plus a
structural check of our own for overlapping alternatives under an unbounded repeat (`(a|a)*`, `(\\w|\\d)+`),
which regexploit does not report."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

from ..compiler import REGEX_FLAGS

try:  # Python 3.11+
    import re._constants as C  # type: ignore[import-not-found]
    import re._parser as P  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]

MAXREPEAT = C.MAXREPEAT
UNBOUNDED = 64  # a repeat allowing more than this many iterations counts as unbounded


def flags_of(flags: str) -> int:
    """The re flags of a pattern's flag letters (the compiler's table); unknown letters, reported by the
    invalid-regex-flag rule, are ignored here."""
    out = 0
    for ch in flags:
        out |= REGEX_FLAGS.get(ch, 0)
    return out


def parse(regex: str, flags: str) -> Any | None:
    try:
        return P.parse(regex, flags_of(flags))
    except re.error:
        return None


@dataclass(frozen=True)
class Redos:
    construct: str  # what backtracks, in regexploit's notation or ours
    example: str  # an input that makes it backtrack
    kind: str  # "exponential" | "polynomial"


def redos(regex: str, flags: str) -> list[Redos]:
    out: list[Redos] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from regexploit.ast.sre import SreOpParser  # type: ignore[import-untyped]
            from regexploit.redos import find  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - regexploit is a dependency
            find = None
        if find is not None:
            try:
                for r in find(SreOpParser().parse_sre(regex, flags_of(flags))):
                    kind = "exponential" if r.starriness >= 10 else "polynomial"
                    out.append(Redos(str(r.redos_sequence), r.example(), kind))
            except Exception:  # noqa: BLE001 - regexploit cannot model every construct; fall back to ours
                pass
    tree = parse(regex, flags)
    if tree is not None:
        for construct in _overlapping_alternation(tree):
            out.append(Redos(construct, "", "exponential"))
    return out


def _charset(item: tuple) -> set[int] | None:
    """The code points a single-character item can match (None = unknown / many)."""
    op, av = item
    if op is C.LITERAL:
        return {av}
    if op is C.IN:
        chars: set[int] = set()
        for sub_op, sub_av in av:
            if sub_op is C.LITERAL:
                chars.add(sub_av)
            elif sub_op is C.RANGE and sub_av[1] - sub_av[0] < 512:
                chars.update(range(sub_av[0], sub_av[1] + 1))
            elif sub_op is C.CATEGORY:
                chars.update(_CATEGORY.get(sub_av, set()))
            else:
                return None
        return chars
    if op is C.ANY:
        return set(range(32, 127))
    return None


_WORD = set(range(ord("0"), ord("9") + 1)) | set(range(ord("a"), ord("z") + 1)) | \
    set(range(ord("A"), ord("Z") + 1)) | {ord("_")}
_CATEGORY = {C.CATEGORY_DIGIT: set(range(ord("0"), ord("9") + 1)), C.CATEGORY_WORD: _WORD,
             C.CATEGORY_SPACE: {9, 10, 11, 12, 13, 32}}


def _seq_sets(seq: Any) -> list[set[int]] | None:
    out = []
    for item in seq:
        s = _charset(item)
        if s is None:
            return None
        out.append(s)
    return out


def _overlapping_alternation(tree: Any) -> list[str]:
    found: list[str] = []

    def walk(seq: Any, in_unbounded: bool) -> None:
        for op, av in seq:
            if op in (C.MAX_REPEAT, C.MIN_REPEAT):
                lo, hi, body = av
                walk(body, in_unbounded or hi == MAXREPEAT or hi > UNBOUNDED)
            elif op is C.SUBPATTERN:
                walk(av[-1], in_unbounded)
            elif op is C.BRANCH:
                branches = av[1]
                if in_unbounded:
                    sets = [_seq_sets(b) for b in branches]
                    for i in range(len(branches)):
                        for j in range(i + 1, len(branches)):
                            a, b = sets[i], sets[j]
                            same = list(branches[i]) == list(branches[j])  # `a|a` is parsed as `a(?:|)`
                            if not same and (a is None or b is None or not a or not b):
                                continue
                            if same or _ambiguous(a, b):  # type: ignore[arg-type]
                                found.append(f"alternatives {i + 1} and {j + 1} of a repeated group can match the "
                                             f"same text")
                for b in branches:
                    walk(b, in_unbounded)
            elif op in (C.ASSERT, C.ASSERT_NOT):
                walk(av[1], in_unbounded)

    walk(tree, False)
    return found[:1]


def _ambiguous(a: list[set[int]], b: list[set[int]]) -> bool:
    """Two branches (sequences of character sets) that can match the same text, or one that can be matched by
    repeating the other (`a|aa`)."""
    if len(a) == len(b):
        return all(x & y for x, y in zip(a, b))
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    if len(short) == 1:
        return all(short[0] & y for y in long_)
    return False


def min_max_width(regex: str, flags: str) -> tuple[int, int] | None:
    tree = parse(regex, flags)
    if tree is None:
        return None
    lo, hi = tree.getwidth()
    return int(lo), int(hi)


def top_branches(tree: Any) -> tuple[bool, list[Any], bool]:
    """(bounded on the left, top-level alternatives, bounded on the right) of a parsed pattern, looking through
    one group: `\\b(?:a|b)\\b` gives (True, [a, b], True)."""
    items = list(tree)
    left = right = False
    bound_ops = (C.AT, C.ASSERT_NOT, C.ASSERT)
    while items and items[0][0] in bound_ops:
        left = left or _is_left_bound(items[0])
        items = items[1:]
    while items and items[-1][0] in bound_ops:
        right = right or _is_right_bound(items[-1])
        items = items[:-1]
    if len(items) == 1 and items[0][0] is C.SUBPATTERN:
        inner = list(items[0][1][-1])
        if len(inner) == 1 and inner[0][0] is C.BRANCH:
            return left, list(inner[0][1][1]), right
        return left, [inner], right
    if len(items) == 1 and items[0][0] is C.BRANCH:
        return left, list(items[0][1][1]), right
    return left, [items], right


def _is_left_bound(item: tuple) -> bool:
    op, av = item
    if op is C.AT:
        return av in (C.AT_BOUNDARY, C.AT_BEGINNING, C.AT_BEGINNING_STRING)
    return op is C.ASSERT_NOT and av[0] == -1  # negative lookbehind, e.g. (?<!\w)


def _is_right_bound(item: tuple) -> bool:
    op, av = item
    if op is C.AT:
        return av in (C.AT_BOUNDARY, C.AT_END, C.AT_END_STRING)
    return op is C.ASSERT_NOT and av[0] == 1  # negative lookahead, e.g. (?!\w)


def literal_text(seq: Any) -> str | None:
    """The text of a branch made only of literal characters, else None."""
    chars = []
    for op, av in seq:
        if op is not C.LITERAL:
            return None
        chars.append(chr(av))
    return "".join(chars)
