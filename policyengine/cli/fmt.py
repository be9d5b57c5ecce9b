"""`policyengine fmt [--check] [--diff] PATH...`: rewrite .policy files in the one canonical layout.

Exit 0: every file is formatted (or was rewritten); 1: with --check, some file would change; 2: a file could not
be read or parsed, or the formatter could not prove its output (nothing is written then)."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> dict:
    p = sub.add_parser("fmt", help="format .policy files (opinionated, keeps comments, proves its output)",
                       description="Format .policy files in place. Directories are searched for *.policy files; "
                                   "'-' formats stdin to stdout.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")
    return {"fmt": cmd_fmt}


def policy_files(paths: list[str]) -> list[str]:
    """Files named on the command line, plus every *.policy under the named directories (sorted)."""
    out: list[str] = []
    for p in paths:
        if p != "-" and os.path.isdir(p):
            out.extend(sorted(str(f) for f in Path(p).rglob("*.policy") if f.is_file()))
        else:
            out.append(p)
    return out


def cmd_fmt(args: argparse.Namespace) -> int:
    from ..fmt import FormatError, SelfCheckError, format_source
    from ..source import Source

    status = EXIT_OK
    changed = unchanged = 0
    write = not (args.check or args.diff)
    files = policy_files(args.paths)
    if not files:
        print(f"policyengine fmt: no .policy files found in {' '.join(args.paths)}", file=sys.stderr)
        return EXIT_ERROR
    for path in files:
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8", newline="") as fh:
                    text = fh.read()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else f"not UTF-8 text ({e.reason} at byte {e.start})"
            print(f"{path}: error: cannot read: {reason}", file=sys.stderr)
            status = EXIT_ERROR
            continue
        shown = "<stdin>" if path == "-" else path
        try:
            out = format_source(Source(shown, text))
        except FormatError as e:
            print(e, file=sys.stderr)
            print(f"{shown}: not formatted (fix the errors above first)", file=sys.stderr)
            status = EXIT_ERROR
            continue
        except SelfCheckError as e:
            print(e, file=sys.stderr)
            status = EXIT_ERROR
            continue
        if path == "-" and write:
            sys.stdout.write(out)
            continue
        if out == text:
            unchanged += 1
            continue
        changed += 1
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(keepends=True), out.splitlines(keepends=True),
                                                       f"{shown} (original)", f"{shown} (formatted)"))
        if args.check:
            print(f"would reformat {shown}", file=sys.stderr)
            status = max(status, EXIT_CHANGED)
        if write:
            tmp = f"{path}.fmt-tmp"
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(out)
            os.replace(tmp, path)
            print(f"reformatted {shown}", file=sys.stderr)
    if not (len(args.paths) == 1 and args.paths[0] == "-"):
        verb = "reformatted" if write else "would be reformatted"
        print(f"{changed} file{'s' if changed != 1 else ''} {verb}, {unchanged} unchanged", file=sys.stderr)
    return status
