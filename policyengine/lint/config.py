"""`[tool.policyengine.lint]` in pyproject.toml:

    [tool.policyengine.lint]
    semantic = true                 # run the rules that need the embedding model (default true)
    [tool.policyengine.lint.rules]
    missing-test = "error"          # error | warning | ignore
    regex-bare-substring = "ignore"
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..diagnostics import did_you_mean
from ..errors import PolicyEngineError
from .rule import LEVELS


class LintConfigError(PolicyEngineError, ValueError):
    """[tool.policyengine.lint] in pyproject.toml is unusable (message is shown to the user as is)."""


ConfigError = LintConfigError  # the name before 0.2; policyengine exports only LintConfigError


@dataclass(frozen=True)
class LintConfig:
    levels: dict[str, str] = field(default_factory=dict)
    semantic: bool = True
    path: str | None = None


def find_pyproject(start: Path) -> Path | None:
    start = start.resolve()
    for d in [start, *start.parents] if start.is_dir() else [start.parent, *start.parent.parents]:
        p = d / "pyproject.toml"
        if p.is_file():
            return p
    return None


def load_config(pyproject: Path | None, known_rules: set[str]) -> LintConfig:
    if pyproject is None:
        return LintConfig()
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise LintConfigError(f"{pyproject}: error: cannot read [tool.policyengine.lint]: {e}") from None
    section = data.get("tool", {}).get("policyengine", {}).get("lint", {})
    if not isinstance(section, dict):
        raise LintConfigError(f"{pyproject}: error: [tool.policyengine.lint] must be a table")
    unknown_keys = set(section) - {"rules", "semantic"}
    if unknown_keys:
        raise LintConfigError(f"{pyproject}: error: unknown key(s) in [tool.policyengine.lint]: "
                          f"{', '.join(sorted(unknown_keys))} (known: rules, semantic)")
    levels: dict[str, str] = {}
    rules = section.get("rules", {})
    if not isinstance(rules, dict):
        raise LintConfigError(f"{pyproject}: error: [tool.policyengine.lint.rules] must map rule ids to levels")
    for rule_id, level in rules.items():
        if rule_id not in known_rules:
            hint = did_you_mean(rule_id, known_rules)
            raise LintConfigError(f"{pyproject}: error: unknown lint rule '{rule_id}' in [tool.policyengine.lint.rules]"
                              + (f"; {hint}" if hint else ""))
        if level not in LEVELS:
            raise LintConfigError(f"{pyproject}: error: level of '{rule_id}' must be one of error, warning, ignore; "
                              f"got {level!r}")
        levels[rule_id] = level
    semantic = section.get("semantic", True)
    if not isinstance(semantic, bool):
        raise LintConfigError(f"{pyproject}: error: [tool.policyengine.lint] semantic must be true or false")
    return LintConfig(levels, semantic, str(pyproject))
