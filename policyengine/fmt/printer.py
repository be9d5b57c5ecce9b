"""The .policy printer: typed nodes + comments + tokens -> canonical text.

One layout, no options: two-space indent, one field per line, every block opened on its header line and closed
on its own line, one example per line, `when` conditions broken before top-level `or`/`and` when longer than
120 columns or when a comment sits inside them; word lists filled to 120 columns. Fields keep the order they were written in; a field that was
left out (e.g. `severity` at its default) stays left out. Comments stay with the line they were written on or
before; blank lines between items and fields are kept (several collapse to one).
"""

from __future__ import annotations

import json
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from decimal import Decimal

from .. import nodes as n
from ..source import Source
from ..syntax import Comment, Lexeme, ParsedFile

INDENT = "  "
WIDTH = 120

_LITERAL_TYPES = {"STRING", "REGEX", "NUMBER", "NAME"}
HEADER_KEYS = ("version", "model", "default", "on_error", "description", "normalize")
CONCEPT_KEYS = ("examples", "counter", "threshold", "margin", "normalize", "train")
RULE_KEYS = ("severity", "mode", "category", "description", "when", "block", "flag", "redact", "allow")
TEST_KEYS = ("input", "output", "context", "expect")


@dataclass
class Out:
    """One output line, tied to the source offset (`anchor`) where its content starts."""

    indent: int
    text: str
    anchor: int
    end: int
    opener: bool = False
    closer: bool = False
    leading: list[Comment] = field(default_factory=list)
    trailing: Comment | None = None


# ---- literals ------------------------------------------------------------------------------------------


def _visible(ch: str) -> bool:
    # isprintable() is False for controls, format characters (zero-width, bidi), separators other than the
    # ASCII space, surrogates and unassigned code points: those are written as \uXXXX escapes.
    return ch not in "\"\\" and ch.isprintable()


def quote(value: str) -> str:
    """A string literal that reads back as `value`; invisible and control characters are written as escapes."""
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\n\t\r":
            out.append(json.dumps(ch)[1:-1])
        elif _visible(ch):
            out.append(ch)
        else:
            code = ord(ch)
            if code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
    out.append('"')
    return "".join(out)


def number(value: float, min_decimals: int = 0) -> str:
    if min_decimals == 0 and float(value).is_integer():
        return str(int(value))
    text = format(Decimal(repr(float(value))), "f")
    if "." not in text:
        text += "."
    whole, frac = text.split(".")
    frac = frac.rstrip("0").ljust(min_decimals, "0")
    return f"{whole}.{frac}" if frac else whole


def literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return number(float(value))
    return quote(str(value))


def normalize_list(names: object) -> str:
    """`normalize [a, b]` (the clause added to headers, patterns, word lists and concepts)."""
    return "normalize [" + ", ".join(x.value for x in names) + "]"  # type: ignore[attr-defined]


def train_clause(t: n.TrainSource) -> str:
    cats = f" categories [{', '.join(quote(c.value) for c in t.categories)}]" if t.categories is not None else ""
    return f"train {quote(t.path.value)}{cats}"


def _normalize_suffix(item: object) -> str:
    names = getattr(item, "normalize", None)
    return f" {normalize_list(names)}" if names is not None else ""


# ---- expressions ---------------------------------------------------------------------------------------

_PREC = {n.Or: 1, n.And: 2, n.Not: 3}


def expr(e: n.Expr, parent: int = 0) -> str:
    prec = _PREC.get(type(e), 4)
    if isinstance(e, n.Or):
        text = " or ".join(expr(op, 1) for op in e.operands)
    elif isinstance(e, n.And):
        text = " and ".join(expr(op, 2) for op in e.operands)
    elif isinstance(e, n.Not):
        text = "not " + expr(e.operand, 3)
    elif isinstance(e, n.Matches):
        text = f"{e.subject} matches {e.pattern.value}"
    elif isinstance(e, n.Contains):
        text = f"{e.subject} contains {e.words.value}"
    elif isinstance(e, n.Similar):
        text = f"{e.subject} similar {e.concept.value}"
    elif isinstance(e, n.Compare):
        text = f"context.{e.path} {e.op} {literal(e.value)}"
    elif isinstance(e, n.InList):
        text = f"context.{e.path} in [{', '.join(literal(v) for v in e.values)}]"
    elif isinstance(e, n.Exists):
        text = f"context.{e.path} exists"
    else:  # pragma: no cover - node/printer drift
        raise TypeError(f"cannot print {type(e).__name__}")
    # same-kind nesting (never produced by the parser, which flattens) keeps its parentheses
    return f"({text})" if prec < parent or (prec == parent and prec in (1, 2)) else text


def action(a: n.Action) -> str:
    if a.kind in ("block", "flag"):
        return a.kind + (f" {quote(a.message.value)}" if a.message else "")
    if a.kind == "redact":
        text = "redact " + ", ".join(t.value for t in a.targets)
        return text + (f" with {quote(a.replacement.value)}" if a.replacement else "")
    return "allow" + (" overrides " + ", ".join(t.value for t in a.targets) if a.targets else "")


# ---- tokens of one item --------------------------------------------------------------------------------


class _ItemTokens:
    """The tokens of one top-level item with their brace depth (the item's own braces are at depth 0)."""

    def __init__(self, tokens: tuple[Lexeme, ...], starts: list[int], start: int, end: int):
        lo, hi = bisect_left(starts, start), bisect_left(starts, end)
        self.toks = tokens[lo:hi]
        self.depth: list[int] = []
        d = 0
        for t in self.toks:
            if t.text == "}" and t.type not in _LITERAL_TYPES:
                d -= 1
            self.depth.append(d)
            if t.text == "{" and t.type not in _LITERAL_TYPES:
                d += 1

    def segments(self, keys: tuple[str, ...], depth: int = 1, lo: int = 0, hi: int | None = None
                 ) -> list[tuple[str, int, int]]:
        """(keyword, index of keyword token, index after the segment's last token) for each field."""
        hi = len(self.toks) if hi is None else hi
        idx = [i for i in range(lo, hi) if self.depth[i] == depth and self.toks[i].type not in _LITERAL_TYPES
               and self.toks[i].text in keys]
        out = []
        for j, i in enumerate(idx):
            stop = idx[j + 1] if j + 1 < len(idx) else hi
            while stop > i + 1 and self.depth[stop - 1] < depth:  # the enclosing block's '}'
                stop -= 1
            out.append((self.toks[i].text, i, stop))
        return out

    def start(self, i: int) -> int:
        return self.toks[i].start

    def end(self, i_stop: int) -> int:
        return self.toks[i_stop - 1].end

    def last_closer(self, lo: int, hi: int, depth: int) -> int | None:
        for i in range(hi - 1, lo - 1, -1):
            if self.toks[i].text == "}" and self.depth[i] == depth and self.toks[i].type not in _LITERAL_TYPES:
                return i
        return None


# ---- the printer ---------------------------------------------------------------------------------------


class Printer:
    def __init__(self, parsed: ParsedFile, source: Source):
        assert parsed.policy is not None
        self.parsed = parsed
        self.src = source
        self.starts = [t.start for t in parsed.tokens]
        self.comments = parsed.comments

    def _toks(self, span_start: int, span_end: int) -> _ItemTokens:
        return _ItemTokens(self.parsed.tokens, self.starts, span_start, span_end)

    def _has_comment(self, lo: int, hi: int) -> bool:
        return any(lo < c.span.start < hi for c in self.comments)

    # -- items --------------------------------------------------------------------------------------------
    def item(self, it: n.Item) -> list[Out]:
        s, e = it.span.start, it.span.end
        if isinstance(it, n.Import):
            return [Out(0, f"import {quote(it.path.value)}", s, e)]
        if isinstance(it, n.PatternDef):
            text = f"pattern {it.name.value} = /{it.regex}/{it.flags}"
            text += f" validate {it.validate.value}" if it.validate else ""
            return [Out(0, text + _normalize_suffix(it), s, e)]
        if isinstance(it, n.WordsDef):
            return self.words(it)
        if isinstance(it, n.ContextDecl):
            return self.block(f"context", s, e, [[Out(1, f"{f.path}: {f.type}", f.span.start, f.span.end)]
                                                   for f in it.fields])
        tk = self._toks(s, e)
        if isinstance(it, n.Header):
            return self.block(f"policy {it.name.value}", s, e, [self.header_field(it, tk, *seg)
                                                                for seg in tk.segments(HEADER_KEYS)])
        if isinstance(it, n.ConceptDef):
            fields, seen, trains = [], set(), 0
            for key, i, stop in tk.segments(CONCEPT_KEYS):
                if key == "train":  # one clause per training source, in source order
                    fields.append([Out(1, train_clause(it.train[trains]), tk.start(i), tk.end(stop))])
                    trains += 1
                    continue
                if key in seen:
                    continue  # a second examples/counter block is printed with the first
                seen.add(key)
                fields.append(self.concept_field(it, tk, key, i, stop))
            return self.block(f"concept {it.name.value}", s, e, fields)
        if isinstance(it, n.RuleDef):
            return self.block(f"rule {it.name.value}", s, e, [self.rule_field(it, tk, *seg)
                                                              for seg in tk.segments(RULE_KEYS)])
        if isinstance(it, n.TestDef):
            return self.block(f"test {quote(it.name.value)}", s, e, [self.test_field(it, tk, *seg)
                                                                     for seg in tk.segments(TEST_KEYS)])
        raise TypeError(f"cannot print {type(it).__name__}")  # pragma: no cover

    def block(self, head: str, start: int, end: int, fields: list[list[Out]], indent: int = 0) -> list[Out]:
        body = [o for f in fields for o in f]
        if not body and not self._has_comment(start, end):
            return [Out(indent, head + " {}", start, end)]
        return [Out(indent, head + " {", start, start + len(head) + 1, opener=True), *body,
                Out(indent, "}", end - 1, end, closer=True)]

    def header_field(self, h: n.Header, tk: _ItemTokens, key: str, i: int, stop: int) -> list[Out]:
        if key == "normalize":
            return [Out(1, normalize_list(getattr(h, "normalize", None) or ()), tk.start(i), tk.end(stop))]
        value = {"version": h.version, "model": h.model, "description": h.description}.get(key)
        shown = quote(value.value) if isinstance(value, n.Text) else (h.default if key == "default" else h.on_error)
        return [Out(1, f"{key} {shown}", tk.start(i), tk.end(stop))]

    def concept_field(self, c: n.ConceptDef, tk: _ItemTokens, key: str, i: int, stop: int) -> list[Out]:
        if key == "normalize":
            return [Out(1, normalize_list(getattr(c, "normalize", None) or ()), tk.start(i), tk.end(stop))]
        if key in ("threshold", "margin"):
            value = c.threshold if key == "threshold" else c.margin
            return [Out(1, f"{key} {number(float(value or 0), 2)}", tk.start(i), tk.end(stop))]
        texts = c.examples if key == "examples" else c.counter
        blocks = [seg for seg in tk.segments(CONCEPT_KEYS) if seg[0] == key]
        last_lo, last_hi = blocks[-1][1], blocks[-1][2]
        closer = tk.last_closer(last_lo, last_hi, 1)
        end = tk.toks[closer].end if closer is not None else tk.end(stop)
        lines = [[Out(2, quote(t.value), t.span.start, t.span.end)] for t in texts]
        return self.block(key, tk.start(i), end, lines, indent=1)

    def rule_field(self, r: n.RuleDef, tk: _ItemTokens, key: str, i: int, stop: int) -> list[Out]:
        start, end = tk.start(i), tk.end(stop)
        if key == "severity":
            return [Out(1, f"severity {r.severity}", start, end)]
        if key == "mode":
            return [Out(1, f"mode {r.mode}", start, end)]
        if key in ("category", "description"):
            value = r.category if key == "category" else r.description
            return [Out(1, f"{key} {quote(value.value if value else '')}", start, end)]
        if key == "when":
            assert r.when is not None
            return self.when(r.when, start, end)
        assert r.action is not None
        return [Out(1, action(r.action), start, end)]

    def when(self, e: n.Expr, start: int, end: int) -> list[Out]:
        one = "when " + expr(e)
        ops = e.operands if isinstance(e, (n.Or, n.And)) else ()
        if len(ops) < 2 or (len(INDENT) + len(one) <= WIDTH and not self._has_comment(start, end)):
            return [Out(1, one, start, end)]
        word = "or" if isinstance(e, n.Or) else "and"
        prec = 1 if word == "or" else 2
        outs = [Out(1, "when " + expr(ops[0], prec), start, ops[0].span.end)]
        for op in ops[1:]:
            outs.append(Out(2, f"{word} {expr(op, prec)}", op.span.start, op.span.end))
        outs[-1].end = end
        return outs

    def test_field(self, t: n.TestDef, tk: _ItemTokens, key: str, i: int, stop: int) -> list[Out]:
        start, end = tk.start(i), tk.end(stop)
        if key in ("input", "output"):
            value = t.input if key == "input" else t.output
            return [Out(1, f"{key} {quote(value.value if value else '')}", start, end)]
        if key == "expect":
            by = f" by {', '.join(b.value for b in t.by)}" if t.by else ""
            return [Out(1, f"expect {t.expect}{by}", start, end)]
        # context { a.b: "x" ... }: one value inline, several one per line
        values = [f"{path}: {literal(v)}" for path, v in t.context]
        if len(values) <= 1 and not self._has_comment(start, end):
            return [Out(1, f"context {{ {values[0]} }}" if values else "context {}", start, end)]
        value_starts = [tk.toks[j].start for j in range(i, stop) if tk.depth[j] == 2 and tk.toks[j].type == "NAME"
                        and (tk.toks[j - 1].text == "{" or tk.toks[j - 1].type in ("STRING", "NUMBER", "BOOL"))]
        lines = [[Out(2, v, value_starts[k] if k < len(value_starts) else start, end)] for k, v in enumerate(values)]
        return self.block("context", start, end, lines, indent=1)

    def words(self, w: n.WordsDef) -> list[Out]:
        """`words NAME = ["a", "b",` filled to WIDTH columns, continuation lines indented once, `]` closing the
        last line. A comment between two entries starts a new line after it."""
        s, e = w.span.start, w.span.end
        head = f"words {w.name.value} = "
        if w.file is not None:
            return [Out(0, head + f"file {quote(w.file.value)}" + _normalize_suffix(w), s, e)]
        if not w.words:
            return [Out(0, head + "[]" + _normalize_suffix(w), s, e)]
        lines: list[tuple[str, int, int]] = []  # text, anchor, end
        text, anchor, end = head + "[", s, s
        for k, t in enumerate(w.words):
            item = quote(t.value)
            first_on_line = text.endswith("[")
            comment_before = k > 0 and self._has_comment(w.words[k - 1].span.end, t.span.start)
            if not first_on_line and (comment_before or len(text) + 2 + len(item) + 1 > WIDTH):
                lines.append((text + ",", anchor, end))
                text, anchor = item, t.span.start
                end = t.span.end
                continue
            text = text + (", " if not first_on_line else "") + item
            end = t.span.end
        lines.append((text + "]" + _normalize_suffix(w), anchor, e))
        return [Out(0 if i == 0 else 1, txt, a, en) for i, (txt, a, en) in enumerate(lines)]

    # -- the file -----------------------------------------------------------------------------------------
    def render(self) -> str:
        pf = self.parsed.policy
        assert pf is not None
        outs = [o for it in pf.items for o in self.item(it)]
        tail = self._attach(outs)
        lines: list[str] = []
        prev_opener = True  # no blank line at the top of the file

        def emit(indent: int, text: str, pos: int, closer: bool = False) -> None:
            nonlocal prev_opener
            if lines and not prev_opener and not closer and self._blank_before(pos):
                lines.append("")
            lines.append(INDENT * indent + text if text else "")

        for o in outs:
            for c in sorted(o.leading, key=lambda c: c.span.start):
                emit(o.indent + (1 if o.closer else 0), c.text, c.span.start)
                prev_opener = False
            emit(o.indent, o.text + (f"  {o.trailing.text}" if o.trailing else ""), o.anchor, o.closer)
            prev_opener = o.opener
        for c in tail:
            emit(0, c.text, c.span.start)
            prev_opener = False
        return "\n".join(lines) + "\n" if lines else ""

    def _attach(self, outs: list[Out]) -> list[Comment]:
        order = sorted(outs, key=lambda o: o.anchor)
        anchors = [o.anchor for o in order]
        tail: list[Comment] = []
        for c in self.comments:
            pos = c.span.start
            if c.own_line:
                i = bisect_right(anchors, pos)
                if i < len(order):
                    order[i].leading.append(c)
                else:
                    tail.append(c)
                continue
            i = bisect_left(anchors, pos) - 1
            if i < 0:  # pragma: no cover - a trailing comment always follows some code
                (order[0].leading if order else tail).append(c)
                continue
            o = order[i]
            if pos >= o.end and o.trailing is None:
                o.trailing = c
            else:  # inside a construct printed on one line: keep it, on its own line above
                o.leading.append(c)
        return tail

    def _blank_before(self, pos: int) -> bool:
        text = self.src.text
        line_start = text.rfind("\n", 0, pos) + 1
        if text[line_start:pos].strip():
            return False
        if line_start == 0:
            return False
        prev_start = text.rfind("\n", 0, line_start - 1) + 1
        return not text[prev_start:line_start - 1].strip()


def render(parsed: ParsedFile, source: Source) -> str:
    return Printer(parsed, source).render()
