"""Imports and word-list files on disk: resolution, diamonds, cycles, escaping the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from policyengine.compiler import compile_policy
from policyengine.diagnostics import PolicyError
from policyengine.engine import Engine


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def codes(exc: pytest.ExceptionInfo) -> list[tuple[str, str, int, int]]:
    return [(d.code, d.span.file, d.span.line, d.span.column) for d in exc.value.diagnostics]


def compile_errors(folder: Path, monkeypatch: pytest.MonkeyPatch, entry: str = "main.policy") -> pytest.ExceptionInfo:
    """Compile `entry` from inside `folder` (so diagnostics show relative paths); it must fail."""
    monkeypatch.chdir(folder)
    with pytest.raises(PolicyError) as info:
        compile_policy(entry)
    return info


def test_import_relative_to_importing_file(tmp_path):
    root = tmp_path / "root"
    main = write(root / "main.policy", 'import "lib/a.policy"\nrule r { when input matches secret block "s" }\n')
    write(root / "lib/a.policy", 'import "b.policy"\n')  # lib/b.policy, not root/b.policy
    write(root / "lib/b.policy", "pattern secret = /s3cr3t/\n")
    write(root / "b.policy", "pattern wrong = /nope/\n")
    e = Engine.from_path(main)
    assert set(e.policy.patterns) == {"secret"}
    assert e.evaluate("my s3cr3t").action == "block"
    assert len(e.policy.files) == 3


def test_diamond_import_is_loaded_once(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write(root / "main.policy", 'import "lib/a.policy"\nimport "lib/b.policy"\n'
          'rule r { when input matches common block }\nrule s { when input matches pa or input matches pb flag }\n')
    write(root / "lib/a.policy", 'import "common.policy"\npattern pa = /aaa/\n')
    write(root / "lib/b.policy", 'import "./common.policy"\npattern pb = /bbb/\n')
    write(root / "lib/common.policy", "pattern common = /ccc/\n")
    monkeypatch.chdir(root)
    p = compile_policy("main.policy")  # a duplicate load would be an E0204 'already defined' error
    paths = [f.path for f in p.files]
    assert sorted(paths) == ["lib/a.policy", "lib/b.policy", "lib/common.policy", "main.policy"]
    assert len(paths) == len(set(paths))


def test_imported_file_paths_are_shown_relative(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write(root / "main.policy", 'import "lib/a.policy"\n')
    write(root / "lib/a.policy", "rule r { when input matches nope block }\n")
    info = compile_errors(tmp_path, monkeypatch, "root/main.policy")
    assert codes(info) == [("E0401", "root/lib/a.policy", 1, 29)]
    assert info.value.render().startswith("root/lib/a.policy:1:29: error[E0401]")


def test_rules_in_imported_files_report_their_own_source(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write(root / "main.policy", 'import "lib/a.policy"\n\n\nwords w = ["boom"]\n')
    write(root / "lib/a.policy", 'rule r { when input contains w block }\n')
    monkeypatch.chdir(root)
    d = Engine.from_path("main.policy").evaluate("boom")
    assert d.rule == "r" and str(d.reasons[0].source) == "lib/a.policy:1:1"


def test_cycle(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write(root / "a.policy", 'import "b.policy"\npattern pa = /a/\n')
    write(root / "b.policy", 'import "c.policy"\n')
    write(root / "c.policy", 'import "b.policy"\n')
    info = compile_errors(root, monkeypatch, "a.policy")
    assert codes(info) == [("E0102", "c.policy", 1, 8)]
    assert "import cycle: a.policy -> b.policy -> c.policy -> b.policy" in info.value.render()


def test_self_import_is_a_cycle(tmp_path, monkeypatch):
    write(tmp_path / "a.policy", 'import "a.policy"\n')
    info = compile_errors(tmp_path, monkeypatch, "a.policy")
    assert [c[0] for c in codes(info)] == ["E0102"]


def test_import_escaping_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write(tmp_path / "outside.policy", "pattern x = /x/\n")
    write(root / "main.policy", 'pattern p = /p/\nimport "../outside.policy"\n')
    info = compile_errors(root, monkeypatch, "main.policy")
    assert codes(info) == [("E0101", "main.policy", 2, 8)]


def test_import_escaping_root_from_a_subfolder(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write(tmp_path / "outside.policy", "pattern x = /x/\n")
    write(root / "main.policy", 'import "lib/a.policy"\n')
    write(root / "lib/a.policy", 'import "../../outside.policy"\n')
    info = compile_errors(root, monkeypatch, "main.policy")
    assert codes(info) == [("E0101", "lib/a.policy", 1, 8)]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_import_escaping_root_via_symlink(tmp_path, monkeypatch):
    root = tmp_path / "root"
    target = write(tmp_path / "elsewhere" / "evil.policy", "pattern x = /x/\n")
    (root / "lib").mkdir(parents=True)
    os.symlink(target, root / "lib" / "evil.policy")
    write(root / "main.policy", 'import "lib/evil.policy"\n')
    info = compile_errors(root, monkeypatch, "main.policy")
    assert codes(info) == [("E0101", "main.policy", 1, 8)]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinked_word_list_outside_root_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "root"
    target = write(tmp_path / "elsewhere" / "words.txt", "boom\n")
    root.mkdir()
    os.symlink(target, root / "words.txt")
    write(root / "main.policy", 'words w = file "words.txt"\nrule r { when input contains w block }\n')
    info = compile_errors(root, monkeypatch, "main.policy")
    assert codes(info) == [("E0104", "main.policy", 1, 16)]


def test_symlink_inside_root_is_fine(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write(root / "real" / "common.policy", "pattern p = /p/\n")
    os.symlink(root / "real", root / "alias")
    write(root / "main.policy", 'import "alias/common.policy"\nrule r { when input matches p block }\n')
    monkeypatch.chdir(root)
    assert compile_policy("main.policy").patterns["p"].regex.pattern == "p"


def test_word_list_from_file_relative_to_its_policy(tmp_path, monkeypatch):
    root = tmp_path / "root"
    write(root / "main.policy", 'import "lists/defs.policy"\nrule r { when input contains banned block }\n')
    write(root / "lists/defs.policy", 'words banned = file "banned.txt"\n')
    write(root / "lists/banned.txt", "# comment line\n\nDarn\n  heck it  \n")
    monkeypatch.chdir(root)
    e = Engine.from_path("main.policy")
    assert e.evaluate("oh darn").action == "block"
    assert e.evaluate("HECK   IT").action == "block"
    assert e.evaluate("heck").action == "allow"
    assert e.evaluate("comment line").action == "allow"  # '#' lines are comments


def test_word_list_file_changes_the_digest(tmp_path, monkeypatch):
    write(tmp_path / "main.policy", 'words w = file "w.txt"\nrule r { when input contains w block }\n')
    write(tmp_path / "w.txt", "one\n")
    monkeypatch.chdir(tmp_path)
    d1 = compile_policy("main.policy").digest
    write(tmp_path / "w.txt", "two\n")
    assert compile_policy("main.policy").digest != d1


def test_missing_word_list_file_error_at_its_line(tmp_path, monkeypatch):
    write(tmp_path / "main.policy", 'pattern p = /x/\n\n\nwords w = file "lists/nope.txt"\n'
          'rule r { when input contains w block }\n')
    info = compile_errors(tmp_path, monkeypatch)
    assert codes(info) == [("E0105", "main.policy", 4, 16)]
    assert "word list file not found: 'lists/nope.txt'" in info.value.render()


def test_empty_word_list_file(tmp_path, monkeypatch):
    write(tmp_path / "main.policy", 'words w = file "w.txt"\nrule r { when input contains w block }\n')
    write(tmp_path / "w.txt", "# only a comment\n\n")
    info = compile_errors(tmp_path, monkeypatch)
    assert codes(info) == [("E0304", "main.policy", 1, 7)]


def test_missing_import(tmp_path, monkeypatch):
    write(tmp_path / "main.policy", 'import "common.policy"\n')
    write(tmp_path / "commons.policy", "")
    info = compile_errors(tmp_path, monkeypatch)
    assert codes(info) == [("E0103", "main.policy", 1, 8)]
    assert "did you mean 'commons.policy'?" in info.value.render()


def test_errors_in_several_files_are_all_reported(tmp_path, monkeypatch):
    write(tmp_path / "main.policy", 'import "a.policy"\nrule r { when input matches nope block }\n')
    write(tmp_path / "a.policy", "rule s { when input contains nah block }\n")
    info = compile_errors(tmp_path, monkeypatch)
    assert sorted(c[1] for c in codes(info)) == ["a.policy", "main.policy"]


def test_duplicate_name_across_files(tmp_path, monkeypatch):
    write(tmp_path / "main.policy", 'import "a.policy"\npattern p = /x/\nrule r { when input matches p block }\n')
    write(tmp_path / "a.policy", "pattern p = /y/\n")
    info = compile_errors(tmp_path, monkeypatch)
    (c,) = codes(info)
    assert c[0] == "E0204"


def test_imported_header_with_other_model(tmp_path, monkeypatch):
    write(tmp_path / "main.policy", 'policy m { }\nimport "a.policy"\n')
    write(tmp_path / "a.policy", 'policy a { model "other/model" }\n')
    info = compile_errors(tmp_path, monkeypatch)
    assert [c[0] for c in codes(info)] == ["E0202"]


def test_syntax_error_in_imported_file(tmp_path, monkeypatch):
    write(tmp_path / "main.policy", 'import "a.policy"\n')
    write(tmp_path / "a.policy", "pattern p = /x/\nrule r { when input @ }\n")
    info = compile_errors(tmp_path, monkeypatch)
    assert codes(info) == [("E0001", "a.policy", 2, 21)]


def test_binary_imported_file(tmp_path, monkeypatch):
    write(tmp_path / "main.policy", 'import "a.policy"\n')
    (tmp_path / "a.policy").write_bytes(b"\xff\xfe\x00binary")
    info = compile_errors(tmp_path, monkeypatch)
    assert [c[0] for c in codes(info)] == ["E0104"]
