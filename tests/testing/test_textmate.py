"""The VS Code TextMate grammar (editors/vscode) stays in step with the Lark grammar: every keyword of the
language is highlighted, every regex compiles, and a sample line tokenizes as expected."""

from __future__ import annotations

import json
import re
from pathlib import Path

import regex  # close to Oniguruma (possessive/atomic groups, lookbehind)

ROOT = Path(__file__).resolve().parents[2]
TM = json.loads((ROOT / "editors/vscode/syntaxes/policy.tmLanguage.json").read_text())


def _regexes(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("match", "begin", "end") and isinstance(v, str):
                out.append(v)
            else:
                out += _regexes(v)
    elif isinstance(node, list):
        for v in node:
            out += _regexes(v)
    return out


def test_every_regex_compiles():
    rx = _regexes(TM)
    assert len(rx) > 10
    for r in rx:
        regex.compile(r)


def test_every_keyword_of_the_grammar_is_highlighted():
    lark = (ROOT / "policyengine/syntax/policy.lark").read_text()
    keywords = set(re.findall(r'"([a-z_]+)"', lark))
    assert {"policy", "rule", "similar", "overrides", "threshold", "expect"} <= keywords
    highlighted = set()
    for r in _regexes(TM):
        for group in re.findall(r"\\b\(([a-z_|]+)\)", r):
            highlighted |= set(group.split("|"))
    assert keywords <= highlighted, sorted(keywords - highlighted)


def test_sample_line_scopes():
    repo = TM["repository"]
    line = 'pattern card = /\\b\\d{13}\\b/i validate luhn  # cards'
    m = regex.search(repo["regex"]["match"], line)
    assert m and m.group(1) == "/\\b\\d{13}\\b/" and m.group(2) == "i"
    d = regex.search(repo["declaration"]["match"], line)
    assert d.group(1, 2) == ("pattern", "card")
    assert regex.search(repo["comment"]["match"], line).group(0) == "# cards"
    c = regex.search(repo["context"]["match"], 'when context.user.role == "x"')
    assert c.group(3) == "user.role"


def test_vscode_manifest_points_at_the_grammar():
    pkg = json.loads((ROOT / "editors/vscode/package.json").read_text())
    g = pkg["contributes"]["grammars"][0]
    assert g["scopeName"] == TM["scopeName"] and (ROOT / "editors/vscode" / g["path"]).is_file()
    assert pkg["contributes"]["languages"][0]["extensions"] == [".policy"]
