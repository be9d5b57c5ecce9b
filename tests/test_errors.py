"""Policy errors: every diagnostic, rendered exactly (golden files), plus the facts each golden must show.

Goldens live in tests/golden/errors/NAME.policy + NAME.txt. Regenerate with `UPDATE_GOLDEN=1 pytest tests/test_errors.py`
and review the diff. Files are compiled from inside the golden folder under their relative name, and the absolute
policy root (which only appears in 'escapes the policy root' messages) is replaced by <ROOT>, so goldens do not
depend on the machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from policyengine.compiler import compile_policy
from policyengine.diagnostics import Diagnostic, PolicyError, did_you_mean
from policyengine.source import Span

GOLDEN = Path(__file__).parent / "golden" / "errors"
CASES = sorted(p.stem for p in GOLDEN.glob("*.policy"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

# name -> every (code, line, column) that must be reported, in order. Golden files pin the full rendering;
# this table states what each golden is about, so a regenerated golden cannot silently lose an error.
EXPECTED: dict[str, list[tuple[str, int, int]]] = {
    "syntax_missing_brace": [("E0002", 5, 13)],
    "syntax_bad_character": [("E0001", 2, 31)],
    "syntax_unexpected_token": [("E0003", 2, 21)],
    "syntax_unterminated_string": [("E0001", 2, 37)],
    "syntax_unterminated_regex": [("E0001", 1, 13)],
    "syntax_several_errors": [("E0001", 4, 43), ("E0003", 8, 23), ("E0003", 10, 29)],
    "check_several_errors": [("E0401", 3, 29), ("E0404", 4, 15), ("E0402", 5, 30), ("E0409", 5, 48)],
    "unknown_names": [("E0401", 4, 30), ("E0401", 5, 32), ("E0401", 6, 30), ("E0401", 7, 30), ("E0501", 8, 38)],
    "wrong_kind": [("E0402", 3, 29), ("E0402", 4, 30), ("E0408", 5, 41)],
    "invalid_regex": [("E0303", 2, 22), ("E0303", 3, 25)],
    "unknown_flag": [("E0301", 1, 19)],
    "unknown_validator": [("E0302", 1, 34), ("E0302", 2, 32)],
    "context_type_mismatch": [("E0404", 2, 15), ("E0404", 3, 15), ("E0404", 4, 15), ("E0404", 4, 15),
                              ("E0404", 5, 15), ("E0405", 5, 15), ("E0404", 6, 1)],
    "context_undeclared": [("E0403", 2, 15), ("E0403", 3, 15)],
    "duplicate_names": [("E0204", 2, 7), ("E0205", 4, 6)],
    "overrides_missing_rule": [("E0409", 3, 55), ("E0410", 4, 53)],
    "concept_incomplete": [("E0306", 1, 9), ("E0305", 2, 9), ("E0307", 3, 9)],
    "wordlist_missing_file": [("E0105", 3, 21)],
    "import_cycle": [("E0102", 2, 8)],
    "import_escape": [("E0101", 1, 8)],
    "import_missing": [("E0103", 1, 8)],
    "nul_byte": [("E0004", 2, 38)],
    "binary_file": [("E0004", 0, 0)],
    "rule_incomplete": [("E0406", 2, 6), ("E0407", 3, 6)],
    "training_errors": [("E0310", 2, 24), ("E0310", 3, 30), ("E0108", 7, 9), ("E0312", 10, 9)],
    "literal_too_long": [("E0011", 3, 15), ("E0011", 4, 38)],
    # syntax and semantic errors in one run (issue 21): the items that parsed are checked too
    "syntax_and_semantic": [("E0001", 7, 46), ("E0003", 11, 23), ("E0401", 9, 32), ("E0403", 13, 18),
                            ("E0501", 15, 45)],
    # a reference to an item cut out on a syntax error is not an error of its own (weapons, three); an undeclared
    # context attribute is not reported when the context block itself did not parse; the rest still is (crad)
    "syntax_and_semantic_cut": [("E0003", 4, 1), ("E0003", 6, 61), ("E0401", 10, 33)],
}

# Facts about the rendered text beyond code and position (hints, file names).
MUST_CONTAIN: dict[str, list[str]] = {
    "unknown_names": ["did you mean 'email'?", "did you mean 'competitors'?", "did you mean 'weapons'?",
                      ],
    "wrong_kind": ["'slurs' is a word list, not a pattern", "write `contains slurs`", "write `matches card`"],
    "unknown_validator": ["did you mean 'luhn'?", "known: iban, luhn"],
    "unknown_flag": ["unknown regex flag 'q'"],
    "context_undeclared": ["did you mean 'user.role'?", "declare it"],
    "overrides_missing_rule": ["did you mean 'no_weapons'?", "overrides itself"],
    "import_cycle": ["import_cycle.policy -> cycle_b.policy -> import_cycle.policy", "_lib/cycle_b.policy:2:8"],
    "import_escape": ["escapes the policy root '<ROOT>'"],
    "import_missing": ["did you mean 'cycle_b.policy'?"],
    "syntax_missing_brace": ["is a '}' missing?"],
    "syntax_unterminated_string": ["unterminated string"],
    "syntax_unterminated_regex": ["unterminated or empty /regex/"],
    "training_errors": ["_lib/bad_rows.jsonl:2:24", '"label" must be "safe" or "unsafe"', "not valid JSON",
                        "training file not found: '_lib/nope.jsonl'", "'margin' has no meaning"],
    "literal_too_long": ["regex literal is 10,002 characters, more than the limit of 10,000",
                         "string literal is 10,001 characters", "…\n"],  # the long line is shown as a window
    "syntax_and_semantic": ["did you mean 'slurs'?", "did you mean 'tier'?"],
    "syntax_and_semantic_cut": ["the item before it is not closed", "is a '}' missing before line 4?"],
}


def render_case(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[PolicyError, str]:
    monkeypatch.chdir(GOLDEN)
    with pytest.raises(PolicyError) as info:
        compile_policy(f"{name}.policy")
    rendered = info.value.render().replace(str(GOLDEN.resolve()), "<ROOT>")
    return info.value, rendered + "\n"


def test_every_golden_case_is_described():
    assert set(CASES) == set(EXPECTED), set(CASES) ^ set(EXPECTED)


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, monkeypatch: pytest.MonkeyPatch):
    err, rendered = render_case(name, monkeypatch)
    golden = GOLDEN / f"{name}.txt"
    if UPDATE or not golden.exists():
        golden.write_bytes(rendered.encode("utf-8"))
        if not UPDATE:
            pytest.fail(f"golden {golden.name} was missing and has been written; review it and re-run")
    assert rendered == golden.read_bytes().decode("utf-8")


@pytest.mark.parametrize("name", CASES)
def test_expected_diagnostics(name: str, monkeypatch: pytest.MonkeyPatch):
    err, rendered = render_case(name, monkeypatch)
    got = [(d.code, d.span.line, d.span.column) for d in err.diagnostics]
    assert got == EXPECTED[name]
    n = len(EXPECTED[name])
    assert rendered.rstrip().endswith(f"{n} error{'s' if n != 1 else ''} found")
    for fragment in MUST_CONTAIN.get(name, []):
        assert fragment in rendered
    # every located diagnostic names the file relatively and shows a caret under the source line
    for d in err.diagnostics:
        assert not os.path.isabs(d.span.file)
        if d.span.line:
            assert f"{d.span.file}:{d.span.line}:{d.span.column}: error[{d.code}]" in rendered
    assert "Traceback" not in rendered


def test_invalid_regex_caret_is_under_the_offending_character(monkeypatch: pytest.MonkeyPatch):
    err, _ = render_case("invalid_regex", monkeypatch)
    d = err.diagnostics[0]
    line = (GOLDEN / "invalid_regex.policy").read_text().splitlines()[d.span.line - 1]
    assert line[d.span.column - 1] == "("  # the unbalanced group, not the pattern name
    assert "missing )" in d.message


def test_rendered_diagnostics_contain_no_control_characters(monkeypatch: pytest.MonkeyPatch):
    _, rendered = render_case("nul_byte", monkeypatch)
    assert not any(ord(c) < 32 and c != "\n" for c in rendered)


def test_unknown_flag_caret_is_under_the_flag(monkeypatch: pytest.MonkeyPatch):
    err, _ = render_case("unknown_flag", monkeypatch)
    d = err.diagnostics[0]
    assert (GOLDEN / "unknown_flag.policy").read_text().splitlines()[0][d.span.column - 1] == "q"


def test_policy_error_is_an_exception_whose_str_is_the_rendering(monkeypatch: pytest.MonkeyPatch):
    err, rendered = render_case("duplicate_names", monkeypatch)
    assert str(err) == err.render() and rendered.startswith("duplicate_names.policy:2:7: error[E0204]")


def test_compile_from_text_uses_given_name():
    with pytest.raises(PolicyError) as info:
        compile_policy(text="rule r { when input matches nope block }", name="inline.policy")
    assert info.value.render().startswith("inline.policy:1:29: error[E0401]: unknown pattern 'nope'")


def test_missing_policy_file(tmp_path: Path):
    missing = tmp_path / "nope.policy"
    with pytest.raises(PolicyError) as info:
        compile_policy(missing)
    (d,) = info.value.diagnostics
    assert d.code == "E0100" and str(missing) in d.message


def test_render_format_of_a_single_diagnostic():
    d = Diagnostic("E9999", "something odd", Span("f.policy", 2, 5), help="try this", line_text="abc defgh", width=3)
    assert d.render() == "f.policy:2:5: error[E9999]: something odd\n  | abc defgh\n  |     ^^^\n  = help: try this"
    assert PolicyError([d]).render().endswith("\n\n1 error found")
    warn = Diagnostic("W1", "meh", Span("f.policy", 0, 0), severity="warning")
    assert PolicyError([warn]).render() == "f.policy:0:0: warning[W1]: meh"


def test_did_you_mean():
    assert did_you_mean("emial", ["email", "phone"]) == "did you mean 'email'?"
    assert did_you_mean("zzz", ["email", "phone"]) is None


def test_syntax_errors_are_capped_not_endless():
    text = "\n".join(f"rule r{i} {{ when input @ block }}" for i in range(60))
    with pytest.raises(PolicyError) as info:
        compile_policy(text=text, name="many.policy")
    assert 1 < len(info.value.diagnostics) <= 20


def test_deeply_nested_expression_is_a_diagnostic_not_a_crash():
    text = "pattern p = /x/\nrule r { when " + "(" * 3000 + "input matches p" + ")" * 3000 + " block }"
    try:
        compile_policy(text=text, name="deep.policy")
    except PolicyError as e:
        assert all(d.code.startswith("E") for d in e.diagnostics)


def test_invalid_regex_on_its_own_line_points_inside_the_regex():
    text = "pattern p =\n  /a(b/\nrule r { when input matches p block }\n"
    with pytest.raises(PolicyError) as info:
        compile_policy(text=text, name="x.policy")
    d = info.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.column) == ("E0303", 2, 5)


def test_one_missing_brace_is_one_error():
    text = ('pattern p = /x/\n\nrule a { when input matches p block "x"\n\n'
            'rule b { when input matches p flag }\nrule c { when input matches p flag }\n')
    with pytest.raises(PolicyError) as info:
        compile_policy(text=text, name="x.policy")
    assert len(info.value.diagnostics) == 1
