"""`policyengine` CLI: check, explain, test. Exit 0 on success whatever the decision, 1 when tests fail,
2 on usage, policy or input errors. No traceback reaches the user."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterator, Sequence

from ..diagnostics import PolicyError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="policyengine", description="Policy-as-code moderation for LLM and chat apps.")
    p.add_argument("--version", action="version", version=f"policyengine {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="decide on messages: TEXT arguments, --input FILE.jsonl, or stdin lines")
    c.add_argument("policy", help="a .policy file, or a bundle from `policyengine compile`")
    c.add_argument("text", nargs="*", help="messages to check (one decision each)")
    c.add_argument("--input", dest="input_file", metavar="FILE.jsonl",
                   help="one JSON object per line: {\"text\", optional \"id\", \"context\", \"output\"}; '-' = stdin")
    c.add_argument("--output-text", metavar="TEXT", help="a model response to check along with the input")
    c.add_argument("--context", metavar="JSON", help="context attributes as a JSON object")
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.add_argument("--threads", type=int, default=None, help="torch/FAISS threads (default 1 or $POLICYENGINE_THREADS)")

    add_limit_args(c)

    e = sub.add_parser("explain", help="explain the decision on one message in full")
    e.add_argument("policy", help="a .policy file, or a bundle from `policyengine compile`")
    e.add_argument("text")
    e.add_argument("--context", metavar="JSON")
    e.add_argument("--format", choices=["text", "json"], default="text")
    add_limit_args(e)

    for module in _command_modules():
        for name, handler in module.register(sub).items():
            COMMANDS[name] = handler
    return p


# Further commands live in their own modules (policyengine/cli/<name>.py), each with
# `register(subparsers) -> {command name: handler(args) -> exit code}`. Add the module name here.
COMMAND_MODULES: list[str] = ["serve", "test", "score", "fmt", "calibrate", "diff", "lint", "compile"]


def _command_modules() -> list:
    import importlib

    return [importlib.import_module(f"{__package__}.{name}") for name in COMMAND_MODULES]


def _version() -> str:
    from .. import __version__

    return __version__


def _context(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UsageError(_caret_json("--context", raw, e)) from None
    if not isinstance(value, dict):
        raise UsageError(f"--context must be a JSON object, got {type(value).__name__}")
    return value


def _caret_json(where: str, raw: str, e: json.JSONDecodeError) -> str:
    lines = raw.splitlines()
    line = lines[e.lineno - 1] if 0 < e.lineno <= len(lines) else ""  # the error may sit past a stripped newline
    return f"{where}:{e.lineno}:{e.colno}: error: invalid JSON: {e.msg}\n  | {line}\n  | {' ' * (e.colno - 1)}^"


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """Evaluation limits (policyengine.evaluator.Limits, docs/hardening.md), shared by check, explain and serve."""
    g = p.add_argument_group("limits")
    g.add_argument("--max-input-chars", type=int, default=2_000_000, metavar="N",
                   help="hard limit on a message's length; regex and word rules scan all of it (default 2000000)")
    g.add_argument("--max-chunks", type=int, default=256, metavar="N",
                   help="chunks of a message compared with concepts; past that a sample, named in the notes "
                        "(default 256)")
    g.add_argument("--on-oversize", choices=["truncate", "block"], default="block",
                   help="past --max-input-chars: block without evaluating (block, the default), or evaluate the "
                        "start and say in the decision's notes what was not checked (truncate)")


def limits_from_args(args: argparse.Namespace) -> Any:
    from ..evaluator import Limits

    try:
        return Limits(max_input_chars=args.max_input_chars, max_chunks=args.max_chunks, on_oversize=args.on_oversize)
    except ValueError as e:
        raise UsageError(f"error: {e} (--max-input-chars and --max-chunks must be at least 1)") from None


def _engine(path: str, threads: int | None = None, limits: Any = None) -> Any:
    """A `.policy` file, or a bundle written by `policyengine compile` (a zip file: its exemplar embeddings, regex
    database and intent map are used, nothing is embedded or trained again)."""
    from ..bundle import BundleError, is_bundle
    from ..engine import Engine

    if is_bundle(path):
        try:
            return Engine.from_bundle(path, threads=threads, limits=limits)
        except BundleError as e:
            raise UsageError(f"error: {e}") from None
    return Engine.from_path(path, threads=threads, limits=limits)


def _items_from_jsonl(name: str, stream: Any) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yield (line number, item or None, error or None) for every non-blank line."""
    from ..jsonl import read_lines

    for lineno, _, obj, error in read_lines(name, stream):
        if error is not None:
            yield lineno, None, error
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("text", obj.get("input")), str):
            yield lineno, None, f"{name}:{lineno}:1: error: each line must be an object with a string \"text\""
            continue
        ctx = obj.get("context")
        if ctx is not None and not isinstance(ctx, dict):
            yield lineno, None, f"{name}:{lineno}:1: error: \"context\" must be an object"
            continue
        yield lineno, {"id": obj.get("id", lineno), "input": obj.get("text", obj.get("input")),
                       "output": obj.get("output"), "context": ctx}, None


def _print_decision(d: Any, fmt: str, item_id: Any = None, text: str | None = None) -> None:
    if fmt == "json":
        print(d.to_json(**({"id": item_id} if item_id is not None else {})))
    else:
        label = f"[{item_id}] " if item_id is not None else ""
        shown = f"{label}{text!r}" if text is not None else label
        if shown:
            print(shown if len(shown) < 160 else shown[:157] + "...")
        print(d.explain())
        print()


def cmd_check(args: argparse.Namespace) -> int:
    from ..evaluator import ContextError

    ctx = _context(args.context)
    engine = _engine(args.policy, args.threads, limits_from_args(args))
    status = EXIT_OK
    if not args.text and args.input_file is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("check needs TEXT arguments, --input FILE.jsonl, or JSON lines on stdin")
        args.input_file = "-"
    for text in args.text:
        try:
            d = engine.evaluate(input=text, output=args.output_text, context=ctx)
        except ContextError as e:
            raise UsageError(f"--context: error: {e}") from None
        _print_decision(d, args.format, text=text if len(args.text) > 1 else None)
    if args.input_file is not None:
        name = "<stdin>" if args.input_file == "-" else args.input_file
        try:
            stream = sys.stdin.buffer if args.input_file == "-" else open(args.input_file, "rb")  # noqa: SIM115
        except OSError as e:
            raise UsageError(f"{args.input_file}: error: {e.strerror}") from None
        with stream:
            batch: list[tuple[int, dict[str, Any]]] = []
            for lineno, item, err in _items_from_jsonl(name, stream):
                if err is not None:
                    _line_error(args.format, lineno, err)
                    status = EXIT_USAGE
                    continue
                assert item is not None
                if ctx and not item.get("context"):
                    item["context"] = ctx
                batch.append((lineno, item))
                if len(batch) >= 256:
                    status = max(status, _flush(engine, batch, args.format, name))
                    batch = []
            status = max(status, _flush(engine, batch, args.format, name))
    return status


def _line_error(fmt: str, lineno: int, err: str) -> None:
    if fmt == "json":
        print(json.dumps({"line": lineno, "error": err.splitlines()[0]}))
    print(err, file=sys.stderr)


def _flush(engine: Any, batch: list[tuple[int, dict[str, Any]]], fmt: str, name: str) -> int:
    from ..evaluator import ContextError

    status = EXIT_OK
    good: list[tuple[int, dict[str, Any]]] = []
    for lineno, item in batch:  # validate context per line, so one bad line does not sink the batch
        try:
            from ..evaluator import check_context

            check_context(engine.policy, item.get("context"))
            good.append((lineno, item))
        except ContextError as e:
            _line_error(fmt, lineno, f"{name}:{lineno}:1: error: {e}")
            status = EXIT_USAGE
    decisions = engine.evaluate_many([{k: v for k, v in it.items() if k != "id"} for _, it in good])
    for (lineno, item), d in zip(good, decisions):
        _print_decision(d, fmt, item_id=item["id"], text=item["input"])
    return status


def cmd_explain(args: argparse.Namespace) -> int:
    from ..evaluator import ContextError

    ctx = _context(args.context)
    engine = _engine(args.policy, limits=limits_from_args(args))
    try:
        d = engine.evaluate(input=args.text, context=ctx)
    except ContextError as e:
        raise UsageError(f"--context: error: {e}") from None
    if args.format == "json":
        print(d.to_json(indent=2))
    else:
        print(f"message: {args.text!r}")
        print(d.explain())
    return EXIT_OK


COMMANDS: dict = {"check": cmd_check, "explain": cmd_explain}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except PolicyError as e:
        print(e.render(), file=sys.stderr)
        return EXIT_USAGE
    except UsageError as e:
        print(f"policyengine {args.command}: {e}" if not str(e).startswith(("--", "<")) and ":" not in str(e)[:40]
              else str(e), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into `head` etc.
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    except Exception as e:  # noqa: BLE001 - last line of defence: a clear message, never a traceback
        from ..matchers.embedders import ModelLoadError

        kind = "model error" if isinstance(e, ModelLoadError) else f"internal error ({type(e).__name__})"
        print(f"policyengine {args.command}: {kind}: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
