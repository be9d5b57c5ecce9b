"""Parse .policy text with Lark (LALR, positions) and build typed nodes, collecting every diagnostic."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from .. import nodes as n
from ..diagnostics import Diagnostic
from ..source import Source, Span

MAX_SYNTAX_ERRORS = 20


@lru_cache(maxsize=1)
def grammar() -> Lark:
    text = resources.files(__package__).joinpath("policy.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True)


# ---- comments and tokens, for tools that rewrite source (fmt) or point into it (lint) -------------------


@dataclass(frozen=True)
class Comment:
    """A `# ...` comment: its text (with the '#', trailing blanks removed), where it is, and whether it
    stands on its own line (only blanks before it) or trails code."""

    text: str
    span: Span
    own_line: bool


@dataclass(frozen=True)
class Lexeme:
    """One token of the source (keywords and punctuation included), free of lark types."""

    type: str
    text: str
    start: int
    end: int
    line: int
    column: int


@dataclass(frozen=True)
class ParsedFile:
    """What `parse_with_comments` returns: the nodes (None if the syntax is broken), every diagnostic, the
    comments and every token in source order."""

    policy: n.PolicyFile | None
    diagnostics: tuple[Diagnostic, ...]
    comments: tuple[Comment, ...]
    tokens: tuple[Lexeme, ...]


_COMMENT_SINK = threading.local()


def _collect_comment(tok: Token) -> Token:
    sink = getattr(_COMMENT_SINK, "comments", None)
    if sink is not None:
        sink.append(tok)
    return tok


@lru_cache(maxsize=1)
def _token_grammar() -> Lark:
    text = resources.files(__package__).joinpath("policy.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True, keep_all_tokens=True,
                lexer_callbacks={"COMMENT": _collect_comment})


def parse_with_comments(source: Source) -> ParsedFile:
    """Like `parse_policy`, and also return the comments and all tokens (for the formatter and linter)."""
    policy, diags = parse_policy(source)
    if policy is None:
        return ParsedFile(None, tuple(diags), (), ())
    _COMMENT_SINK.comments = []
    try:
        tree = _token_grammar().parse(source.text)
        raw_comments: list[Token] = _COMMENT_SINK.comments
    finally:
        _COMMENT_SINK.comments = None
    toks = sorted((t for t in tree.scan_values(lambda v: isinstance(v, Token))), key=lambda t: t.start_pos or 0)
    tokens = tuple(Lexeme(t.type, str(t), t.start_pos or 0, t.end_pos or 0, t.line or 0, t.column or 0) for t in toks)
    comments = []
    for t in raw_comments:
        start = t.start_pos or 0
        line_start = source.text.rfind("\n", 0, start) + 1
        own = not source.text[line_start:start].strip()
        comments.append(Comment(str(t).rstrip(), _tok_span(source, t), own))
    return ParsedFile(policy, tuple(diags), tuple(comments), tokens)


def _tok_span(source: Source, tok: Token) -> Span:
    return Span(source.path, tok.line or 0, tok.column or 0, tok.start_pos or 0, tok.end_pos or 0,
                tok.end_line or 0, tok.end_column or 0)


def _human_terminal(name: str) -> str:
    friendly = {"NAME": "a name", "STRING": "a string", "NUMBER": "a number", "REGEX": "a /regex/",
                "SEVERITY": "a severity (low|medium|high|critical)", "MODE": "a mode (enforce|shadow)",
                "TYPE": "a type (string|number|bool)", "SUBJECT": "'input' or 'output'",
                "CMP": "a comparison (== != < <= > >=)", "BOOL": "true or false",
                "DEFAULT_ACTION": "'allow' or 'block'", "EXPECT": "an action (allow|block|redact|flag)",
                "$END": "end of file"}
    if name in friendly:
        return friendly[name]
    for t in grammar().terminals:
        if t.name == name and t.pattern.type == "str":
            return f"'{t.pattern.value}'"
    return name


def _expected(names: set[str] | frozenset[str]) -> str:
    shown = sorted({_human_terminal(x) for x in names})
    if len(shown) > 8:
        shown = shown[:8] + ["..."]
    return ", ".join(shown)


def _syntax_diagnostic(source: Source, e: UnexpectedInput) -> Diagnostic:
    line, col = (e.line, e.column) if getattr(e, "line", -1) not in (-1, None) else source.position(len(source.text))
    if isinstance(e, UnexpectedCharacters):
        ch = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else ""
        hint = None
        if ch == '"':
            msg, hint = "unterminated string", "close the string with \" on the same line"
        elif ch == "/":
            msg, hint = "unterminated or empty /regex/", "a pattern is written /.../flags on one line"
        else:
            msg = f"unexpected character {ch!r}"
        return Diagnostic("E0001", msg, Span(source.path, line, col), help=hint, line_text=source.line_text(line))
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        line, col = source.position(len(source.text.rstrip()))
        return Diagnostic("E0002", "unexpected end of file", Span(source.path, line, col),
                          help=f"expected {_expected(e.expected)}; is a '}}' missing?",
                          line_text=source.line_text(line))
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    width = max(1, len(str(tok)))
    if _TOP.match(source.line_text(line)) and col == len(source.line_text(line)) - len(source.line_text(line).lstrip()) + 1 \
            and "RBRACE" in e.expected:
        return Diagnostic("E0003", f"unexpected {str(tok)!r}: the item before it is not closed",
                          Span(source.path, line, col), line_text=source.line_text(line), width=width,
                          help=f"is a '}}' missing before line {line}?")
    return Diagnostic("E0003", f"unexpected {str(tok)!r}", Span(source.path, line, col), line_text=source.line_text(line),
                      help=f"expected {_expected(e.expected)}", width=width)


_TOP = re.compile(r"^[ \t]*(policy|context|import|pattern|words|concept|rule|test)\b", re.M)


def _item_bounds(text: str, pos: int) -> tuple[int, int]:
    """The top-level item around offset `pos`: from the last item keyword at a line start up to the next."""
    starts = [m.start() for m in _TOP.finditer(text)]
    before = [s for s in starts if s <= pos]
    after = [s for s in starts if s > pos]
    start = before[-1] if before else 0
    end = after[0] if after else len(text)
    return start, end


_LITERALS = re.compile(r'"(?:[^"\\\n]|\\.)*"|/(?![/*])(?:[^/\\\n\[]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/|#[^\n]*')


def _unclosed(text: str, start: int, end: int) -> bool:
    """Does text[start:end] open more braces than it closes (strings, regexes and comments aside)?"""
    bare = _LITERALS.sub("", text[start:end])
    return bare.count("{") > bare.count("}")


def _unclosed_diagnostic(source: Source, text: str, start: int) -> Diagnostic:
    at = start + len(text[start:]) - len(text[start:].lstrip(" \t"))
    line, col = source.position(at)
    kw = _TOP.match(text, start)
    word = kw.group(1) if kw else text[at:at + 1]
    return Diagnostic("E0003", f"unexpected {word!r}: the item before it is not closed", Span(source.path, line, col),
                      line_text=source.line_text(line), width=len(word), help=f"is a '}}' missing before line {line}?")


def parse_policy(source: Source) -> tuple[n.PolicyFile | None, list[Diagnostic]]:
    """Parse one file. Returns the nodes (None if the syntax is broken) and all diagnostics."""
    policy, diags, _ = parse_policy_recovering(source)
    if any(d.code in SYNTAX_CODES for d in diags):
        return None, diags
    return policy, diags


# Codes of the parser's own errors (E0006-E0009 are reported by the node builder).
SYNTAX_CODES = frozenset({"E0001", "E0002", "E0003", "E0004", "E0005"})
#: in `parse_policy_recovering`'s set of unparsed names: a `context` block, or an `import`, was cut out
UNPARSED_CONTEXT, UNPARSED_IMPORT = "<context>", "<import>"
_DEFINES = re.compile(r"^[ \t]*(pattern|words|concept|rule|context|import)\b[ \t]*([A-Za-z_][A-Za-z0-9_]*)?", re.M)


def parse_policy_recovering(source: Source) -> tuple[n.PolicyFile | None, list[Diagnostic], frozenset[str]]:
    """Parse one file, recovering from syntax errors: every syntax error is reported, and the nodes of the
    top-level items that did parse are returned too, so the compiler can report semantic errors in the same run.
    Returns (nodes or None when nothing could be recovered, diagnostics, the names defined by the items that were
    cut out, plus UNPARSED_CONTEXT / UNPARSED_IMPORT): a reference to one of those names is not an error of its
    own. Only for error reporting: a file with syntax errors is never compiled or formatted."""
    diags: list[Diagnostic] = []
    if "\x00" in source.text:
        off = source.text.index("\x00")
        line, col = source.position(off)
        return None, [Diagnostic("E0004", "NUL byte in policy file (is it a binary file?)", Span(source.path, line, col),
                                 line_text=source.line_text(line))], frozenset()

    # Recovery: on a syntax error, blank out the top-level item that holds it (keeping newlines, so every
    # position stays true) and parse again, until the file parses or MAX_SYNTAX_ERRORS is reached.
    text = source.text
    tree = None
    unparsed: set[str] = set()
    while len(diags) < MAX_SYNTAX_ERRORS:
        try:
            tree = grammar().parse(text)
            break
        except UnexpectedInput as e:
            diags.append(_syntax_diagnostic(source, e))
            pos = getattr(e, "pos_in_stream", None)
            if pos is None or pos < 0:
                pos = len(text)
            start, end = _item_bounds(text, pos)
            if start == pos and start > 0:  # the error is the next item's keyword: the previous item is unclosed
                start, end = _item_bounds(text, pos - 1)
                end = min(end, pos) if end > start else pos
                if end <= start:
                    start, end = pos, _item_bounds(text, pos)[1]
            elif 0 < start < pos and "\n" not in text[start:pos] and _unclosed(text, _item_bounds(text, start - 1)[0],
                                                                              start):
                # an item keyword read as part of the previous, unclosed item (`context { a: string` and then
                # `pattern card = ...` on the next line): say so, and cut out the unclosed item, not this one
                diags[-1] = _unclosed_diagnostic(source, text, start)
                start, end = _item_bounds(text, start - 1)[0], start
            if end <= start:
                break
            for m in _DEFINES.finditer(text, start, end):
                kind, name = m.group(1), m.group(2)
                unparsed.add({"context": UNPARSED_CONTEXT, "import": UNPARSED_IMPORT}.get(kind, name or ""))
            text = text[:start] + "".join(c if c == "\n" else " " for c in text[start:end]) + text[end:]
        except RecursionError:  # pathological nesting
            diags.append(Diagnostic("E0005", "policy too deeply nested to parse", Span(source.path, 1, 1),
                                    line_text=source.line_text(1)))
            tree = None
            break
    if tree is None:
        return None, diags, frozenset(unparsed - {""})
    builder = _Builder(source)
    try:
        items = builder.transform(tree)
    except VisitError as e:  # a bug in the builder must still not become a traceback for users
        raise e.orig_exc from None
    return (n.PolicyFile(source.path, tuple(items), Span(source.path, 1, 1)), diags + builder.diags,
            frozenset(unparsed - {""}))


class _Builder(Transformer):
    def __init__(self, source: Source):
        super().__init__(visit_tokens=False)
        self.src = source
        self.diags: list[Diagnostic] = []

    # -- helpers ------------------------------------------------------------
    def _span(self, meta: Any) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.src.path, 0, 0)
        return Span(self.src.path, meta.line, meta.column, meta.start_pos, meta.end_pos, meta.end_line, meta.end_column)

    def _err(self, code: str, msg: str, span: Span, help: str | None = None, width: int = 1) -> None:
        self.diags.append(Diagnostic(code, msg, span, help=help, line_text=self.src.line_text(span.line), width=width))

    def _name(self, tok: Token) -> n.Name:
        return n.Name(str(tok), _tok_span(self.src, tok))

    def _text(self, tok: Token) -> n.Text:
        raw = str(tok)
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw[1:-1]
            self._err("E0006", "invalid escape sequence in string", _tok_span(self.src, tok),
                      help='use \\" \\\\ \\n \\t or \\uXXXX', width=len(raw))
        return n.Text(value, _tok_span(self.src, tok))

    def _single(self, fields: list[tuple[str, Any, Span]], key: str, what: str) -> Any:
        found = [f for f in fields if f[0] == key]
        for dup in found[1:]:
            self._err("E0007", f"duplicate '{key}' in {what}", dup[2], help="keep only one")
        return found[0][1] if found else None

    def start(self, items: list) -> list:
        return items

    # -- header / context / import -------------------------------------------
    @v_args(meta=True)
    def header(self, meta: Any, ch: list) -> n.Header:
        name, fields = ch[0], ch[1:]
        default = self._single(fields, "default", "policy header")
        return n.Header(name=self._name(name), version=self._single(fields, "version", "policy header"),
                        model=self._single(fields, "model", "policy header"),
                        default=str(default) if default else "allow",
                        on_error=(str(x) if (x := self._single(fields, "on_error", "policy header")) else None),
                        description=self._single(fields, "description", "policy header"), span=self._span(meta),
                        normalize=self._single(fields, "normalize", "policy header"))

    def _field(key: str, text: bool = False):  # type: ignore[misc]
        @v_args(meta=True)
        def build(self: "_Builder", meta: Any, ch: list) -> tuple[str, Any, Span]:
            tok = ch[0]
            return (key, self._text(tok) if text else tok, self._span(meta))
        return build

    h_version = _field("version", True)
    h_model = _field("model", True)
    h_default = _field("default")
    h_on_error = _field("on_error")
    h_description = _field("description", True)

    @v_args(meta=True)
    def h_normalize(self, meta: Any, ch: list) -> tuple:
        return ("normalize", ch[0], self._span(meta))

    def normalize_clause(self, ch: list) -> tuple[n.Name, ...]:
        return ch[0]

    def transform_list(self, ch: list) -> tuple[n.Name, ...]:
        return tuple(self._name(t) for t in ch if t is not None)

    @v_args(meta=True)
    def context_decl(self, meta: Any, ch: list) -> n.ContextDecl:
        return n.ContextDecl(tuple(ch), self._span(meta))

    @v_args(meta=True)
    def context_field(self, meta: Any, ch: list) -> n.ContextField:
        return n.ContextField(ch[0], str(ch[1]), self._span(meta))

    def dotted(self, ch: list) -> str:
        return ".".join(str(c) for c in ch)

    @v_args(meta=True)
    def import_stmt(self, meta: Any, ch: list) -> n.Import:
        return n.Import(self._text(ch[0]), self._span(meta))

    # -- building blocks ------------------------------------------------------
    @v_args(meta=True)
    def pattern_def(self, meta: Any, ch: list) -> n.PatternDef:
        name, regex_tok, validate, normalize = ch
        raw = str(regex_tok)
        close = raw.rfind("/")
        return n.PatternDef(self._name(name), raw[1:close], raw[close + 1:],
                            validate, self._span(meta), normalize=normalize)

    def validate(self, ch: list) -> n.Name:
        return self._name(ch[0])

    @v_args(meta=True)
    def words_def(self, meta: Any, ch: list) -> n.WordsDef:
        name, body, normalize = ch
        if isinstance(body, n.Text):
            return n.WordsDef(self._name(name), (), body, self._span(meta), normalize=normalize)
        return n.WordsDef(self._name(name), tuple(body), None, self._span(meta), normalize=normalize)

    def words_file(self, ch: list) -> n.Text:
        return self._text(ch[0])

    def string_list(self, ch: list) -> list[n.Text]:
        return [self._text(t) for t in ch if t is not None]

    @v_args(meta=True)
    def concept_def(self, meta: Any, ch: list) -> n.ConceptDef:
        name, fields = ch[0], ch[1:]
        examples = tuple(t for k, v, _ in fields if k == "examples" for t in v)
        counter = tuple(t for k, v, _ in fields if k == "counter" for t in v)
        threshold = self._single(fields, "threshold", f"concept {name}")
        margin = self._single(fields, "margin", f"concept {name}")
        train = tuple(v for k, v, _ in fields if k == "train")
        return n.ConceptDef(self._name(name), examples, counter, threshold, margin, self._span(meta),
                            normalize=self._single(fields, "normalize", f"concept {name}"), train=train)

    @v_args(meta=True)
    def c_train(self, meta: Any, ch: list) -> tuple:
        path, cats = ch
        return ("train", n.TrainSource(self._text(path), tuple(cats) if cats is not None else None,
                                       self._span(meta)), self._span(meta))

    @v_args(meta=True)
    def c_examples(self, meta: Any, ch: list) -> tuple:
        return ("examples", [self._text(t) for t in ch], self._span(meta))

    @v_args(meta=True)
    def c_counter(self, meta: Any, ch: list) -> tuple:
        return ("counter", [self._text(t) for t in ch], self._span(meta))

    @v_args(meta=True)
    def c_threshold(self, meta: Any, ch: list) -> tuple:
        return ("threshold", float(ch[0]), self._span(meta))

    @v_args(meta=True)
    def c_normalize(self, meta: Any, ch: list) -> tuple:
        return ("normalize", ch[0], self._span(meta))

    @v_args(meta=True)
    def c_margin(self, meta: Any, ch: list) -> tuple:
        return ("margin", float(ch[0]), self._span(meta))

    # -- rules ------------------------------------------------------------------
    @v_args(meta=True)
    def rule_def(self, meta: Any, ch: list) -> n.RuleDef:
        name, fields = ch[0], ch[1:]
        what = f"rule {name}"
        sev = self._single(fields, "severity", what)
        mode = self._single(fields, "mode", what)
        return n.RuleDef(self._name(name), when=self._single(fields, "when", what),
                         action=self._single(fields, "action", what),
                         severity=str(sev) if sev else "medium", mode=str(mode) if mode else "enforce",
                         category=self._single(fields, "category", what),
                         description=self._single(fields, "description", what), span=self._span(meta))

    r_severity = _field("severity")
    r_mode = _field("mode")
    r_category = _field("category", True)
    r_description = _field("description", True)

    @v_args(meta=True)
    def r_when(self, meta: Any, ch: list) -> tuple:
        return ("when", ch[0], self._span(meta))

    @v_args(meta=True)
    def r_action(self, meta: Any, ch: list) -> tuple:
        return ("action", ch[0], self._span(meta))

    def name_list(self, ch: list) -> list[n.Name]:
        return [self._name(t) for t in ch]

    @v_args(meta=True)
    def a_block(self, meta: Any, ch: list) -> n.Action:
        return n.Action("block", self._text(ch[0]) if ch[0] is not None else None, span=self._span(meta))

    @v_args(meta=True)
    def a_flag(self, meta: Any, ch: list) -> n.Action:
        return n.Action("flag", self._text(ch[0]) if ch[0] is not None else None, span=self._span(meta))

    @v_args(meta=True)
    def a_redact(self, meta: Any, ch: list) -> n.Action:
        targets, repl = ch
        return n.Action("redact", None, tuple(targets), self._text(repl) if repl is not None else None,
                        span=self._span(meta))

    @v_args(meta=True)
    def a_allow(self, meta: Any, ch: list) -> n.Action:
        return n.Action("allow", None, tuple(ch[0] or ()), span=self._span(meta))

    # -- expressions ------------------------------------------------------------
    @v_args(meta=True)
    def or_(self, meta: Any, ch: list) -> n.Or:
        ops: list = []
        for c in ch:
            ops.extend(c.operands if isinstance(c, n.Or) else [c])
        return n.Or(tuple(ops), self._span(meta))

    @v_args(meta=True)
    def and_(self, meta: Any, ch: list) -> n.And:
        ops: list = []
        for c in ch:
            ops.extend(c.operands if isinstance(c, n.And) else [c])
        return n.And(tuple(ops), self._span(meta))

    @v_args(meta=True)
    def not_(self, meta: Any, ch: list) -> n.Not:
        return n.Not(ch[0], self._span(meta))

    @v_args(meta=True)
    def matches(self, meta: Any, ch: list) -> n.Matches:
        return n.Matches(str(ch[0]), self._name(ch[1]), self._span(meta))  # type: ignore[arg-type]

    @v_args(meta=True)
    def contains(self, meta: Any, ch: list) -> n.Contains:
        return n.Contains(str(ch[0]), self._name(ch[1]), self._span(meta))  # type: ignore[arg-type]

    @v_args(meta=True)
    def similar(self, meta: Any, ch: list) -> n.Similar:
        return n.Similar(str(ch[0]), self._name(ch[1]), self._span(meta))  # type: ignore[arg-type]

    @v_args(meta=True)
    def compare(self, meta: Any, ch: list) -> n.Compare:
        return n.Compare(ch[0], str(ch[1]), ch[2], self._span(meta))

    @v_args(meta=True)
    def in_list(self, meta: Any, ch: list) -> n.InList:
        return n.InList(ch[0], tuple(c for c in ch[1:] if c is not None), self._span(meta))

    @v_args(meta=True)
    def exists(self, meta: Any, ch: list) -> n.Exists:
        return n.Exists(ch[0], self._span(meta))

    def lit_string(self, ch: list) -> str:
        return self._text(ch[0]).value

    def lit_number(self, ch: list) -> float:
        return float(ch[0])

    def lit_bool(self, ch: list) -> bool:
        return str(ch[0]) == "true"

    # -- tests --------------------------------------------------------------------
    @v_args(meta=True)
    def test_def(self, meta: Any, ch: list) -> n.TestDef:
        name, fields = self._text(ch[0]), ch[1:]
        what = f"test {name.value!r}"
        expect = self._single(fields, "expect", what)
        ctx = self._single(fields, "context", what) or ()
        span = self._span(meta)
        inp, out = self._single(fields, "input", what), self._single(fields, "output", what)
        if expect is None:
            self._err("E0008", f"{what} has no 'expect'", span, help="add e.g. `expect allow` or `expect block by RULE`")
        if inp is None and out is None:
            self._err("E0009", f"{what} has neither 'input' nor 'output'", span)
        return n.TestDef(name, inp, out, tuple(ctx), expect[0] if expect else None,
                         tuple(expect[1]) if expect else (), span)

    @v_args(meta=True)
    def t_input(self, meta: Any, ch: list) -> tuple:
        return ("input", self._text(ch[0]), self._span(meta))

    @v_args(meta=True)
    def t_output(self, meta: Any, ch: list) -> tuple:
        return ("output", self._text(ch[0]), self._span(meta))

    @v_args(meta=True)
    def t_context(self, meta: Any, ch: list) -> tuple:
        return ("context", tuple(ch), self._span(meta))

    def context_value(self, ch: list) -> tuple:
        return (ch[0], ch[1])

    @v_args(meta=True)
    def t_expect(self, meta: Any, ch: list) -> tuple:
        return ("expect", (str(ch[0]), ch[1] or []), self._span(meta))

    def __default__(self, data: str, children: list, meta: Any) -> Any:  # pragma: no cover - grammar/builder drift
        raise AssertionError(f"no builder for grammar rule {data!r}")
