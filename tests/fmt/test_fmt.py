"""fmt: golden files, an identity file, the self-check, and the CLI (--check, --diff, in place, stdin)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyengine import nodes as n
from policyengine.cli.main import main
from policyengine.fmt import FormatError, SelfCheckError, format_source, format_text
from policyengine.fmt import printer
from policyengine.source import Source
from policyengine.syntax import parse_policy

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
GOLDEN = sorted(HERE.glob("golden/*.input.policy"))


@pytest.mark.parametrize("case", GOLDEN, ids=lambda p: p.name.split(".")[0])
def test_golden(case: Path) -> None:
    expected = case.with_name(case.name.replace(".input.", ".expected."))
    got = format_text(case.read_text(encoding="utf-8"), str(case))
    assert got == expected.read_text(encoding="utf-8")
    assert format_text(got, str(case)) == got  # the expected file is itself canonical


def _identity_cases() -> list[str]:
    text = (HERE / "identity.policy").read_text(encoding="utf-8")
    return [c.strip("\n") + "\n" for c in text.split("\n----\n")]


@pytest.mark.parametrize("entry", _identity_cases())
def test_identity(entry: str) -> None:
    assert format_text(entry, "identity.policy") == entry


REPO_POLICIES = sorted([*ROOT.glob("policies/**/*.policy"), *ROOT.glob("examples/**/*.policy"),
                        *HERE.glob("golden/*.policy")])


@pytest.mark.parametrize("path", REPO_POLICIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_policy_in_the_repo_formats_and_proves_itself(path: Path) -> None:
    out = format_source(Source(str(path), path.read_text(encoding="utf-8")))  # raises if the proof fails
    before, _ = parse_policy(Source("x", path.read_text(encoding="utf-8")))
    after, diags = parse_policy(Source("x", out))
    assert not diags and before == after


def test_comments_are_all_kept() -> None:
    src = (HERE / "golden/comments.input.policy").read_text(encoding="utf-8")
    out = format_text(src)
    for line in src.splitlines():
        if "#" in line:
            assert line[line.index("#"):].rstrip() in out


def test_syntax_error_is_reported_not_formatted() -> None:
    with pytest.raises(FormatError) as e:
        format_text('rule r { when input matches a block "x"\n', "bad.policy")
    assert "bad.policy:" in str(e.value) and "error[E0002]" in str(e.value)


def test_duplicate_field_is_not_silently_dropped() -> None:
    with pytest.raises(FormatError, match="E0007"):
        format_text('rule r { severity low severity high when input matches a block "x" }')


def test_self_check_catches_a_printer_that_changes_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    real = printer.action
    monkeypatch.setattr(printer, "action", lambda a: real(a).replace("block", "flag"))
    with pytest.raises(SelfCheckError, match="different policy"):
        format_text('rule r { when input matches a block "x" }', "r.policy")


def test_self_check_catches_a_lost_comment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(printer.Printer, "_attach", lambda self, outs: [])
    with pytest.raises(SelfCheckError, match="comment"):
        format_text('rule r { when input matches a block "x" }  # keep me\n', "r.policy")


def test_self_check_catches_non_idempotence(monkeypatch: pytest.MonkeyPatch) -> None:
    real = printer.Printer.render
    monkeypatch.setattr(printer.Printer, "render", lambda self: real(self) + ("\n" if self.src.text.endswith("}") else ""))
    with pytest.raises(SelfCheckError, match="idempotent"):
        format_text('rule r { when input matches a block "x" }', "r.policy")


# ---- expressions round-trip: generated ASTs, printed, parsed back ----------------------------------------

_atoms = st.one_of(
    st.builds(n.Matches, st.sampled_from(["input", "output"]), st.builds(n.Name, st.sampled_from(["p", "q"]))),
    st.builds(n.Contains, st.sampled_from(["input", "output"]), st.builds(n.Name, st.just("w"))),
    st.builds(n.Similar, st.just("input"), st.builds(n.Name, st.just("c"))),
    st.builds(n.Compare, st.sampled_from(["a", "u.role"]), st.sampled_from(["==", "!=", "<", ">="]),
              st.one_of(st.text(max_size=5), st.integers(-5, 5).map(float), st.booleans())),
    st.builds(n.InList, st.just("a"), st.lists(st.one_of(st.text(max_size=3), st.booleans()), max_size=3).map(tuple)),
    st.builds(n.Exists, st.just("a.b")),
)


def _flat(cls: type, ops: list) -> n.Expr:
    out: list = []
    for o in ops:
        out.extend(o.operands if isinstance(o, cls) else [o])
    return cls(tuple(out))


_exprs = st.recursive(_atoms, lambda inner: st.one_of(
    st.builds(n.Not, inner),
    st.lists(inner, min_size=2, max_size=3).map(lambda ops: _flat(n.And, ops)),
    st.lists(inner, min_size=2, max_size=3).map(lambda ops: _flat(n.Or, ops))), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(_exprs)
def test_generated_conditions_round_trip(e: n.Expr) -> None:
    text = f"rule r {{\n  when {printer.expr(e)}\n  block \"m\"\n}}\n"
    parsed, diags = parse_policy(Source("g.policy", text))
    assert not diags and parsed is not None
    assert parsed.items[0].when == e
    assert format_text(text) == format_text(format_text(text))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_string_literal_round_trips(value: str) -> None:
    text = f"words w = [{printer.quote(value)}]\n"
    parsed, diags = parse_policy(Source("s.policy", text))
    assert not diags and parsed is not None and parsed.items[0].words[0].value == value


# ---- CLI --------------------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


UGLY = 'rule r {  when input matches a   block "x" }  # note\n'
PRETTY = 'rule r {\n  when input matches a\n  block "x"\n}  # note\n'


def test_cli_check_exits_1_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = _write(tmp_path, "a.policy", UGLY)
    _write(tmp_path, "b.policy", PRETTY)
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"would reformat {p}" in err and "1 file would be reformatted, 1 unchanged" in err
    assert p.read_text(encoding="utf-8") == UGLY


def test_cli_check_passes_on_formatted_files(tmp_path: Path) -> None:
    _write(tmp_path, "b.policy", PRETTY)
    assert main(["fmt", "--check", str(tmp_path / "b.policy")]) == 0


def test_cli_diff(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = _write(tmp_path, "a.policy", UGLY)
    assert main(["fmt", "--diff", str(p)]) == 0
    out = capsys.readouterr().out
    assert f"--- {p} (original)" in out and "+  when input matches a" in out
    assert p.read_text(encoding="utf-8") == UGLY
    assert main(["fmt", "--diff", "--check", str(p)]) == 1


def test_cli_rewrites_in_place(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = _write(tmp_path, "a.policy", UGLY)
    assert main(["fmt", str(p)]) == 0
    assert p.read_text(encoding="utf-8") == PRETTY
    assert f"reformatted {p}" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.fmt-tmp"))


def test_cli_syntax_error_exit_2_file_untouched(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = _write(tmp_path, "bad.policy", 'rule r { when input matches a block "x"\n')
    good = _write(tmp_path, "good.policy", UGLY)
    assert main(["fmt", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1:" in err and "not formatted" in err and "Traceback" not in err
    assert bad.read_text(encoding="utf-8") == 'rule r { when input matches a block "x"\n'
    assert good.read_text(encoding="utf-8") == PRETTY  # the other files are still formatted


def test_cli_missing_and_binary_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "bin.policy").write_bytes(b"\xff\xfe\x00rule")
    assert main(["fmt", str(tmp_path / "nope.policy"), str(tmp_path / "bin.policy")]) == 2
    err = capsys.readouterr().err
    assert "nope.policy: error: cannot read" in err and "not UTF-8" in err


def test_cli_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(UGLY))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == PRETTY
