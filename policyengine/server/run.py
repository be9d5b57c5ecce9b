"""Run the service with uvicorn: one process, or N spawned worker processes sharing one listening socket."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
from typing import Callable

from .config import CONFIG_ENV, ServerConfig

log = logging.getLogger("policyengine.server")


def setup_logging(level: str = "info") -> None:
    """Reloads, rejected policies and shutdown go to stderr, next to uvicorn's own lines."""
    logger = logging.getLogger("policyengine.server")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


def app_factory():  # noqa: ANN201 - called by uvicorn in each worker process
    from .app import create_app

    setup_logging(os.environ.get("POLICYENGINE_LOG_LEVEL", "info"))
    return create_app(ServerConfig.from_env())


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, created with protocol IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on accepted
    sockets whose `proto` is IPPROTO_TCP, and an accepted socket inherits the listener's. With protocol 0 every
    response on a reused (keep-alive) connection waited on Nagle plus the client's delayed ACK: ~40 ms a request."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(config: ServerConfig, *, on_listening: Callable[[str], None] | None = None,
        log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM, then finish in-flight requests (up to config.graceful_timeout) and exit."""
    import uvicorn

    # Workers are *spawned*, never forked (a forked child of a torch process can hang on its first encode), and
    # they learn their settings from the environment. Threads default to 1 per worker.
    os.environ[CONFIG_ENV] = config.to_env()
    os.environ["POLICYENGINE_LOG_LEVEL"] = log_level
    setup_logging(log_level)
    os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if config.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="policyengine-metrics-")

    sock = _bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    uconfig = uvicorn.Config("policyengine.server.run:app_factory", factory=True, workers=config.workers,
                             log_level=log_level, timeout_graceful_shutdown=int(config.graceful_timeout),
                             access_log=False, lifespan="on", server_header=False)
    if on_listening:
        on_listening(url)
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        supervisor = Multiprocess(uconfig, sockets=[sock])

        def forward_hup() -> None:  # hot reload inside every worker, instead of uvicorn's restart-all
            log.info("SIGHUP: asking %d workers to reload the policy", len(supervisor.processes))
            for p in supervisor.processes:
                if p.pid:
                    os.kill(p.pid, signal.SIGHUP)

        supervisor.handle_hup = forward_hup  # type: ignore[method-assign]
        supervisor.run()
    else:
        uvicorn.Server(uconfig).run(sockets=[sock])
    sys.stdout.flush()
