"""How sync code runs async code, and the one thread pool sync code fans out on.

promptkit's sync/async rule (see the design notes): control flow (strategies, loops) is
written once as a plan and driven by a sync or an async driver; only the transport layer
has hand-written twins. Two helpers cover what is left:

- :func:`run_sync` runs an async entry point (``aevaluate``, ``arun_batch``, ...) from
  sync code, and refuses, with a typed error naming the async twin, inside a running event
  loop (a notebook, an async app), where ``asyncio.run`` would fail obscurely.
  :func:`blocking_twin` makes such a blocking entry (``evaluate``, ``optimize``,
  ``run_batch``) from its async one, so the parameter list is written once.
- :func:`run_jobs` runs sync jobs concurrently (emulated ``n``, embedding batches, a
  strategy's calls) on one shared thread pool, at most ``limit`` at once, results in
  order. The calling thread runs jobs too, so nested fan-outs (a strategy's calls, each
  sending several requests) never wait on a pool they have filled themselves.

>>> run_jobs([lambda: 1, lambda: 2, lambda: 3], limit=2)
[1, 2, 3]
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from ._errors import ConfigurationError

__all__ = ["blocking_twin", "in_running_loop", "refuse_running_loop", "run_jobs", "run_sync"]

T = TypeVar("T")
P = ParamSpec("P")


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


def blocking_twin(
    afn: Callable[P, Coroutine[Any, Any, T]],
    *,
    instead: str,
    what: str | None = None,
    closing: Callable[[Mapping[str, Any]], Iterable[Any]] | None = None,
) -> Callable[[Callable[..., T]], Callable[P, T]]:
    """Make the decorated stub the blocking entry to ``afn``: the stub gives the name and
    the docstring, ``afn`` the parameters (for type checkers through ``P``, and for
    ``inspect.signature``/``help()``), so the parameter list is written once.

    The entry refuses a running event loop (:func:`run_sync`: ``what`` cannot run there,
    use ``instead``; ``what`` defaults to ``"<name>()"``) and runs ``afn`` under
    ``asyncio.run``; then it closes the async HTTP clients of the LLMs that ``closing``
    picks from the call's arguments (defaults applied), which are bound to the loop that
    ends with the call.

    >>> async def atwice(x: int, *, times: int = 2) -> int:
    ...     return x * times
    >>> @blocking_twin(atwice, instead="await atwice(...)")
    ... def twice(*args: Any, **kwargs: Any) -> int:
    ...     \"\"\"Double ``x``.\"\"\"
    ...     raise AssertionError("never called: blocking_twin runs atwice")
    >>> twice(21), twice.__name__, list(inspect.signature(twice).parameters)
    (42, 'twice', ['x', 'times'])
    """
    signature = inspect.signature(afn)

    def decorate(stub: Callable[..., T]) -> Callable[P, T]:
        label = what or f"{stub.__name__}()"

        def entry(*args: P.args, **kwargs: P.kwargs) -> T:
            refuse_running_loop(what=label, instead=instead)
            if closing is None:
                return run_sync(lambda: afn(*args, **kwargs), what=label, instead=instead)
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:  # as a call of the entry itself would say it
                raise TypeError(f"{stub.__name__}() {exc}") from None
            bound.apply_defaults()
            llms = [llm for llm in closing(bound.arguments) if llm is not None]

            async def main() -> T:
                try:
                    return await afn(*args, **kwargs)
                finally:
                    for llm in llms:
                        await _close_async_client(llm)

            return run_sync(main, what=label, instead=instead)

        entry.__module__ = stub.__module__  # doctest finds the stub's examples there
        entry.__name__ = stub.__name__
        entry.__qualname__ = stub.__qualname__
        entry.__doc__ = stub.__doc__
        entry.__annotations__ = dict(afn.__annotations__)
        entry.__wrapped__ = afn  # type: ignore[attr-defined]  # get_type_hints: afn's globals
        entry.__signature__ = signature  # type: ignore[attr-defined]
        return entry

    return decorate


async def _close_async_client(llm: Any) -> None:
    """An HTTP backend keeps an async client bound to the event loop that ends with a
    blocking entry's call: close it (the backend opens a new one when used again)."""
    http = sys.modules.get("promptkit.backends._http")
    if http is not None and isinstance(llm.backend, http.HTTPBackend):
        await llm.backend.aclose()


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
