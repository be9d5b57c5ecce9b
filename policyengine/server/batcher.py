"""Micro-batching: single checks that arrive while the engine is busy are evaluated together in one
`Engine.evaluate_many` call (one embedding batch), in a worker thread, so the event loop stays responsive.

No timer: a batch is whatever queued up while the previous one ran (at most `max_batch`), so a lone request is
never delayed, and under load the model sees larger, cheaper batches.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from ..engine import Engine
from ..models import Decision


class MicroBatcher:
    def __init__(self, get_engine: Callable[[], Engine | None], max_batch: int = 64,
                 observe: Callable[[int, float], None] | None = None):
        self._get_engine = get_engine
        self.max_batch = max_batch
        self._observe = observe
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[Decision]]] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="policyengine-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def submit(self, item: dict[str, Any]) -> Decision:
        assert self._queue is not None, "batcher not started"
        fut: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def _run(self) -> None:
        import anyio.to_thread

        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(item, fut) for item, fut in batch if not fut.done()]  # client went away
            if not batch:
                continue
            engine = self._get_engine()
            if engine is None:
                for _, fut in batch:
                    fut.set_exception(RuntimeError("no policy loaded"))
                continue
            items = [item for item, _ in batch]
            t0 = time.perf_counter()
            try:
                results: list[Any] = await anyio.to_thread.run_sync(engine.evaluate_many, items)
            except Exception:  # noqa: BLE001 - isolate the item that failed (e.g. context no longer valid)
                results = await anyio.to_thread.run_sync(_one_by_one, engine, items)
            if self._observe:
                self._observe(len(items), time.perf_counter() - t0)
            for (_, fut), res in zip(batch, results):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)


def _one_by_one(engine: Engine, items: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        try:
            out.append(engine.evaluate(item.get("input"), item.get("output"), item.get("context")))
        except Exception as e:  # noqa: BLE001
            out.append(e)
    return out
