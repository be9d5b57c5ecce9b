"""Serve an app over real HTTP on 127.0.0.1 (ephemeral port) in a background thread; stop it at the end."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from policyengine.server.process import ServeProcess as _ServeProcess  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

SMALL_POLICY = """\
policy small {
  version "1"
  default allow
}

context {
  channel: string
}

pattern secret = /sk-[a-z0-9]{8,}/

rule no_secrets {
  when input matches secret
  block "no api keys"
  category "pii"
}
"""


@contextlib.contextmanager
def serve_app(app, timeout: float = 30.0) -> Iterator[str]:
    import uvicorn

    from policyengine.server.run import _bind

    sock = _bind("127.0.0.1", 0)  # the socket `policyengine serve` listens on (IPPROTO_TCP: TCP_NODELAY)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def wait_ready(client, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.status_code == 200:
            return r.json()
        if r.json().get("last_reload_error"):
            raise AssertionError(r.json()["last_reload_error"])
        time.sleep(0.05)
    raise AssertionError(f"not ready after {timeout}s: {r.text}")


def wait_for(predicate, timeout: float = 20.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# `policyengine serve` as a subprocess, run from the repo root (so "policies" and relative paths resolve)
ServeProcess = functools.partial(_ServeProcess, cwd=REPO)


@pytest.fixture
def small_policy(tmp_path: Path) -> Path:
    d = tmp_path / "pol"
    d.mkdir()
    p = d / "small.policy"
    p.write_text(SMALL_POLICY)
    return p
