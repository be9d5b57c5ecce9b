"""suspicious-unicode: invisible characters or words mixing scripts (homoglyphs) in literals: such an example,
word or pattern never matches what it looks like."""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

from ... import nodes as n
from ..rule import Finding, LintContext, RuleInfo, regex_token_offset, span_at

RULE = RuleInfo("suspicious-unicode", "hygiene", "error",
                "Invisible characters or mixed-script words in strings, word lists and patterns")

_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC")


def invisible(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in ("Cf", "Co", "Cn") or (cat == "Zs" and ch != " ") or (cat == "Cc" and ch not in "\n\t")


def _script(ch: str) -> str | None:
    name = unicodedata.name(ch, "")
    return next((s for s in _SCRIPTS if name.startswith(s + " ")), None)


def problems(text: str) -> list[tuple[int, str]]:
    out = []
    for i, ch in enumerate(text):
        if invisible(ch):
            out.append((i, f"invisible character U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}"))
    for m in re.finditer(r"\w+", text):
        scripts = {s for s in map(_script, m.group()) if s}
        if len(scripts) > 1:
            odd = next(ch for ch in m.group() if _script(ch) and _script(ch) != "LATIN") if "LATIN" in scripts \
                else m.group()[0]
            out.append((m.start(), f"word {m.group()!r} mixes {' and '.join(sorted(scripts))} letters "
                        f"(U+{ord(odd):04X} {unicodedata.name(odd, '')})"))
    return out


def check(ctx: LintContext) -> Iterable[Finding]:
    texts: list[tuple[object, n.Text, str]] = []
    for f, it in ctx.items((n.WordsDef, n.ConceptDef, n.RuleDef, n.TestDef, n.Header)):
        if isinstance(it, n.WordsDef):
            texts += [(f, t, "word") for t in it.words]
        elif isinstance(it, n.ConceptDef):
            texts += [(f, t, "example") for t in (*it.examples, *it.counter)]
        elif isinstance(it, n.RuleDef) and it.action is not None:
            texts += [(f, t, "message") for t in (it.action.message, it.action.replacement) if t is not None]
    for f, t, what in texts:
        for _, msg in problems(t.value)[:1]:
            yield ctx.finding(RULE, t.span, f"{what} {t.value!r} contains an {msg}" if msg.startswith("invisible")
                              else f"{what} {t.value!r}: {msg}",
                              help="retype it with plain characters (or write the character as a \\uXXXX escape "
                              "if it is really meant)")
    for f, p in ctx.items(n.PatternDef):
        for off, msg in problems(p.regex)[:1]:
            yield ctx.finding(RULE, span_at(f, regex_token_offset(f, p) + 1 + off), f"pattern '{p.name.value}': {msg}",
                              help="retype it with plain characters, or write \\uXXXX in the regex")
