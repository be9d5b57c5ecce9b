"""The ASGI app: FastAPI routes over a hot-reloadable Engine, with auth, size limits, metrics and a decision log."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import signal
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..evaluator import ContextError, check_context
from ..models import Decision
from .batcher import MicroBatcher
from .config import ServerConfig
from .decision_log import DecisionLog, decision_record
from .holder import PolicyHolder, ReloadResult, is_relevant_change
from .metrics import Metrics
from .moderations import moderation_result
from .schemas import (BatchRequest, BatchResponse, CheckRequest, ErrorResponse, Health, ModerationRequest,
                      ModerationResponse, TextPart)

log = logging.getLogger("policyengine.server")

RID_KEY = "policyengine.request_id"
OPEN_PATHS = {"/healthz", "/readyz"}
ENDPOINTS = {"/v1/check", "/v1/check/batch", "/v1/moderations", "/healthz", "/readyz", "/metrics", "/openapi.json",
             "/docs"}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc} for code, desc in (
        (400, "invalid JSON or unsupported input"), (401, "missing or wrong API key"),
        (413, "request body larger than the limit"), (422, "well-formed JSON that does not fit the schema or the "
                                                           "policy's context declarations"),
        (503, "the policy is not loaded yet"))}


class ApiError(Exception):
    def __init__(self, status: int, type: str, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.param, self.headers = status, type, message, param, headers


def _error_bytes(status: int, type: str, message: str, param: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type, "param": param, "code": str(status)}}).encode()


def dumps(obj: Any) -> bytes:
    """JSON that never fails on lone surrogates in a message (same rule as Decision.to_json)."""
    text = json.dumps(obj, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True).encode()


class _TooLarge(Exception):
    pass


class GatewayMiddleware:
    """Pure ASGI: request id, API-key check, body size limit, request metrics. Runs before FastAPI parses a body."""

    def __init__(self, app: Any, config: ServerConfig, metrics: Metrics):
        self.app = app
        self.config = config
        self.metrics = metrics
        self.keys = [k.encode() for k in config.api_keys]

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key")
        auth = headers.get(b"authorization", b"")
        if given is None and auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        if not given:
            return False
        ok = False
        for k in self.keys:  # compare with every key in constant time
            ok |= hmac.compare_digest(given, k)
        return ok

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        if not _REQUEST_ID.match(rid):
            rid = uuid.uuid4().hex
        scope[RID_KEY] = rid
        if scope.get("method") == "POST":
            # `curl -d` sends application/x-www-form-urlencoded: every body here is JSON, so read it as JSON.
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if ctype in (b"application/x-www-form-urlencoded", b"text/plain", b""):
                scope["headers"] = [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"] + [
                    (b"content-type", b"application/json")]
        status_holder = {"status": 500, "started": False}
        too_large = False
        limit = self.config.max_body_bytes

        async def send_wrapper(message: dict[str, Any]) -> None:
            if too_large and not status_holder["started"]:  # the body outgrew the limit while being read
                if message["type"] == "http.response.start":
                    body = _error_bytes(413, "request_too_large", f"request body exceeds the limit of {limit} bytes")
                    status_holder["status"], status_holder["started"] = 413, True
                    await send({"type": "http.response.start", "status": 413,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode()),
                                            (b"x-request-id", rid.encode())]})
                    await send({"type": "http.response.body", "body": body})
                return
            if too_large:
                return
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        async def reply(status: int, body: bytes, extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
            await send_wrapper({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode()), *extra]})
            await send_wrapper({"type": "http.response.body", "body": body})

        try:
            if self.keys and path not in OPEN_PATHS and not self._authorised(headers):
                await reply(401, _error_bytes(401, "authentication_error",
                                              "missing or invalid API key: send 'Authorization: Bearer KEY' or "
                                              "'X-API-Key: KEY'"), [(b"www-authenticate", b"Bearer")])
                return
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                await reply(413, _error_bytes(413, "request_too_large",
                                              f"request body is {int(length)} bytes; the limit is {limit} bytes"))
                return
            seen = 0

            async def limited_receive() -> dict[str, Any]:
                nonlocal seen, too_large
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        too_large = True
                        raise _TooLarge(f"request body exceeds the limit of {limit} bytes")
                return message

            try:
                await self.app(scope, limited_receive, send_wrapper)
            except _TooLarge:
                await send_wrapper({"type": "http.response.start", "status": 413, "headers": []})
        finally:
            self.metrics.requests.labels(endpoint, str(status_holder["status"])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)


def _loc(loc: Any) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts)


def create_app(config: ServerConfig | None = None, *, embedder: Any = None) -> FastAPI:
    """Build the service. `embedder` (tests) replaces the model the policy names; normally it is loaded once per
    process through load_embedder."""
    config = config or ServerConfig.from_env()
    metrics = Metrics()

    def on_reload(result: ReloadResult) -> None:
        metrics.reloads.labels(result.status).inc()

    holder = PolicyHolder(config.policy, threads=config.threads, embedder=embedder, limits=config.limits(),
                          on_swap=metrics.set_policy,
                          on_reload=on_reload)

    def observe(n: int, seconds: float) -> None:
        metrics.batch_size.observe(n)
        metrics.model_seconds.observe(seconds)

    batcher = MicroBatcher(lambda: holder.engine, config.max_microbatch, observe)
    dlog: DecisionLog | None = None
    if config.decision_log:
        path = config.decision_log
        if config.workers > 1:  # one file per worker process: appends and rotation stay single-writer
            root, dot, ext = path.rpartition(".") if "." in path.rsplit("/", 1)[-1] else (path, "", "")
            path = f"{root}.{os.getpid()}{dot}{ext}" if dot else f"{path}.{os.getpid()}"
        dlog = DecisionLog(path, max_bytes=config.log_max_bytes, backups=config.log_backups, fsync=config.log_fsync)

    reload_lock = asyncio.Lock()

    async def reload(reason: str) -> ReloadResult:
        import anyio.to_thread

        async with reload_lock:
            return await anyio.to_thread.run_sync(holder.reload, reason)

    async def watch(stop: asyncio.Event) -> None:
        from watchfiles import awatch

        from ..bundle import is_bundle

        bundle = is_bundle(config.policy)
        async for changes in awatch(*config.watch, stop_event=stop, debounce=config.reload_debounce_ms, step=50,
                                    watch_filter=lambda _c, p: is_relevant_change(p, holder.files, bundle),
                                    recursive=True):
            names = sorted({p.rsplit("/", 1)[-1] for _, p in changes})
            await reload("file change: " + ", ".join(names[:5]))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        batcher.start()
        stop = asyncio.Event()
        tasks = [loop.create_task(reload("startup"), name="policyengine-initial-load")]
        if config.watch:
            tasks.append(loop.create_task(watch(stop), name="policyengine-watch"))
        hup = False
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload("SIGHUP")))
            hup = True
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread (tests), or no SIGHUP
            pass
        app.state.reload = reload
        try:
            yield
        finally:
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
            stop.set()
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await batcher.stop()
            if dlog is not None:
                dlog.close()
            log.info("policyengine server stopped")

    app = FastAPI(
        title="policyengine", version=__version__, lifespan=lifespan,
        description="Policy-as-code moderation: every decision explained. Errors use the OpenAI error shape.",
    )
    app.add_middleware(GatewayMiddleware, config=config, metrics=metrics)  # type: ignore[arg-type]
    app.state.holder = holder
    app.state.metrics = metrics
    app.state.decision_log = dlog
    app.state.config = config

    # ---- errors ----------------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return Response(_error_bytes(exc.status, exc.type, exc.message, exc.param), status_code=exc.status,
                        media_type="application/json", headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):  # FastAPI: "error parsing the body"
            return Response(_error_bytes(400, "invalid_json", f"request body is not valid JSON: not UTF-8 "
                                                              f"({cause.reason}) at byte {cause.start}"),
                            status_code=400, media_type="application/json")
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request_error")
        msg = {404: f"no such endpoint: {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return Response(_error_bytes(exc.status_code, kind, msg), status_code=exc.status_code,
                        media_type="application/json", headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        bad_json = next((e for e in errs if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            pos = bad_json.get("loc", ("body", 0))[-1]
            why = (bad_json.get("ctx") or {}).get("error", "JSON decode error")
            return Response(_error_bytes(400, "invalid_json", f"request body is not valid JSON: {why} at byte {pos}"),
                            status_code=400, media_type="application/json")
        if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errs):
            return Response(_error_bytes(400, "invalid_json", "request body is empty: send a JSON object"),
                            status_code=400, media_type="application/json")
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        param = _loc(first.get("loc", ()))
        msg = "; ".join(f"{_loc(e.get('loc', ())) or 'body'}: {e.get('msg')}" for e in errs[:5])
        return Response(_error_bytes(422, "invalid_request_error", msg, param or None), status_code=422,
                        media_type="application/json")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        return Response(_error_bytes(500, "internal_error", f"{type(exc).__name__}: {exc}"), status_code=500,
                        media_type="application/json")

    # ---- helpers --------------------------------------------------------------------------------------
    def engine_or_503() -> Any:
        engine = holder.engine
        if engine is None:
            raise ApiError(503, "not_ready", "the policy is still loading" +
                           (f"; last error: {holder.last_error.splitlines()[0]}" if holder.last_error else ""),
                           headers={"Retry-After": "1"})
        return engine

    def validate(engine: Any, req: CheckRequest, where: str = "") -> dict[str, Any]:
        if req.input is None and req.output is None:
            raise ApiError(422, "invalid_request_error", f"{where}needs \"input\", \"output\" or both",
                           (where.rstrip(": ") or None))
        try:
            check_context(engine.policy, req.context)
        except ContextError as e:
            raise ApiError(422, "invalid_context", f"{where}context: {e}", f"{where.rstrip(': ')}.context".lstrip("."))
        return req.item()

    def record(decisions: list[Any], items: list[dict[str, Any]], request: Request, endpoint: str,
               batched: bool) -> None:
        rid = request.scope[RID_KEY]
        for i, (d, item) in enumerate(zip(decisions, items)):
            metrics.decisions.labels(d.action, d.rule or "none").inc()
            if dlog is not None:
                dlog.append(decision_record(d, request_id=rid, endpoint=endpoint, item=item, log_text=config.log_text,
                                            index=i if batched else None))

    async def evaluate_many(engine: Any, items: list[dict[str, Any]]) -> list[Any]:
        import anyio.to_thread

        t0 = time.perf_counter()
        out = await anyio.to_thread.run_sync(engine.evaluate_many, items)
        metrics.batch_size.observe(len(items))
        metrics.model_seconds.observe(time.perf_counter() - t0)
        return out

    # ---- routes ---------------------------------------------------------------------------------------
    @app.post("/v1/check", summary="Decide on one message", response_model=None,
              responses={200: {"model": Decision,
                               "description": "the explained Decision (same schema as `policyengine check "
                                              "--format json`)"}, **ERRORS})
    async def check(req: CheckRequest, request: Request) -> Response:
        engine = engine_or_503()
        item = validate(engine, req)
        try:
            d = await batcher.submit(item)
        except ContextError as e:  # the policy was reloaded with other context declarations meanwhile
            raise ApiError(422, "invalid_context", f"context: {e}", "context") from None
        record([d], [item], request, "/v1/check", batched=False)
        return Response(d.to_json(), media_type="application/json")

    @app.post("/v1/check/batch", summary="Decide on many messages (one embedding batch)", response_model=None,
              responses={200: {"model": BatchResponse}, **ERRORS})
    async def check_batch(req: BatchRequest, request: Request) -> Response:
        if len(req.items) > config.max_batch_items:
            raise ApiError(413, "batch_too_large",
                           f"{len(req.items)} items; the limit is {config.max_batch_items} per request", "items")
        engine = engine_or_503()
        items = [validate(engine, it, f"items.{i}: ") for i, it in enumerate(req.items)]
        decisions = await evaluate_many(engine, items)
        record(decisions, items, request, "/v1/check/batch", batched=True)
        return Response(dumps({"results": [d.model_dump(mode="python") for d in decisions]}),
                        media_type="application/json")

    @app.post("/v1/moderations", summary="OpenAI-compatible moderation", response_model=None,
              responses={200: {"model": ModerationResponse}, **ERRORS})
    async def moderations(req: ModerationRequest, request: Request) -> Response:
        raw = [req.input] if isinstance(req.input, str) else list(req.input)
        if not raw:
            raise ApiError(422, "invalid_request_error", "input: must not be empty", "input")
        if len(raw) > config.max_batch_items:
            raise ApiError(413, "batch_too_large", f"{len(raw)} inputs; the limit is {config.max_batch_items}",
                           "input")
        texts: list[str] = []
        for i, part in enumerate(raw):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, TextPart):
                texts.append(part.text)
            else:
                raise ApiError(400, "unsupported_input", f"input.{i}: only text inputs are supported, not images",
                               f"input.{i}")
        engine = engine_or_503()
        items = [{"input": t, "output": None, "context": None} for t in texts]
        decisions = await (evaluate_many(engine, items) if len(items) > 1 else _single(items[0]))
        record(decisions, items, request, "/v1/moderations", batched=len(items) > 1)
        body = {"id": "modr-" + request.scope[RID_KEY],
                "model": f"policyengine/{engine.policy.name}",
                "results": [moderation_result(d, engine.policy) for d in decisions]}
        return Response(dumps(body), media_type="application/json")

    async def _single(item: dict[str, Any]) -> list[Any]:
        return [await batcher.submit(item)]

    @app.get("/healthz", summary="Liveness: the process answers", response_model=Health)
    async def healthz() -> dict[str, Any]:
        engine = holder.engine  # null while the first load runs
        p = engine.policy if engine is not None else None
        return {"status": "ok",
                "policy": {"name": p.name, "version": p.version, "digest": p.digest} if p is not None else None}

    @app.get("/readyz", summary="Readiness: policy compiled and model loaded", response_model=Health,
             responses={503: {"model": Health}})
    async def readyz() -> Response:
        engine = holder.engine
        body: dict[str, Any] = {"status": "ready" if engine else "loading", "last_reload_error": holder.last_error}
        if engine is not None:
            p = engine.policy
            body["policy"] = {"name": p.name, "version": p.version, "digest": p.digest,
                              "model": p.model if engine.uses_model else None, "generation": holder.generation}
        return JSONResponse(body, status_code=200 if engine else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    async def metrics_endpoint() -> Response:
        data, ctype = metrics.render()
        return Response(data, media_type=ctype)

    return app
