"""textcnn.batcher: concurrent requests in one model call, each answered with its rows."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from textcnn.batcher import Batcher


class Model:
    """A model that records its calls and can be made to wait or fail."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.release.set()
        self.fail = False
        self.fail_on = ""

    def __call__(self, texts: list[str]) -> list[str]:
        self.release.wait(10)
        self.calls.append(texts)
        if self.fail or (self.fail_on and self.fail_on in texts):
            raise RuntimeError("the model broke")
        return [t.upper() for t in texts]


def test_requests_queued_while_the_model_runs_share_the_next_call() -> None:
    model = Model()
    batcher = Batcher(model, max_batch_size=8, max_latency_ms=50)

    async def scenario() -> list[list[str]]:
        model.release.clear()  # the first call blocks, so the next requests queue up
        first = asyncio.create_task(batcher.submit(["a"]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit([f"b{i}", f"c{i}"])) for i in range(3)]
        await asyncio.sleep(0.05)
        model.release.set()
        return [await first, *[await r for r in rest]]

    answers = asyncio.run(scenario())
    assert answers == [["A"], ["B0", "C0"], ["B1", "C1"], ["B2", "C2"]]
    assert model.calls == [["a"], ["b0", "c0", "b1", "c1", "b2", "c2"]]
    assert batcher.sizes == {1: 1, 6: 1}


def test_a_batch_holds_whole_requests_up_to_max_batch_size() -> None:
    model = Model()
    batcher = Batcher(model, max_batch_size=4, max_latency_ms=50)

    async def scenario() -> list[list[str]]:
        model.release.clear()
        first = asyncio.create_task(batcher.submit(["x"]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit(["p", "q", "r"])) for _ in range(3)]
        big = asyncio.create_task(batcher.submit(list("abcdef")))  # alone: over the limit
        await asyncio.sleep(0.05)
        model.release.set()
        return [await first, *[await r for r in rest], await big]

    answers = asyncio.run(scenario())
    assert answers[1:4] == [["P", "Q", "R"]] * 3 and answers[4] == list("ABCDEF")
    assert [len(c) for c in model.calls] == [1, 3, 3, 3, 6]


def test_a_lone_request_does_not_wait_for_company() -> None:
    batcher = Batcher(Model(), max_batch_size=32, max_latency_ms=5000)

    async def one() -> float:
        start = time.perf_counter()
        assert await batcher.submit(["solo"]) == ["SOLO"]
        return time.perf_counter() - start

    assert asyncio.run(one()) < 1.0  # far below max_latency_ms


def test_under_load_a_batch_waits_up_to_max_latency_for_more() -> None:
    model = Model()
    batcher = Batcher(model, max_batch_size=32, max_latency_ms=300)

    async def scenario() -> None:
        model.release.clear()
        first = asyncio.create_task(batcher.submit(["a"]))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(batcher.submit([t])) for t in ("b", "c")]
        await asyncio.sleep(0.05)
        model.release.set()  # "b" and "c" form a batch that waits for more...
        await asyncio.sleep(0.1)
        late = asyncio.create_task(batcher.submit(["d"]))  # ...and "d" joins it
        await asyncio.gather(first, *queued, late)

    asyncio.run(scenario())
    assert model.calls == [["a"], ["b", "c", "d"]]


def test_requests_that_waited_max_latency_while_the_model_ran_go_at_once() -> None:
    model = Model()
    batcher = Batcher(model, max_batch_size=32, max_latency_ms=100)

    async def scenario() -> None:
        model.release.clear()
        first = asyncio.create_task(batcher.submit(["a"]))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(batcher.submit([t])) for t in ("b", "c")]
        await asyncio.sleep(0.2)  # "b" and "c" wait out max_latency_ms behind "a"
        model.release.set()
        await asyncio.sleep(0.05)
        late = asyncio.create_task(batcher.submit(["d"]))  # their batch has gone
        await asyncio.gather(first, *queued, late)

    asyncio.run(scenario())
    assert model.calls == [["a"], ["b", "c"], ["d"]]


def test_a_failing_call_fails_its_requests_and_the_next_ones_are_served() -> None:
    model = Model()
    batcher = Batcher(model, max_batch_size=8, max_latency_ms=1)

    async def scenario() -> list[str]:
        model.fail = True
        with pytest.raises(RuntimeError, match="the model broke"):
            await batcher.submit(["a"])
        model.fail = False
        return await batcher.submit(["b"])

    assert asyncio.run(scenario()) == ["B"]


def test_one_request_s_fault_answers_only_that_request() -> None:
    model = Model()
    model.fail_on = "poison"
    batcher = Batcher(model, max_batch_size=8, max_latency_ms=50)

    async def scenario() -> list[object]:
        model.release.clear()
        first = asyncio.create_task(batcher.submit(["a"]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit([t])) for t in ("b", "poison", "c")]
        await asyncio.sleep(0.05)
        model.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    a, b, poison, c = asyncio.run(scenario())
    assert (a, b, c) == (["A"], ["B"], ["C"])
    assert isinstance(poison, RuntimeError)
    assert ["b", "poison", "c"] in model.calls  # batched first, then each alone


def test_a_batcher_serves_one_event_loop_after_another() -> None:
    """A second server or test loop gets its own worker, not the first loop's dead queue."""
    batcher = Batcher(Model(), max_batch_size=8, max_latency_ms=1)
    assert asyncio.run(batcher.submit(["one"])) == ["ONE"]
    assert asyncio.run(asyncio.wait_for(batcher.submit(["two"]), 5)) == ["TWO"]


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(Model(), max_batch_size=0, max_latency_ms=5)
