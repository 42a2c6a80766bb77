"""Concurrent small requests answered together. Scoring one product costs ~1 ms, most of it the
model's fixed cost per call (vectorizers, validation, stacking); 16 products in one call cost ~3 ms.
`Coalescer` runs one call at a time per process, in a thread: calls that arrive meanwhile wait and go
together as the next one. Alone, a call starts at once (no timer to wait for); under load a batch is
as large as what arrived during the previous one, so throughput grows with the load instead of the
queue. The same idea as the adaptive batching of model servers (Triton, Ray Serve, BentoML).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
R = TypeVar("R")
MAX_BATCH: Final = 64  # bounds how long the last request of a batch waits for the others


class Coalescer(Generic[T, R]):
    """`await coalescer(item)` → `run([..., item, ...])`'s answer for `item`. `run` gets the items of
    one batch in arrival order and returns one answer each, in order; an exception it raises is each
    caller's exception. A caller that goes away (a closed connection) is skipped, not answered."""

    def __init__(self, run: Callable[[list[T]], Sequence[R]], *, max_batch: int = MAX_BATCH) -> None:
        self._run = run
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drainer: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (a test client's): nothing of the old one is kept
            self._loop, self._waiting, self._drainer = loop, [], None
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: len(batch)]
                try:
                    answers = await run_in_threadpool(self._run, [item for item, _ in batch])
                except Exception as exc:  # every caller of the batch gets it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        except BaseException:  # cancelled (the loop is closing): no caller is left waiting forever
            for _, future in (*batch, *self._waiting):
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._drainer = None
