"""Adaptive batching: concurrent requests' texts gathered into one model call.

The model runs off the event loop (in a worker thread; TensorFlow releases the GIL), so
the server parses the next requests while a batch runs, and those queue up. When the
model is free, the next batch takes every queued text, up to `max_batch_size`. A lone
request on an idle server runs at once; when several were waiting (the server is under
load), the batch waits for more until its first request has waited `max_latency_ms`
since it arrived, as KServe's batcher does. Requests that queued that long while the
model ran go at once: under load the model never idles waiting for company. A request's
texts stay together, and each gets its own rows back (a request larger than
`max_batch_size` runs alone). When a call fails, each of its requests is run alone, so
one request's fault answers only that request with the error.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

R = TypeVar("R")
# A request waiting for its batch: its texts, the future of their results, and the
# event-loop time it arrived.
Request = tuple[list[str], asyncio.Future[list[R]], float]


class Batcher(Generic[R]):
    def __init__(
        self,
        infer: Callable[[list[str]], Sequence[R]],
        max_batch_size: int,
        max_latency_ms: float,
    ) -> None:
        """`infer` maps texts to one result per text, in order."""
        if max_batch_size < 1 or max_latency_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_latency_ms >= 0")
        self.infer, self.max_batch_size = infer, max_batch_size
        self.max_latency_s = max_latency_ms / 1000
        self.queue: asyncio.Queue[Request[R]] | None = None
        self.carried: Request[R] | None = None
        self.worker: asyncio.Task[None] | None = None
        self.sizes: Counter[int] = Counter()  # model calls by texts per call

    async def submit(self, texts: list[str]) -> list[R]:
        """The results of `texts`, computed in a batch with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        if self.worker is None or self.worker.done() or self.worker.get_loop() is not loop:
            # The first request in this event loop (a server's, a test's), or after the
            # worker ended: a queue and a worker of this loop.
            self.queue, self.carried = asyncio.Queue(), None
            self.worker = loop.create_task(self._work())
            self.worker.add_done_callback(self._ended)
        assert self.queue is not None
        future: asyncio.Future[list[R]] = loop.create_future()
        await self.queue.put((texts, future, loop.time()))
        return await future

    async def _next_batch(self) -> list[Request[R]]:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        first = self.carried or await self.queue.get()
        self.carried = None
        batch, size = [first], len(first[0])
        waiting = not self.queue.empty()  # others are queued: the server is under load
        deadline = first[2] + self.max_latency_s  # from when the first request arrived
        while size < self.max_batch_size:
            if self.queue.empty():
                remaining = deadline - loop.time()
                if not waiting or remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self.queue.get_nowait()
            if size + len(item[0]) > self.max_batch_size:
                self.carried = item  # whole requests only: it opens the next batch
                break
            batch.append(item)
            size += len(item[0])
        return batch

    def _ended(self, worker: asyncio.Task[None]) -> None:
        """A worker that stopped (a bug, or its loop closing) leaves no request waiting."""
        if worker.cancelled() or worker.exception() is None or self.queue is None:
            return
        waiting = [self.carried] if self.carried else []
        while not self.queue.empty():
            waiting.append(self.queue.get_nowait())
        for _, future, _ in waiting:
            if not future.done():
                future.set_exception(RuntimeError(f"the batcher stopped: {worker.exception()}"))

    async def _call(self, texts: list[str]) -> Sequence[R]:
        results = await asyncio.get_running_loop().run_in_executor(None, self.infer, texts)
        if len(results) != len(texts):
            raise RuntimeError(f"{len(results)} results for {len(texts)} texts")
        self.sizes[len(texts)] += 1
        return results

    async def _work(self) -> None:
        while True:
            batch = [
                (request, future)
                for request, future, _ in await self._next_batch()
                if not future.done()  # a client that went away cancelled its future
            ]
            if not batch:
                continue
            try:
                results = await self._call([t for request, _ in batch for t in request])
            except Exception:
                # One request's fault must not fail the others: each alone, then.
                for request, future in batch:
                    await self._answer(request, future)
                continue
            start = 0
            for request, future in batch:
                if not future.done():
                    future.set_result(list(results[start : start + len(request)]))
                start += len(request)

    async def _answer(self, request: list[str], future: asyncio.Future[list[R]]) -> None:
        try:
            results = await self._call(request)
        except Exception as e:  # its own error; the server goes on
            if not future.done():
                future.set_exception(e)
        else:
            if not future.done():
                future.set_result(list(results))
