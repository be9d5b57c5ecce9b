"""`policyengine lint [--format text|json|sarif] PATH...`: exit 1 when a finding is at error level, 2 on usage
or configuration errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> dict:
    p = sub.add_parser("lint", help="find policy mistakes that cause over-blocking (text, JSON or SARIF output)",
                       description="Lint .policy files (directories are searched for *.policy). Levels are "
                                   "configured in pyproject.toml under [tool.policyengine.lint.rules].")
    p.add_argument("paths", nargs="*", default=[], metavar="PATH")
    p.add_argument("--format", choices=["text", "json", "sarif"], default="text")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("--config", metavar="PYPROJECT", help="pyproject.toml to read (default: nearest one upwards)")
    p.add_argument("--no-semantic", action="store_true", help="skip the rules that need the embedding model")
    p.add_argument("--list-rules", action="store_true", help="print every rule with its category and level")
    return {"lint": cmd_lint}


def cmd_lint(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..lint import ConfigError, lint_paths, load_config
    from ..lint.config import find_pyproject
    from ..lint.rule import load_module_rules
    from .main import UsageError

    infos = [info for info, _ in load_module_rules()]
    pyproject = Path(args.config) if args.config else find_pyproject(Path(args.paths[0]) if args.paths else Path.cwd())
    try:
        config = load_config(pyproject, {i.id for i in infos})
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if args.list_rules:
        for i in sorted(infos, key=lambda i: (i.category, i.id)):
            lvl = config.levels.get(i.id, i.level)
            print(f"{i.id:30} {i.category:12} {lvl:8} {i.summary}{'  (needs the model)' if i.needs_model else ''}")
        return 0
    if not args.paths:
        raise UsageError("lint needs at least one PATH (a .policy file or a directory)")
    from .main import require_paths

    require_paths(args.paths)
    if args.no_semantic:
        config = replace(config, semantic=False)
    report = lint_paths(args.paths, config)
    if not report.files and not report.findings:
        raise UsageError(f"no .policy files found in {' '.join(args.paths)}")
    from ..lint.report import render_json, render_sarif, render_text

    text = {"text": render_text, "json": render_json, "sarif": render_sarif}[args.format](report)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        if args.format != "text":
            print(render_text(report).splitlines()[-1], file=sys.stderr)
    else:
        sys.stdout.write(text)
    return report.exit_code
