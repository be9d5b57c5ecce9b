"""One pass for all regexes: a Hyperscan database that tells which patterns *may* match a text.

The evaluator asks `PatternSet.scan(text)` once per text and runs the exact `re` pattern (CompiledPattern.finditer,
which also applies validators and skips empty matches) only for the names it returns. So the fast engine never
decides alone: it may only over-report, never miss. That property is what the translation below guarantees and
what tests/perf/test_multiregex_differential.py checks with hypothesis.

How a Python pattern becomes a Hyperscan expression: we do not hand the pattern source to Hyperscan (its syntax
and Unicode rules differ from Python's: `{,3}`, `\\s` on U+001C, `(?i)i` matching dotless `ı`, ...). We parse it
with Python's own regex parser and emit an equivalent expression in which every character class is spelled out
as explicit code-point ranges computed *by Python's `re` itself* (so `\\w`, `\\d`, `\\s` and case-insensitive
letters mean exactly what they mean to `re` on this interpreter). Constructs Hyperscan lacks are widened, never
narrowed: lookaround and `\\b`/`\\B` become "anything here", possessive/atomic become greedy, a multiline `^`/`$`
is dropped. Backreferences, conditionals, `(?a)`/`(?L)` and anything unknown *fall back*: the pattern is run
with `re` on every text, and `fallbacks` says which and why (shown by `policyengine compile`).

Texts with lone surrogates (not valid UTF-8) are answered with every pattern (plain `re` for that text).
Hyperscan is optional (extra `fast`); without it the set answers "all patterns" and everything runs on `re`.
"""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Mapping

try:  # Python 3.11+
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_UNICODE = sys.maxunicode


class Unsupported(Exception):
    """The pattern uses a construct that has no safe Hyperscan translation; it falls back to `re`."""


@dataclass(frozen=True)
class Fallback:
    name: str
    reason: str


# ---- character sets, computed from Python's own `re` ------------------------------------------------------------

MAX_BOUNDED_REPEAT = 8  # larger upper bounds blow up Hyperscan's automata (seconds to build); widened to unbounded
SMALL_CLASS = 8  # code-point ranges kept exact in a class; larger classes widen their non-ASCII part
CASED_LIMIT = 0x1F000  # no code point at or above this has a case mapping (checked by tests/perf)


@lru_cache(maxsize=1)
def _all_chars() -> str:
    """Every code point except surrogates, as one string (built with numpy: ~10 ms)."""
    import numpy as np

    cps = np.arange(MAX_UNICODE + 1, dtype=np.uint32)
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]
    return cps.astype("<u4").tobytes().decode("utf-32-le")


@lru_cache(maxsize=1)
def _cased() -> tuple[str, tuple[tuple[int, int], ...]]:
    """Code points with a case mapping (the only ones `re.I` can equate with another), as a string and as ranges."""
    import _sre
    from itertools import compress

    cps = list(compress(range(CASED_LIMIT), map(_sre.unicode_iscased, range(CASED_LIMIT))))
    return "".join(map(chr, cps)), tuple(_ranges(map(chr, cps)))


def _cased_chars() -> str:
    return _cased()[0]


def _ranges(chars: Iterable[str]) -> list[tuple[int, int]]:
    cps = sorted({ord(c) for c in chars})
    out: list[tuple[int, int]] = []
    for cp in cps:
        if out and cp == out[-1][1] + 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return out


@lru_cache(maxsize=None)
def _category(cat: str) -> tuple[tuple[int, int], ...]:
    """Code-point ranges of \\d, \\s or \\w as Python's `re` (Unicode str patterns) sees them."""
    text = _all_chars()
    out: list[tuple[int, int]] = []
    for m in re.finditer("\\" + cat + "+", text):
        a, b = ord(text[m.start()]), ord(text[m.end() - 1])
        if b - a == m.end() - m.start() - 1:
            out.append((a, b))
        else:  # the run straddles the surrogate gap
            out += [(ord(ch), ord(ch)) for ch in text[m.start():m.end()]]
    return tuple(_merge(out))


@lru_cache(maxsize=4096)
def _caseless(item: str) -> frozenset[int]:
    """Extra cased code points that Python matches with `item` (a literal or class body) under re.IGNORECASE."""
    rx = re.compile(item, re.IGNORECASE)
    return frozenset(ord(c) for c in rx.findall(_cased_chars()))


# ---- emitter: parsed Python regex -> Hyperscan expression ----------------------------------------------------------

def _esc(cp: int) -> str:
    ch = chr(cp)
    if ch.isascii() and ch.isalnum():
        return ch
    return "\\x{%x}" % cp


@lru_cache(maxsize=1)
def _fold() -> tuple[dict[int, int], tuple[tuple[int, int], ...]]:
    """Non-ASCII characters that `re.I` equates with an ASCII letter (U+0130 İ, U+0131 ı, U+017F ſ, U+212A K on
    current Pythons), mapped to that letter. The scanned text has them replaced, so patterns need no multi-byte
    alternatives for them (which made Hyperscan databases 10x slower to build)."""
    table: dict[int, int] = {}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        for cp in _caseless(letter):
            if cp >= 0x80:
                table[cp] = ord(letter)
    return table, tuple(_merge((cp, cp) for cp in table))


def _apply_fold(rs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A set as seen on folded text: fold sources never occur there, their targets stand in for them."""
    table, sources = _fold()
    hit = [cp for cp in table if any(a <= cp <= b for a, b in rs)]
    if not hit:
        return rs
    return _subtract(rs, sources) + [(table[cp], table[cp]) for cp in hit]


def _class(ranges: Iterable[tuple[int, int]], negate: bool = False) -> str:
    """A class for an exact code-point set (complemented when `negate`). Small sets are spelled out; in large ones
    the non-ASCII part is widened to "any non-ASCII character" (Hyperscan databases with thousands of Unicode
    ranges are huge and slow to build). Widening only adds candidates; `re` decides."""
    rs = _merge(ranges)
    if negate:
        rs = _complement_all(rs)
    rs = _merge(_apply_fold(rs))
    rs = list(_split_surrogates(rs))
    if not rs:
        raise Unsupported("character class that matches nothing")
    if len(rs) > SMALL_CLASS and rs[-1][1] >= 0x80:
        rs = [r for r in _subtract(rs, [(0x80, MAX_UNICODE)])] + [(0x80, MAX_UNICODE)]
        rs = list(_split_surrogates(_merge(rs)))
    body = "".join(_esc(a) if a == b else f"{_esc(a)}-{_esc(b)}" for a, b in rs)
    return f"[{body}]"


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    # Hyperscan's UTF-8 mode has no surrogates; Python texts with surrogates never reach it.
    return list(_split_surrogates(_complement_all(ranges)))


def _subtract(ranges: list[tuple[int, int]], remove: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """ranges minus remove, by one sweep over both sorted lists."""
    keep = _complement_all(list(remove))
    a, b = _merge(ranges), keep
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _complement_all(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for a, b in _merge(ranges):
        if a > pos:
            out.append((pos, a - 1))
        pos = b + 1
    if pos <= MAX_UNICODE:
        out.append((pos, MAX_UNICODE))
    return out


def _pyesc(cp: int) -> str:
    """A code point as a Python regex escape that is valid inside and outside classes."""
    return "\\U%08x" % cp


def _split_surrogates(ranges: list[tuple[int, int]]) -> Iterable[tuple[int, int]]:
    for a, b in ranges:
        if b < 0xD800 or a > 0xDFFF:
            yield a, b
            continue
        if a < 0xD800:
            yield a, 0xD7FF
        if b > 0xDFFF:
            yield 0xE000, b


_CATS = {
    "CATEGORY_DIGIT": ("d", False), "CATEGORY_NOT_DIGIT": ("d", True),
    "CATEGORY_SPACE": ("s", False), "CATEGORY_NOT_SPACE": ("s", True),
    "CATEGORY_WORD": ("w", False), "CATEGORY_NOT_WORD": ("w", True),
}


class _Emitter:
    def __init__(self, flags: int):
        if flags & (re.ASCII | getattr(re, "LOCALE", 0)):
            raise Unsupported("ASCII/LOCALE flag")
        self.flags = flags

    def seq(self, items: Any, flags: int) -> str:
        return "".join(self.op(op, av, flags) for op, av in items)

    def _lit_set(self, cp: int, flags: int) -> list[tuple[int, int]]:
        rs = [(cp, cp)]
        if flags & re.IGNORECASE:
            rs += [(x, x) for x in _caseless(_pyesc(cp))]
        return rs

    def _in_set(self, items: Any, flags: int) -> list[tuple[int, int]]:
        """Exact code-point set of a character class: items as ranges, negation applied, and under re.I the cased
        code points decided by Python's `re` itself on the same class."""
        negate = False
        rs: list[tuple[int, int]] = []
        src: list[str] = []
        for op, av in items:
            name = str(op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                rs.append((av, av))
                src.append(_pyesc(av))
            elif name == "RANGE":
                rs.append(tuple(av))  # type: ignore[arg-type]
                src.append(f"{_pyesc(av[0])}-{_pyesc(av[1])}")
            elif name == "CATEGORY":
                cat, neg = _CATS.get(str(av), (None, None))
                if cat is None:
                    raise Unsupported(f"category {av}")
                rs += _complement(list(_category(cat))) if neg else list(_category(cat))
                src.append("\\" + (cat.upper() if neg else cat))
            else:
                raise Unsupported(f"class item {name}")
        out = _complement(rs) if negate else _merge(rs)
        if flags & re.IGNORECASE:
            body = "[" + ("^" if negate else "") + "".join(src) + "]"
            out = _subtract(out, _cased()[1]) + [(x, x) for x in _caseless(body)]
        return _merge(out)

    def op(self, op: Any, av: Any, flags: int) -> str:
        name = str(op)
        if name == "LITERAL":
            rs = self._lit_set(av, flags)
            return _esc(av) if len(rs) == 1 and av not in _fold()[0] else _class(rs)
        if name == "NOT_LITERAL":
            return _class(self._lit_set(av, flags), negate=True)
        if name == "ANY":
            return "[\\s\\S]" if flags & re.DOTALL else "[^\\n]"
        if name == "IN":
            rs = self._in_set(av, flags)
            if not rs:
                raise Unsupported("character class that matches nothing")
            return _class(rs)
        if name == "CATEGORY":
            cat, neg = _CATS.get(str(av), (None, None))
            if cat is None:
                raise Unsupported(f"category {av}")
            return _class(_category(cat), negate=bool(neg))
        if name == "AT":
            at = str(av)
            if at == "AT_BEGINNING_STRING" or (at == "AT_BEGINNING" and not flags & re.MULTILINE):
                return "^"
            if at == "AT_END" and not flags & re.MULTILINE:
                return "$"
            return ""  # \b, \B, \Z and multiline ^/$: widened to "anything here" (re decides afterwards)
        if name == "SUBPATTERN":
            _group, add, delete, sub = av
            if add & (re.ASCII | getattr(re, "LOCALE", 0)):
                raise Unsupported("inline ASCII/LOCALE flag")
            return "(?:" + self.seq(sub, (flags | add) & ~delete) + ")"
        if name == "BRANCH":
            _, alts = av
            return "(?:" + "|".join(self.seq(a, flags) for a in alts) + ")"
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, sub = av
            body = self.seq(sub, flags)
            if not body:
                return ""
            if hi == _c.MAXREPEAT or hi > MAX_BOUNDED_REPEAT:  # a long bounded repeat is widened: {0,60} -> *
                quant = "*" if lo == 0 else "+" if lo == 1 else "{%d,}" % lo
            elif lo == hi:
                quant = "{%d}" % lo
            else:
                quant = "{%d,%d}" % (lo, hi)
            return f"(?:{body}){quant}"
        if name == "ATOMIC_GROUP":
            return "(?:" + self.seq(av, flags) + ")"
        if name in ("ASSERT", "ASSERT_NOT"):
            return ""  # lookaround widened to "anything here"
        if name == "GROUPREF":
            raise Unsupported("backreference")
        if name == "GROUPREF_EXISTS":
            raise Unsupported("conditional group")
        raise Unsupported(f"construct {name}")


def translate(pattern: str, flags: int) -> str:
    """A Hyperscan expression (UTF-8 mode) matching at least everything `re.compile(pattern, flags)` matches."""
    try:
        parsed = _p.parse(pattern, flags)
    except re.error as e:  # pragma: no cover - patterns are compiled by `re` before they get here
        raise Unsupported(f"re cannot parse it: {e}") from None
    all_flags = parsed.state.flags if hasattr(parsed, "state") else flags
    return _Emitter(all_flags).seq(parsed, all_flags)


# ---- the set ---------------------------------------------------------------------------------------------------

def hyperscan_available() -> bool:
    try:
        import hyperscan  # noqa: F401
    except ImportError:
        return False
    return True


class PatternSet:
    """Which of a policy's patterns may match a text, in one Hyperscan scan.

    `scan(text)` returns a frozenset of pattern names: a superset of those whose `re` pattern has a non-empty match.
    Thread-safe: each thread gets its own Hyperscan scratch space.
    """

    def __init__(self, patterns: Mapping[str, re.Pattern[str]], *, engine: str = "auto"):
        self.names = tuple(patterns)
        self._all = frozenset(self.names)
        self.fallbacks: tuple[Fallback, ...] = ()
        self.engine = "re"
        self._db: Any = None
        self._always: frozenset[str] = self._all
        self._local = threading.local()
        if engine not in ("auto", "hyperscan", "re"):
            raise ValueError(f"unknown regex engine {engine!r} (auto, hyperscan, re)")
        if engine == "re" or not patterns:
            return
        if not hyperscan_available():
            if engine == "hyperscan":
                raise RuntimeError("regex engine 'hyperscan' needs the package 'hyperscan' (pip install 'policyengine[fast]')")
            self.fallbacks = tuple(Fallback(n, "hyperscan is not installed") for n in self.names)
            return
        self._build(patterns)

    def _build(self, patterns: Mapping[str, re.Pattern[str]]) -> None:
        import hyperscan

        exprs: list[bytes] = []
        fallbacks: list[Fallback] = []
        base = hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
        ok_names: list[str] = []
        for name, rx in patterns.items():
            try:
                expr = translate(rx.pattern, rx.flags)
                if not expr:
                    raise Unsupported("matches everywhere once widened")
            except Unsupported as e:
                fallbacks.append(Fallback(name, str(e)))
                continue
            ok_names.append(name)
            exprs.append(expr.encode())
        db = None
        if exprs:
            try:
                db = _compile(hyperscan, exprs, base)
            except Exception:  # noqa: BLE001 - find the expressions Hyperscan rejects, one by one
                keep = []
                for name, expr in zip(ok_names, exprs):
                    try:
                        _compile(hyperscan, [expr], base)
                        keep.append((name, expr))
                    except Exception as e:  # noqa: BLE001
                        fallbacks.append(Fallback(name, f"hyperscan rejects it: {e}"))
                ok_names = [k for k, _ in keep]
                exprs = [e for _, e in keep]
                db = _compile(hyperscan, exprs, base) if exprs else None
        self.fallbacks = tuple(fallbacks)
        self._always = frozenset(f.name for f in fallbacks)
        if db is None:
            return
        self._db = db
        self._fold_table = _fold()[0]
        self._fold_re = re.compile("[" + "".join(map(chr, self._fold_table)) + "]")
        self._hs_names = tuple(ok_names)
        self._proto_scratch = hyperscan.Scratch(db)
        self._scratch_lock = threading.Lock()
        self.engine = "hyperscan"

    # -- serialisation (compiled bundles) ---------------------------------------------------------------
    def to_state(self) -> dict[str, Any] | None:
        """The compiled database and its bookkeeping, for `policyengine compile` bundles (None: nothing to save)."""
        if self._db is None:
            return None
        import hyperscan

        return {"names": list(self.names), "hs_names": list(self._hs_names),
                "fallbacks": [[f.name, f.reason] for f in self.fallbacks], "db": bytes(hyperscan.dumpb(self._db))}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "PatternSet":
        import hyperscan

        self = cls.__new__(cls)
        self.names = tuple(state["names"])
        self._all = frozenset(self.names)
        self.fallbacks = tuple(Fallback(n, r) for n, r in state["fallbacks"])
        self._always = frozenset(f.name for f in self.fallbacks)
        self._local = threading.local()
        self._db = hyperscan.loadb(bytes(state["db"]), hyperscan.HS_MODE_BLOCK)
        self._fold_table = _fold()[0]
        self._fold_re = re.compile("[" + "".join(map(chr, self._fold_table)) + "]")
        self._hs_names = tuple(state["hs_names"])
        self._proto_scratch = hyperscan.Scratch(self._db)
        self._scratch_lock = threading.Lock()
        self.engine = "hyperscan"
        return self

    # -- scanning ----------------------------------------------------------------------------------------
    def _scratch(self) -> Any:
        s = getattr(self._local, "scratch", None)
        if s is None:
            with self._scratch_lock:
                s = self._proto_scratch.clone()
            self._local.scratch = s
        return s

    def scan(self, text: str) -> frozenset[str]:
        """Names of the patterns that may have a non-empty match in `text` (never fewer than `re` finds)."""
        if self._db is None:
            return self._all
        if not text.isascii():
            if _SURROGATE.search(text):
                return self._all
            if self._fold_re.search(text):
                text = text.translate(self._fold_table)
        found: list[int] = []
        self._db.scan(text.encode("utf-8"), match_event_handler=_collect, context=found, scratch=self._scratch())
        if not found:
            return self._always
        names = self._hs_names
        return self._always.union(names[i] for i in found)

    def describe(self) -> str:
        n = len(self.names)
        if self.engine == "re":
            return f"regex engine: re ({n} patterns, each searched separately)"
        return (f"regex engine: hyperscan, {n - len(self.fallbacks)} of {n} patterns in one scan"
                + (f", {len(self.fallbacks)} on re" if self.fallbacks else ""))


def _collect(id_: int, _from: int, _to: int, _flags: int, context: list[int]) -> None:
    context.append(id_)


def _compile(hyperscan: Any, exprs: list[bytes], flags: int) -> Any:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=[flags] * len(exprs))
    return db


# ---- a policy's patterns, grouped by the text they are matched on -------------------------------------------------

_SETS: dict[tuple, PatternSet] = {}
_SETS_LOCK = threading.Lock()
_SETS_MAX = 64


def set_key(patterns: Mapping[str, re.Pattern[str]], engine: str) -> tuple:
    return (engine, tuple((name, rx.pattern, rx.flags) for name, rx in patterns.items()))


def preload(patterns: Mapping[str, re.Pattern[str]], engine: str, state: Mapping[str, Any]) -> bool:
    """Install a PatternSet saved in a bundle for these patterns (False when this machine cannot load it)."""
    try:
        ps = PatternSet.from_state(state)
    except Exception:  # noqa: BLE001 - e.g. a database built for other CPU features: rebuild instead
        return False
    if ps.names != tuple(patterns):
        return False
    with _SETS_LOCK:
        _SETS[set_key(patterns, engine)] = ps
    return True


def cached_pattern_set(patterns: Mapping[str, re.Pattern[str]], engine: str = "auto") -> PatternSet:
    """PatternSets are immutable: engines of the same patterns (tests, reloads) share one database."""
    key = set_key(patterns, engine)
    with _SETS_LOCK:
        hit = _SETS.get(key)
    if hit is not None:
        return hit
    built = PatternSet(patterns, engine=engine)
    with _SETS_LOCK:
        if len(_SETS) >= _SETS_MAX:
            _SETS.pop(next(iter(_SETS)))
        return _SETS.setdefault(key, built)


class PolicyScanner:
    """The prefilter the evaluator asks before running a pattern: one PatternSet for the original text, and one per
    normalisation pipeline for the normalised text (with ignore-case when the pipeline casefolds, as the
    compiler's `safe_normalized` matcher does)."""

    def __init__(self, patterns: Mapping[str, Any], engine: str = "auto"):
        self.regex_engine = engine
        self.groups = scanner_groups(patterns)
        self.raw = cached_pattern_set(self.groups[()], engine)
        self.normalized = {pipe: cached_pattern_set(rx, engine) for pipe, rx in self.groups.items() if pipe}
        self.engine = self.raw.engine

    def to_state(self) -> list[dict[str, Any]]:
        out = []
        for pipe, ps in ((), self.raw), *self.normalized.items():
            st = ps.to_state()
            if st is not None:
                out.append({"pipeline": list(pipe), **st})
        return out

    @staticmethod
    def preload(patterns: Mapping[str, Any], engine: str, states: list[dict[str, Any]]) -> int:
        """Install saved databases for these patterns; returns how many could be used."""
        groups = scanner_groups(patterns)
        used = 0
        for st in states:
            pipe = tuple(st["pipeline"])
            if pipe in groups:
                used += preload(groups[pipe], engine, st)
        return used

    @property
    def fallbacks(self) -> tuple[Fallback, ...]:
        seen: dict[str, Fallback] = {f.name: f for f in self.raw.fallbacks}
        for ps in self.normalized.values():
            for f in ps.fallbacks:
                seen.setdefault(f.name, f)
        return tuple(seen.values())

    def describe(self) -> str:
        return self.raw.describe()


def scanner_groups(patterns: Mapping[str, Any]) -> dict[tuple[str, ...], dict[str, re.Pattern[str]]]:
    """() -> every pattern as written (matched on the original text); pipeline -> the patterns matched on that
    pipeline's normalised text, with ignore-case when it casefolds."""
    groups: dict[tuple[str, ...], dict[str, re.Pattern[str]]] = {(): {name: p.regex for name, p in patterns.items()}}
    for name, p in patterns.items():
        pipeline = tuple(getattr(p, "normalize", ()) or ())
        if pipeline:
            flags = p.regex.flags | (re.IGNORECASE if "casefold" in pipeline else 0)
            groups.setdefault(pipeline, {})[name] = re.compile(p.regex.pattern, flags)
    return groups
