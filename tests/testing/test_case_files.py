"""NAME.cases.yaml: parsing, and every mistake reported as file:line:col with a caret."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyengine.compiler import compile_policy
from policyengine.diagnostics import PolicyError
from policyengine.testing.cases import check_against, load_case_file

POLICY = """policy p {}
context { user.role: string }
words slurs = ["darn"]
rule no_slurs { severity high when input contains slurs block "civil" }
"""


@pytest.fixture
def pdir(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "p.policy").write_text(POLICY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(pdir: Path, text: str, name: str = "p.cases.yaml") -> str:
    (pdir / name).write_text(text)
    return name


def errors(path: str) -> str:
    with pytest.raises(PolicyError) as e:
        cf = load_case_file(path)
        check_against(cf, compile_policy(str(cf.policy)))
    return e.value.render()


def test_list_and_mapping_forms(pdir):
    write(pdir, "- {input: oh darn, expect: block, by: no_slurs}\n- input: hi\n  expect: allow\n  todo: true\n")
    cf = load_case_file("p.cases.yaml")
    assert [c.expect for c in cf.cases] == ["block", "allow"]
    assert cf.cases[0].by == ("no_slurs",) and cf.cases[0].name == "oh darn" and cf.cases[0].line == 1
    assert cf.cases[1].todo == "" and cf.cases[1].line == 2 and cf.cases[1].origin == "cases"
    write(pdir, "policy: p.policy\ncases:\n  - name: ctx\n    input: x\n    context: {user: {role: admin}}\n"
                "    expect: allow\n    todo: not yet\n", "other.cases.yaml")
    cf = load_case_file("other.cases.yaml")
    assert cf.policy == Path("p.policy") and cf.cases[0].context == {"user": {"role": "admin"}}
    assert cf.cases[0].todo == "not yet" and cf.cases[0].line == 3
    check_against(cf, compile_policy("p.policy"))


def test_empty_file_has_no_cases(pdir):
    write(pdir, "# nothing yet\n")
    assert load_case_file("p.cases.yaml").cases == []


def test_all_mistakes_at_once_with_positions(pdir):
    write(pdir, "- input: hi\n  expct: allow\n- input: 3\n  expect: blok\n- expect: allow\n")
    out = errors("p.cases.yaml")
    assert "p.cases.yaml:2:3: error[E0603]: unknown key 'expct' in a case\n  |   expct: allow\n  |   ^^^^^" in out
    assert "= help: did you mean 'expect'?" in out
    assert "p.cases.yaml:1:3: error[E0604]: a case needs `expect:`" in out
    assert "p.cases.yaml:3:10: error[E0604]: `input` must be a string, got a number" in out
    assert "p.cases.yaml:4:11: error[E0604]: `expect` must be one of allow, block, redact, flag; got 'blok'" in out
    assert "did you mean 'block'?" in out
    assert "p.cases.yaml:5:3: error[E0604]: a case needs `input:`" in out
    assert out.endswith("5 errors found")


def test_invalid_yaml(pdir):
    write(pdir, "- input: [unclosed\n  expect: allow\n")
    assert "p.cases.yaml:2:9: error[E0601]: not valid YAML" in errors("p.cases.yaml")


def test_unknown_rule_and_context_type_checked_against_the_policy(pdir):
    write(pdir, "- input: darn\n  expect: block\n  by: no_slur\n- input: x\n  context: {user: {role: 3}}\n"
                "  expect: allow\n")
    out = errors("p.cases.yaml")
    assert "p.cases.yaml:3:7: error[E0605]: case expects rule 'no_slur', which does not exist in policy 'p'" in out
    assert "did you mean 'no_slurs'?" in out
    assert "p.cases.yaml:5:12: error[E0606]: context.user.role must be a string" in out


def test_missing_policy(pdir):
    write(pdir, "- {input: x, expect: allow}\n", "orphan.cases.yaml")
    with pytest.raises(PolicyError, match=r"orphan.cases.yaml:1:1: error\[E0602\]: no policy for this case file"):
        load_case_file("orphan.cases.yaml")
    write(pdir, "policy: nope.policy\ncases: []\n", "bad.cases.yaml")
    with pytest.raises(PolicyError, match=r"bad.cases.yaml:1:9: error\[E0602\]: policy file not found: 'nope.policy'"):
        load_case_file("bad.cases.yaml")
