"""How sync code runs async code, and the one thread pool sync code fans out on.

promptkit's sync/async rule (see the design notes): control flow (strategies, loops) is
written once as a plan and driven by a sync or an async driver; only the transport layer
has hand-written twins. Two helpers cover what is left:

- :func:`run_sync` runs an async entry point (``aevaluate``, ``arun_batch``, ...) from
  sync code, and refuses, with a typed error naming the async twin, inside a running event
  loop (a notebook, an async app), where ``asyncio.run`` would fail obscurely.
- :func:`run_jobs` runs sync jobs concurrently (emulated ``n``, embedding batches, a
  strategy's calls) on one shared thread pool, at most ``limit`` at once, results in
  order. The calling thread runs jobs too, so nested fan-outs (a strategy's calls, each
  sending several requests) never wait on a pool they have filled themselves.

>>> run_jobs([lambda: 1, lambda: 2, lambda: 3], limit=2)
[1, 2, 3]
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from ._errors import ConfigurationError

__all__ = ["in_running_loop", "refuse_running_loop", "run_jobs", "run_sync"]

T = TypeVar("T")


def in_running_loop() -> bool:
    """Whether the calling thread is inside a running event loop (asyncio is not imported
    for the question: ``import promptkit`` stays without it, and no loop runs before it)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(main: Callable[[], Coroutine[Any, Any, T]], *, what: str, instead: str) -> T:
    """``asyncio.run(main())``, or :class:`~promptkit.ConfigurationError` inside a running
    event loop, saying that ``what`` cannot run there and to use ``instead``.

    >>> async def answer() -> int:
    ...     return 42
    >>> run_sync(answer, what="answer()", instead="await answer()")
    42
    """
    refuse_running_loop(what=what, instead=instead)
    import asyncio

    return asyncio.run(main())


def refuse_running_loop(*, what: str, instead: str) -> None:
    """Raise :class:`~promptkit.ConfigurationError` inside a running event loop, saying that
    ``what`` (a blocking entry) cannot run there and to use ``instead``; for entries that
    must check before doing other work (:func:`run_sync` checks too)."""
    if in_running_loop():
        raise ConfigurationError(
            f"{what} cannot run inside a running event loop (a notebook or async code): "
            f"use `{instead}` there instead."
        )


class _SharedPool:
    """The thread pool sync calls share: created on first use, at least ``size`` threads,
    created anew in a forked child (whose copy has no threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.executor: Any = None
        self.pid = 0
        self.size = 0

    def get(self, size: int) -> Any:
        pid = os.getpid()
        with self.lock:
            if self.executor is None or self.pid != pid or self.size < size:
                from concurrent.futures import ThreadPoolExecutor

                old = self.executor if self.pid == pid else None
                self.size = max(size, self.size if old is not None else 0, 32)
                self.executor = ThreadPoolExecutor(
                    max_workers=self.size, thread_name_prefix="promptkit"
                )
                self.pid = pid
                if old is not None:
                    old.shutdown(wait=False)
            return self.executor


_pool = _SharedPool()


def run_jobs(jobs: Sequence[Callable[[], T]], limit: int) -> list[T]:
    """Run ``jobs`` concurrently, at most ``limit`` at once; their results in order.

    One job runs in the calling thread. Otherwise ``limit - 1`` workers on the shared pool
    and the calling thread take jobs in order until none is left. A job only starts on a
    thread that is running, so a job that itself calls :func:`run_jobs` cannot deadlock
    the pool. When a job raises, no further job starts; the calling thread waits for the
    ones already running and raises the first error (in job order).
    """
    if len(jobs) == 1:
        return [jobs[0]()]
    n = len(jobs)
    limit = max(1, min(n, limit))
    results: list[Any] = [None] * n
    errors: dict[int, BaseException] = {}
    cond = threading.Condition()
    state = {"next": 0, "running": 0}

    def work() -> None:
        while True:
            with cond:
                i = state["next"]
                if i >= n or errors:
                    return
                state["next"] = i + 1
                state["running"] += 1
            try:
                results[i] = jobs[i]()
            except BaseException as exc:
                with cond:
                    errors[i] = exc
            finally:
                with cond:
                    state["running"] -= 1
                    cond.notify_all()

    if limit > 1:
        pool = _pool.get(limit)
        for _ in range(limit - 1):
            pool.submit(work)
    work()
    with cond:
        # workers that start later find nothing left and return at once
        while state["running"]:
            cond.wait()
    if errors:
        raise errors[min(errors)]
    return results
