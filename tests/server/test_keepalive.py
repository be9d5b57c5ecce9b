"""Issue 21: a reused (keep-alive) connection must not wait ~40 ms per response on Nagle + delayed ACK.

The listening socket has to be created with protocol IPPROTO_TCP: asyncio sets TCP_NODELAY only on accepted sockets
whose `proto` is IPPROTO_TCP (they inherit it from the listener)."""

from __future__ import annotations

import asyncio
import http.client
import socket
import statistics
import time
from urllib.parse import urlsplit

from policyengine.server.run import _bind

from .conftest import ServeProcess, wait_for


def test_accepted_connections_have_tcp_nodelay():
    sock = _bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    seen: list[int] = []

    async def main() -> None:
        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=sock)
        async with server:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            w.close()

    asyncio.run(main())
    assert seen and seen[0] != 0, "TCP_NODELAY is not set on the accepted socket"


def _timed(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> float:
    t0 = time.perf_counter()
    conn.request(method, path, body=body, headers={"content-type": "application/json"} if body else {})
    r = conn.getresponse()
    r.read()
    assert r.status == 200
    return time.perf_counter() - t0


def test_reused_connections_are_not_slower_than_new_ones(small_policy):
    """Against a real `policyengine serve` process: before the fix a keep-alive request took ~40 ms (Nagle and the
    client's delayed ACK), a request on a new connection ~2 ms."""
    srv = ServeProcess(str(small_policy), "--no-watch", "--log-level", "warning", timeout=60)
    try:
        u = urlsplit(srv.url)

        def ready() -> bool:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            try:
                c.request("GET", "/readyz")
                return c.getresponse().status == 200
            finally:
                c.close()

        assert wait_for(ready, 30)
        body = b'{"input": "here is my key sk-abcdefghijk"}'
        for method, path, data in (("GET", "/healthz", None), ("POST", "/v1/check", body)):
            new: list[float] = []
            for _ in range(15):
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                new.append(_timed(c, method, path, data))
                c.close()
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            _timed(c, method, path, data)  # opens the connection
            reused = [_timed(c, method, path, data) for _ in range(15)]
            c.close()
            m_new, m_reused = statistics.median(new), statistics.median(reused)
            # generous for a busy 2-core machine; the bug made every reused request >= 40 ms
            assert m_reused < 2 * m_new + 0.015, (path, f"reused {m_reused * 1000:.1f} ms, new {m_new * 1000:.1f} ms")
    finally:
        srv.stop()
