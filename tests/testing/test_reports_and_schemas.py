"""JSON reports and decisions validate against the published JSON Schemas (which match the models); JUnit XML
validates against schemas/junit.xsd, even with control characters and lone surrogates in test names."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest
import xmlschema

from policyengine.cli.main import main
from policyengine.testing import schema
from policyengine.testing.reporters import JUnitReporter
from policyengine.testing.runner import discover, run

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"

POLICY = r'''policy s {}
context { tier: string }
pattern card = /\b\d(?:[ -]?\d){12,18}\b/ validate luhn
words rude = ["darn"]
rule no_rude { severity high  when input contains rude  block "civil" }
rule mask { when input matches card  redact card }
rule gold { when context.tier == "gold" flag "gold" }
rule audit { mode shadow  when input contains rude  flag "audit" }
test "rude" { input "darn" expect block by no_rude }
test "fails" { input "hello" expect block }
'''
CASES = '- {name: "odd \\x01 name \\uD800", input: "x\\x0b\\uD800", expect: block, todo: true}\n' \
        '- {input: "darn", context: {tier: gold}, expect: block, by: [audit, gold]}\n'


@pytest.fixture
def pdir(tmp_path, monkeypatch):
    (tmp_path / "s.policy").write_text(POLICY)
    (tmp_path / "s.cases.yaml").write_text(CASES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def validator(name: str) -> jsonschema.protocols.Validator:
    s = json.loads((SCHEMAS / name).read_text())
    cls = jsonschema.validators.validator_for(s)
    cls.check_schema(s)
    return cls(s)


@pytest.mark.parametrize("name", sorted(schema.SCHEMAS))
def test_published_schemas_match_the_models(name):
    assert (SCHEMAS / name).read_text() == schema.render(name), \
        "schemas drifted from the models: run `python -m policyengine.testing.schema`"


def test_test_report_validates(pdir, capsys):
    assert main(["test", "s.policy", "--format", "json", "--coverage"]) == 1
    doc = json.loads(capsys.readouterr().out)
    validator("test-report.schema.json").validate(doc)
    assert [t["status"] for t in doc["tests"]] == ["passed", "failed", "todo", "passed"]  # shadow rule counts in `by`
    bad = dict(doc, failed="one")
    with pytest.raises(jsonschema.ValidationError):
        validator("test-report.schema.json").validate(bad)


def test_decisions_validate(pdir, capsys):
    v = validator("decision.schema.json")
    assert main(["check", "s.policy", "darn 4111 1111 1111 1111", "hello", "--format", "json",
                 "--context", '{"tier": "gold"}']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        v.validate(json.loads(line))
    (pdir / "in.jsonl").write_text('{"id": "a1", "text": "darn"}\n{"text": "4111 1111 1111 1111"}\n')
    assert main(["check", "s.policy", "--input", "in.jsonl", "--format", "json"]) == 0
    for line in capsys.readouterr().out.splitlines():
        v.validate(json.loads(line))
    with pytest.raises(jsonschema.ValidationError):
        v.validate({**json.loads(lines[0]), "action": "maybe"})


def test_junit_validates_with_awkward_characters(pdir):
    out = io.StringIO()
    rep = JUnitReporter(out)
    for e in run(discover(["s.policy"]), coverage=True):
        rep.handle(e)
    xml = out.getvalue()
    xsd = xmlschema.XMLSchema(str(SCHEMAS / "junit.xsd"))
    xsd.validate(io.StringIO(xml))
    doc = xsd.to_dict(io.StringIO(xml))
    suite = doc["testsuite"][0]
    assert (suite["@tests"], suite["@failures"], suite["@skipped"]) == (4, 1, 1)
    assert "odd \\u0001 name \\ud800" in xml and "<failure" in xml and "ALLOW (no rule matched" in xml


def test_junit_schema_rejects_what_ci_tools_reject():
    xsd = xmlschema.XMLSchema(str(SCHEMAS / "junit.xsd"))
    assert not xsd.is_valid(io.StringIO('<testsuites><testsuite name="x" tests="one" failures="0" errors="0"/>'
                                        '</testsuites>'))
    assert not xsd.is_valid(io.StringIO('<testsuites><testsuite name="x" tests="1" failures="0" errors="0">'
                                        '<testcase classname="c"/></testsuite></testsuites>'))  # no name
