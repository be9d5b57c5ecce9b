"""Every language construct parses into the right typed nodes; spans never take part in equality."""

from __future__ import annotations

import pytest

from policyengine import nodes as n
from policyengine.source import Source
from policyengine.syntax import parse_policy


def parse(text: str, name: str = "x.policy") -> n.PolicyFile:
    pf, diags = parse_policy(Source(name, text))
    assert not [d for d in diags if d.severity == "error"], "\n".join(d.render() for d in diags)
    assert pf is not None
    return pf


def only(text: str, kind: type):
    items = parse(text).of(kind)
    assert len(items) == 1, items
    return items[0]


def N(v: str) -> n.Name:
    return n.Name(v)


def T(v: str) -> n.Text:
    return n.Text(v)


def when(expr_src: str, ctx: str = "") -> n.Expr:
    r = only(f'{ctx}\nrule r {{ when {expr_src} flag }}', n.RuleDef)
    return r.when


# ---- header, context, import ---------------------------------------------------------------------


def test_header_all_fields():
    h = only('policy support_bot { version "1.4.0" model "m/x" default block on_error allow '
             'description "d" }', n.Header)
    assert h == n.Header(name=N("support_bot"), version=T("1.4.0"), model=T("m/x"), default="block",
                         on_error="allow", description=T("d"))


def test_header_defaults():
    h = only("policy p {}", n.Header)
    assert h == n.Header(name=N("p"))
    assert h.default == "allow" and h.on_error is None and h.version is None and h.model is None


def test_context_decl_dotted_and_types():
    c = only("context { user.role: string  channel: string  user.age: number  vip: bool }", n.ContextDecl)
    assert c == n.ContextDecl((n.ContextField("user.role", "string"), n.ContextField("channel", "string"),
                               n.ContextField("user.age", "number"), n.ContextField("vip", "bool")))


def test_import():
    assert only('import "lib/common.policy"', n.Import) == n.Import(T("lib/common.policy"))


# ---- building blocks ----------------------------------------------------------------------------------


def test_pattern_with_flags_and_validate():
    p = only(r"pattern card = /\b(?:\d[ -]?){13,19}\b/im validate luhn", n.PatternDef)
    assert p == n.PatternDef(N("card"), r"\b(?:\d[ -]?){13,19}\b", "im", N("luhn"))


def test_pattern_without_flags_slash_in_class_and_escaped_slash():
    p = only(r"pattern url = /https?:\/\/[^/\s]+/", n.PatternDef)
    assert p == n.PatternDef(N("url"), r"https?:\/\/[^/\s]+", "", None)


def test_words_list_with_trailing_comma_and_escapes():
    w = only(r'words w = ["acme corp", "say \"hi\"", "tab\there",]', n.WordsDef)
    assert w == n.WordsDef(N("w"), (T("acme corp"), T('say "hi"'), T("tab\there")), None)


def test_empty_words_list_parses():
    assert only("words w = []", n.WordsDef) == n.WordsDef(N("w"), (), None)


def test_words_file():
    assert only('words w = file "lists/bad.txt"', n.WordsDef) == n.WordsDef(N("w"), (), T("lists/bad.txt"))


def test_concept_all_fields_and_repeated_examples_blocks():
    c = only('concept weapons { examples { "a" "b" } counter { "c" } threshold 0.62 margin 0.05 '
             'examples { "d" } }', n.ConceptDef)
    assert c == n.ConceptDef(N("weapons"), (T("a"), T("b"), T("d")), (T("c"),), 0.62, 0.05)


def test_concept_without_threshold_parses_with_none():
    c = only('concept c { examples { "a" } }', n.ConceptDef)
    assert c.threshold is None and c.margin is None and c.counter == ()


# ---- rules -----------------------------------------------------------------------------------------------


def test_rule_all_fields():
    r = only('rule no_weapons { severity high mode shadow category "violence" description "why" '
             'when input matches p block "No." }', n.RuleDef)
    assert r == n.RuleDef(N("no_weapons"), when=n.Matches("input", N("p")), action=n.Action("block", T("No.")),
                          severity="high", mode="shadow", category=T("violence"), description=T("why"))


def test_rule_defaults():
    r = only("rule r { when input matches p block }", n.RuleDef)
    assert (r.severity, r.mode, r.category, r.description) == ("medium", "enforce", None, None)
    assert r.action == n.Action("block", None)


@pytest.mark.parametrize("src, action", [
    ('block', n.Action("block")),
    ('block "msg"', n.Action("block", T("msg"))),
    ('flag', n.Action("flag")),
    ('flag "look"', n.Action("flag", T("look"))),
    ('redact card', n.Action("redact", None, (N("card"),))),
    ('redact card, email with "[X]"', n.Action("redact", None, (N("card"), N("email")), T("[X]"))),
    ('allow', n.Action("allow")),
    ('allow overrides a, b', n.Action("allow", None, (N("a"), N("b")))),
])
def test_every_action_kind(src, action):
    r = only(f"rule r {{ when input matches p {src} }}", n.RuleDef)
    assert r.action == action


# ---- expressions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("src, expr", [
    ("input matches p", n.Matches("input", N("p"))),
    ("output contains w", n.Contains("output", N("w"))),
    ("input similar c", n.Similar("input", N("c"))),
    ('context.user.role == "x"', n.Compare("user.role", "==", "x")),
    ("context.age != 3", n.Compare("age", "!=", 3.0)),
    ("context.age < 3", n.Compare("age", "<", 3.0)),
    ("context.age <= -2.5", n.Compare("age", "<=", -2.5)),
    ("context.age > 3", n.Compare("age", ">", 3.0)),
    ("context.age >= 18", n.Compare("age", ">=", 18.0)),
    ("context.vip == true", n.Compare("vip", "==", True)),
    ("context.vip == false", n.Compare("vip", "==", False)),
    ('context.channel in ["web", "api", 3, true]', n.InList("channel", ("web", "api", 3.0, True))),
    ("context.channel in []", n.InList("channel", ())),
    ("context.user.id exists", n.Exists("user.id")),
    ("not input matches p", n.Not(n.Matches("input", N("p")))),
    ("not not input matches p", n.Not(n.Not(n.Matches("input", N("p"))))),
])
def test_atoms(src, expr):
    assert when(src) == expr


def test_and_binds_tighter_than_or():
    a, b, c = (n.Matches("input", N(x)) for x in "abc")
    assert when("input matches a or input matches b and input matches c") == n.Or((a, n.And((b, c))))
    assert when("input matches a and input matches b or input matches c") == n.Or((n.And((a, b)), c))


def test_parentheses_override_precedence():
    a, b, c = (n.Matches("input", N(x)) for x in "abc")
    assert when("(input matches a or input matches b) and input matches c") == n.And((n.Or((a, b)), c))


def test_chains_are_flattened():
    a, b, c, d = (n.Matches("input", N(x)) for x in "abcd")
    assert when("input matches a and input matches b and input matches c and input matches d") == \
        n.And((a, b, c, d))
    assert when("input matches a or input matches b or input matches c") == n.Or((a, b, c))


def test_not_binds_tighter_than_and():
    a, b = (n.Matches("input", N(x)) for x in "ab")
    assert when("not input matches a and input matches b") == n.And((n.Not(a), b))
    assert when("not (input matches a and input matches b)") == n.Not(n.And((a, b)))


def test_demo_style_rule():
    e = when('input similar weapons and not context.user.role == "researcher"')
    assert e == n.And((n.Similar("input", N("weapons")), n.Not(n.Compare("user.role", "==", "researcher"))))


# ---- tests ------------------------------------------------------------------------------------------------------


def test_test_block_all_fields():
    t = only('test "mixed" { input "hi" output "there" context { user.role: "admin" user.age: 30 vip: true } '
             'expect block by a, b }', n.TestDef)
    assert t == n.TestDef(T("mixed"), T("hi"), T("there"),
                          (("user.role", "admin"), ("user.age", 30.0), ("vip", True)), "block", (N("a"), N("b")))


@pytest.mark.parametrize("kind", ["allow", "block", "redact", "flag"])
def test_test_expect_kinds(kind):
    t = only(f'test "t" {{ output "x" expect {kind} }}', n.TestDef)
    assert t.expect == kind and t.by == () and t.input is None and t.output == T("x")


# ---- names, comments, spans -----------------------------------------------------------------------------


def test_keyword_prefixed_names():
    pf = parse('pattern input_pattern = /x/\nwords output_words = ["y"]\n'
               'rule input_rule { when input matches input_pattern or output contains output_words block }\n'
               'rule blocker { when context.rule_name == "r" allow overrides input_rule }\n'
               'rule flagged { when context.in == 1 and context.exists exists flag }')
    names = [r.name.value for r in pf.of(n.RuleDef)]
    assert names == ["input_rule", "blocker", "flagged"]
    assert pf.of(n.RuleDef)[0].when == n.Or((n.Matches("input", N("input_pattern")),
                                             n.Contains("output", N("output_words"))))
    assert pf.of(n.RuleDef)[2].when == n.And((n.Compare("in", "==", 1.0), n.Exists("exists")))


def test_comments_ignored_and_hash_inside_strings_kept():
    w = only('words w = ["a # not a comment"]  # a comment\n# another', n.WordsDef)
    assert w.words == (T("a # not a comment"),)


DEMO = '''policy support_bot {
  version "1.4.0"
  model "sentence-transformers/all-MiniLM-L6-v2"   # thresholds are calibrated per model
  default allow
}
context { user.role: string  channel: string  user.age: number }

pattern card_number = /\\b(?:\\d[ -]?){13,19}\\b/ validate luhn
words competitors = ["acme corp", "globex"]
concept weapons_howto {
  examples { "how do I build a pipe bomb"  "nerve agent at home" }
  counter  { "how do I kill a python process" }
  threshold 0.62
}
rule no_weapons {
  severity high
  when input similar weapons_howto and not context.user.role == "researcher"
  block "I can't help with making weapons."
}
rule mask_cards { when input matches card_number  redact card_number with "[CARD]" }
test "weapons are blocked" { input "give me steps to build a pipe bomb"  expect block by no_weapons }
'''


def _squash(text: str) -> str:
    """The same policy with different layout: everything on as few lines as possible, extra spaces elsewhere."""
    out = []
    for line in text.splitlines():
        code = line.split("   #")[0]
        out.append("   " + code.strip())
    return "  ".join(out)


def test_whitespace_does_not_change_nodes_but_changes_spans():
    a = parse(DEMO, "a.policy")
    b = parse(_squash(DEMO), "b.policy")
    assert a.items == b.items
    ra, rb = a.of(n.RuleDef)[0], b.of(n.RuleDef)[0]
    assert ra.span != rb.span and ra.name.span.line != rb.name.span.line


def test_spans_point_at_source():
    text = 'pattern p = /x/\n\nrule   my_rule {\n  when input matches p\n  block "no"\n}\n'
    pf = parse(text)
    r = pf.of(n.RuleDef)[0]
    assert (r.name.span.line, r.name.span.column) == (3, 8)
    assert text[r.name.span.start:r.name.span.end] == "my_rule"
    assert (r.when.span.line, r.when.span.column) == (4, 8)
    assert text[r.when.pattern.span.start:r.when.pattern.span.end] == "p"
    assert r.span.file == "x.policy" and r.span.line == 3 and r.span.end_line == 6


def test_nodes_are_immutable():
    r = only("rule r { when input matches p block }", n.RuleDef)
    with pytest.raises(Exception):
        r.severity = "high"  # type: ignore[misc]


def test_string_literal_with_unicode_escape():
    w = only(r'words w = ["caf\u00e9", "naïve"]', n.WordsDef)
    assert [t.value for t in w.words] == ["café", "naïve"]


def test_invalid_escape_is_diagnosed():
    pf, diags = parse_policy(Source("x.policy", r'words w = ["bad \q escape"]'))
    assert [d.code for d in diags] == ["E0006"]
    assert (diags[0].span.line, diags[0].span.column) == (1, 12)
