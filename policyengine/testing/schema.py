"""JSON Schemas of policyengine's JSON output, generated from the pydantic models (so they cannot drift:
tests/testing/test_schemas.py compares the published files with a fresh generation).

    python -m policyengine.testing.schema [OUTDIR]     # writes OUTDIR/*.schema.json (default: schemas/)

- decision.schema.json: one decision (`policyengine check|explain --format json`, Decision.to_json(),
  `engine.evaluate(...).model_dump(mode="json")`);
- test-report.schema.json: `policyengine test --format json` (and --json-report FILE).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE = "urn:policyengine:schema:"


def decision_schema() -> dict[str, Any]:
    from ..models import Decision

    s = Decision.model_json_schema(mode="serialization")
    # `policyengine check` puts the message's id first (from --input JSONL or the line number)
    s["properties"] = {"id": {"anyOf": [{"type": "string"}, {"type": "integer"}],
                              "description": "the message id (`policyengine check --input FILE.jsonl`)"},
                       **s["properties"]}
    return _wrap("decision", "policyengine decision", s)


def test_report_schema() -> dict[str, Any]:
    from .reporters import TestReport

    return _wrap("test-report", "policyengine test report",
                 TestReport.model_json_schema(mode="serialization"))


def _wrap(name: str, title: str, s: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DIALECT, "$id": f"{BASE}{name}.schema.json", "title": title,
            **{k: v for k, v in s.items() if k != "title"}}


SCHEMAS = {"decision.schema.json": decision_schema, "test-report.schema.json": test_report_schema}


def render(name: str) -> str:
    return json.dumps(SCHEMAS[name](), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "schemas")
    out.mkdir(parents=True, exist_ok=True)
    for name in SCHEMAS:
        (out / name).write_text(render(name), encoding="utf-8")
        print(out / name)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
