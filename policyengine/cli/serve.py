"""`policyengine serve POLICY_OR_DIR`: run the moderation service (needs the `serve` extra)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from .main import EXIT_OK, UsageError, non_negative_int, positive_int


def register(sub: Any) -> dict[str, Any]:
    s = sub.add_parser("serve", help="run the HTTP moderation service (check, batch, OpenAI-compatible moderations)",
                       description="Serve a policy over HTTP. Reloads the policy on SIGHUP or when a file in its "
                                   "folder changes; a policy that does not compile is rejected and the old one "
                                   "keeps serving.")
    s.add_argument("policy", metavar="POLICY_OR_DIR",
                   help="a .policy file, a folder with default.policy, or a bundle from `policyengine compile` "
                        "(no re-embedding or intent-map training at start or reload; deploy by replacing the bundle)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    s.add_argument("--workers", type=positive_int, default=1, help="worker processes (spawned; each loads the model once)")
    s.add_argument("--threads", type=positive_int, default=1, help="torch/FAISS threads per worker (default 1)")
    s.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="accept this key (repeatable; also $POLICYENGINE_API_KEYS, comma-separated)")
    s.add_argument("--api-key-file", metavar="FILE", help="accept the keys in FILE (one per line)")
    s.add_argument("--no-auth", action="store_true",
                   help="allow serving without API keys on a non-loopback address (not recommended)")
    s.add_argument("--max-body-bytes", type=positive_int, default=1_000_000, help="request size limit (default 1 MB)")
    s.add_argument("--max-batch", type=positive_int, default=256, help="items per batch/moderation request (default 256)")
    s.add_argument("--decision-log", metavar="FILE.jsonl", help="append one JSON line per decision to FILE")
    s.add_argument("--log-text", action="store_true",
                   help="write message text and context to the decision log (default: a sha256 of the text)")
    s.add_argument("--log-max-bytes", type=positive_int, default=100 * 1024 * 1024, help="rotate the log at this size")
    s.add_argument("--log-backups", type=non_negative_int, default=5, help="rotated logs to keep (default 5)")
    s.add_argument("--no-watch", action="store_true", help="reload on SIGHUP only, not on file changes")
    s.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds to finish in-flight requests on shutdown (default 30)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    from .main import add_limit_args

    add_limit_args(s)
    return {"serve": cmd_serve}


def _keys(args: argparse.Namespace) -> tuple[str, ...]:
    from ..server.config import default_api_keys

    keys = [k.strip() for k in args.api_key if k.strip()]
    if args.api_key_file:
        try:
            with open(args.api_key_file, encoding="utf-8") as f:
                keys += [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as e:
            raise UsageError(f"--api-key-file: error: {args.api_key_file}: {e.strerror}") from None
    keys += default_api_keys()
    return tuple(dict.fromkeys(keys))


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
        import watchfiles  # noqa: F401
    except ImportError as e:
        raise UsageError(f"serve needs the 'serve' extra: pip install 'policyengine[serve]' ({e.name} missing)") \
            from None
    from ..compiler import compile_policy
    from ..server.config import ConfigError, ServerConfig, is_loopback, resolve_policy_path

    for name, value, low in (("--workers", args.workers, 1), ("--threads", args.threads, 1),
                             ("--max-body-bytes", args.max_body_bytes, 1), ("--max-batch", args.max_batch, 1)):
        if value < low:
            raise UsageError(f"{name} must be at least {low}, got {value}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    from .main import limits_from_args

    limits = limits_from_args(args)  # invalid limits are a usage error before anything is loaded
    try:
        entry, watch = resolve_policy_path(args.policy)
    except ConfigError as e:
        raise UsageError(f"serve: error: {e}") from None
    from ..bundle import BundleError, fresh_policy, is_bundle, read_manifest

    if is_bundle(entry):  # a bundle from `policyengine compile`: readable and not stale, before binding a port
        try:
            fresh_policy(entry, read_manifest(entry))
        except BundleError as e:
            raise UsageError(f"serve: error: {e}") from None
    else:
        compile_policy(entry)  # fail fast, with every diagnostic, before binding a port (PolicyError -> exit 2)
    keys = _keys(args)
    if args.no_auth:
        keys = ()
    elif not keys and not is_loopback(args.host):
        raise UsageError(f"serve: error: binding to {args.host} (not loopback) needs an API key: pass --api-key KEY, "
                         "--api-key-file FILE or set $POLICYENGINE_API_KEYS (or --no-auth to serve without one)")
    config = ServerConfig(
        policy=entry, watch=() if args.no_watch else watch, host=args.host, port=args.port, workers=args.workers,
        threads=args.threads, api_keys=keys, max_body_bytes=args.max_body_bytes, max_batch_items=args.max_batch,
        decision_log=os.path.abspath(args.decision_log) if args.decision_log else None, log_text=args.log_text,
        log_max_bytes=args.log_max_bytes, log_backups=args.log_backups, graceful_timeout=args.graceful_timeout,
        **dataclasses.asdict(limits))
    from ..server.run import run

    def listening(url: str) -> None:
        auth = "API key required" if keys else "no auth"
        print(f"policyengine serve: {entry} on {url} ({args.workers} worker{'s' * (args.workers > 1)}, "
              f"{auth})", file=sys.stderr, flush=True)

    try:
        run(config, on_listening=listening, log_level=args.log_level)
    except OSError as e:
        raise UsageError(f"serve: error: cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    return EXIT_OK
