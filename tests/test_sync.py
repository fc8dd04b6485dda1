"""promptkit._sync: the one way sync code runs async code, the one shared thread pool, and
the stream twins that now agree (issue 13)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

import promptkit as pk
from promptkit import LLM, FakeBackend
from promptkit._sync import run_jobs, run_sync
from promptkit._types import Completion, Delta, Request


def test_run_sync_runs_a_coroutine_and_refuses_inside_a_loop() -> None:
    async def answer() -> int:
        return 42

    assert run_sync(answer, what="answer()", instead="await answer()") == 42

    async def inside() -> None:
        with pytest.raises(pk.ConfigurationError, match=r"answer\(\) cannot run inside.*await"):
            run_sync(answer, what="answer()", instead="await answer()")

    asyncio.run(inside())


def test_evaluate_inside_a_loop_names_the_async_twin() -> None:
    from promptkit.evaluation import evaluate

    async def inside() -> None:
        with pytest.raises(pk.ConfigurationError, match=r"aevaluate"):
            evaluate({"v": pk.ZeroShot(instruction="x")}, [{"input": "a"}], LLM(FakeBackend()))

    asyncio.run(inside())


def test_run_jobs_keeps_order_limits_concurrency_and_raises_the_first_error() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def job(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return i

    assert run_jobs([lambda i=i: job(i) for i in range(12)], limit=3) == list(range(12))
    assert 1 < peak <= 3
    assert run_jobs([], limit=4) == []

    def boom(i: int) -> int:
        raise ValueError(f"job {i}")

    with pytest.raises(ValueError, match="job 1"):
        run_jobs([lambda: 0, lambda: boom(1), lambda: boom(2)], limit=1)


def test_nested_fan_outs_do_not_deadlock_the_shared_pool() -> None:
    # 40 outer jobs (more than the pool's 32 threads), each fanning out again and waiting:
    # with a plain shared pool every thread would wait on jobs queued behind it
    def outer(i: int) -> int:
        return sum(run_jobs([lambda j=j: i * j for j in range(4)], limit=4))

    got = run_jobs([lambda i=i: outer(i) for i in range(40)], limit=40)
    assert got == [i * 6 for i in range(40)]


class _EmptyThenRefused(FakeBackend):
    """Streams an empty delta, then refuses ``seed`` (first try); then streams "ok"."""

    def __init__(self) -> None:
        super().__init__(["ok"], supports=["seed"])
        self.opened = 0

    def _deltas(self, request: Request) -> Iterator[Delta]:
        self.opened += 1
        yield Delta("", model="m1")
        if "seed" in request.params:
            raise pk.FeatureRefusedError(
                "refused seed", features=("seed",), reason="no seed", status=400
            )
        yield Delta("ok")
        yield Delta("", finish_reason="stop")

    def stream(self, request: Request) -> Iterator[Delta]:
        return self._deltas(request)

    async def astream(self, request: Request) -> AsyncIterator[Delta]:
        for delta in self._deltas(request):
            yield delta

    def complete(self, request: Request) -> Completion:  # pragma: no cover - unused
        raise AssertionError


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_twins_agree_on_empty_deltas(mode: str) -> None:
    # the async twin used to record an empty delta as received text, so a refusal after
    # it raised instead of falling back; it also kept the model the sync twin dropped
    backend = _EmptyThenRefused()
    llm = LLM(backend, on_unsupported="drop")
    stream = llm.stream("Hi", seed=1)
    if mode == "sync":
        pieces = list(stream)
    else:

        async def go() -> list[str]:
            return [p async for p in stream]

        pieces = asyncio.run(go())
    assert pieces == ["ok"] and backend.opened == 2
    done = stream.completion
    assert done is not None and done.text == "ok" and done.finish_reason == "stop"
    assert done.model == "m1" and "seed" in done.dropped
