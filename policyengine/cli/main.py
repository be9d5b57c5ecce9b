"""`policyengine` CLI: check, explain, test. Exit 0 on success whatever the decision, 1 when tests fail,
2 on usage, policy or input errors. No traceback reaches the user."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Iterator, Sequence

from ..diagnostics import PolicyError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _IntermixedParser(argparse.ArgumentParser):
    """A command's parser: options and positionals in any order (`check POLICY --context '{..}' TEXT` as well as
    `check --context '{..}' POLICY TEXT`), via argparse's parse_known_intermixed_args. The subparsers action calls
    parse_known_args; the guard lets the intermixed parse use the plain one for its two passes."""

    _plain = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        if self._plain:
            return super().parse_known_args(args, namespace)
        self._plain = True
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._plain = False


def _int_at_least(low: int, words: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            x = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
        if x < low:
            raise argparse.ArgumentTypeError(f"must be {words}, got {value!r}")
        return x

    return parse


#: argparse types, so a bad value is a usage error (exit 2): threads, workers, sizes; how many rows to list
positive_int = _int_at_least(1, "at least 1")
non_negative_int = _int_at_least(0, "0 or more")


def require_paths(paths: Sequence[str]) -> None:
    """A missing path is a usage error (exit 2): `PATH: error: no such file or directory`."""
    import os

    missing = [p for p in paths if p != "-" and not os.path.exists(p)]
    if missing:
        raise UsageError("\n".join(f"{p}: error: no such file or directory" for p in missing))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="policyengine", description="Policy-as-code moderation for LLM and chat apps.")
    p.add_argument("--version", action="version", version=f"policyengine {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_IntermixedParser)

    c = sub.add_parser("check", help="decide on messages: TEXT arguments, --input FILE.jsonl, or stdin lines")
    c.add_argument("policy", help="a .policy file, or a bundle from `policyengine compile`")
    c.add_argument("text", nargs="*", default=[], help="messages to check (one decision each)")
    c.add_argument("--input", dest="input_file", metavar="FILE.jsonl",
                   help="one JSON object per line: {\"text\", optional \"id\", \"context\", \"output\"}; '-' = stdin")
    c.add_argument("--output-text", metavar="TEXT", help="a model response to check along with the input")
    c.add_argument("--context", metavar="JSON", help="context attributes as a JSON object")
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch/FAISS threads, at least 1 (default 1 or $POLICYENGINE_THREADS)")

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
    g.add_argument("--max-input-chars", type=positive_int, default=2_000_000, metavar="N",
                   help="hard limit on a message's length; regex and word rules scan all of it (default 2000000)")
    g.add_argument("--max-chunks", type=positive_int, default=256, metavar="N",
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


def _warn_unknown_context(policy: Any, ctx: Any, where: str, warned: set[str] | None = None) -> None:
    """A context key the policy does not declare is ignored by every rule (most likely a typo): the decision says
    so in its notes; the CLI also warns on stderr, once per key."""
    from ..evaluator import flatten_context, unknown_context_keys, unknown_context_note

    if not isinstance(ctx, dict):
        return
    keys = [k for k in unknown_context_keys(policy, flatten_context(ctx)) if warned is None or k not in warned]
    if keys:
        print(f"{where}: warning: {unknown_context_note(policy, keys).removeprefix('context: ')}", file=sys.stderr)
        if warned is not None:
            warned.update(keys)


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
    warned: set[str] = set()
    for text in args.text:
        try:
            d = engine.evaluate(input=text, output=args.output_text, context=ctx)
        except ContextError as e:
            raise UsageError(f"--context: error: {e}") from None
        _warn_unknown_context(engine.policy, ctx, "--context", warned)
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
                    status = max(status, _flush(engine, batch, args.format, name, warned))
                    batch = []
            status = max(status, _flush(engine, batch, args.format, name, warned))
    return status


def _line_error(fmt: str, lineno: int, err: str) -> None:
    """A bad input line: on stderr only, so stdout holds nothing but decisions (one JSON object per line with
    --format json); the decided lines keep their id (the line number when the line has none)."""
    print(err, file=sys.stderr)


def _flush(engine: Any, batch: list[tuple[int, dict[str, Any]]], fmt: str, name: str, warned: set[str]) -> int:
    from ..evaluator import ContextError

    status = EXIT_OK
    good: list[tuple[int, dict[str, Any]]] = []
    for lineno, item in batch:  # validate context per line, so one bad line does not sink the batch
        try:
            from ..evaluator import check_context

            check_context(engine.policy, item.get("context"))
            good.append((lineno, item))
            _warn_unknown_context(engine.policy, item.get("context"), f"{name}:{lineno}", warned)
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
    _warn_unknown_context(engine.policy, ctx, "--context")
    if args.format == "json":
        print(d.to_json(indent=2))
    else:
        print(f"message: {args.text!r}")
        print(d.explain())
    return EXIT_OK


COMMANDS: dict = {"check": cmd_check, "explain": cmd_explain}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help/--version (0) or a usage error, already printed (2)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
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
