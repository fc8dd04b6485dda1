"""The public batch API: :func:`run_batch` and :func:`arun_batch` (``prompt.batch`` and
``prompt.abatch``), their argument checks, and closing an HTTP backend's async client."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, InputValidationError
from .._params import SamplingParams
from .._sync import blocking_twin
from ._limits import Clock, RealClock
from ._results import BatchResult
from ._workers import _Run

if TYPE_CHECKING:
    from .._client import LLM
    from ..prompts import PromptBase

__all__ = ["arun_batch", "check_options", "run_batch"]

#: What a blocking run_batch() inside a running event loop says to use instead.
_WHAT = "prompt.batch() / run_batch()"
_INSTEAD = "await prompt.abatch(llm, inputs, ...)"


def check_options(
    prompt: Any,
    inputs: Any,
    concurrency: Any,
    rpm: Any,
    tpm: Any,
    max_rate_limit_retries: Any,
    fsync_interval: Any,
) -> None:
    if not callable(getattr(prompt, "render", None)):
        raise ConfigurationError(
            f"run_batch needs a prompt object (with render()); got {type(prompt).__name__}."
        )
    if isinstance(inputs, (str, bytes, Mapping)) or not isinstance(inputs, Iterable):
        raise InputValidationError(
            f"inputs must be an iterable of dicts of variables (e.g. [{{'input': 'a'}}, "
            f"{{'input': 'b'}}] or a generator of them); got a {type(inputs).__name__}."
        )
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency={concurrency!r}: expected a whole number >= 1.")
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigurationError(
                f"{name}={value!r}: expected a number > 0 per minute, or None."
            )
    if (
        isinstance(max_rate_limit_retries, bool)
        or not isinstance(max_rate_limit_retries, int)
        or max_rate_limit_retries < 0
    ):
        raise ConfigurationError(
            f"max_rate_limit_retries={max_rate_limit_retries!r}: expected a whole number >= 0."
        )
    if not isinstance(fsync_interval, (int, float)) or fsync_interval < 0:
        raise ConfigurationError(f"fsync_interval={fsync_interval!r}: expected seconds >= 0.")


async def arun_batch(
    prompt: PromptBase,
    llm: LLM,
    inputs: Iterable[Mapping[str, Any]],
    *,
    params: SamplingParams | None = None,
    concurrency: int = 8,
    rpm: float | None = None,
    tpm: float | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    max_rate_limit_retries: int = 5,
    retry_failed: bool = False,
    fsync_interval: float = 1.0,
    collect: bool = True,
    clock: Clock | None = None,
) -> BatchResult:
    """Async twin of :func:`run_batch` (``await prompt.abatch(llm, inputs, ...)``).

    >>> import asyncio, promptkit as pk
    >>> llm = pk.LLM(pk.FakeBackend(lambda request: "ok"))
    >>> p = pk.ZeroShot(instruction="Answer.")
    >>> asyncio.run(p.abatch(llm, ({"input": str(i)} for i in range(3)), progress=False)).texts
    ['ok', 'ok', 'ok']
    """
    check_options(prompt, inputs, concurrency, rpm, tpm, max_rate_limit_retries, fsync_interval)
    run = _Run(
        prompt,
        llm,
        inputs,
        params=params,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        out=Path(out) if out is not None else None,
        progress=progress,
        max_rate_limit_retries=max_rate_limit_retries,
        retry_failed=retry_failed,
        fsync_interval=float(fsync_interval),
        collect=bool(collect),
        clock=clock or RealClock(),
    )
    return await run.run()


@blocking_twin(arun_batch, what=_WHAT, instead=_INSTEAD, closing=lambda args: (args["llm"],))
def run_batch(*args: Any, **kwargs: Any) -> BatchResult:
    """Run ``prompt`` over ``inputs`` (dicts of variables); results in input order.

    - ``params``: sampling parameters for every call (over the prompt's own).
    - ``concurrency``: requests in flight at most (default 8).
    - ``rpm`` / ``tpm``: requests / tokens per minute at most (client-side limits).
    - ``out``: a JSONL file; each result is appended as it completes, and running again
      with the same arguments resumes (see the module docs).
    - ``retry_failed``: on resume, send again the inputs that failed before.
    - ``progress``: show a progress bar on stderr (default: when stderr is a terminal).
    - ``max_rate_limit_retries``: times one input is re-queued after a 429 (default 5).
    - ``fsync_interval``: seconds between fsyncs of ``out`` (0: every line).
    - ``collect``: keep every result in the returned BatchResult (default). With
      ``collect=False`` only the summary is kept, so memory stays flat however many inputs
      there are; write the results with ``out=`` and read them with
      :meth:`BatchResult.load`.
    - ``clock``: a :class:`Clock` for the rate limiter and backoff (tests).

    >>> import os, tempfile, promptkit as pk
    >>> llm = pk.LLM(pk.FakeBackend(lambda request: "A" * len(request.messages[-1].content)))
    >>> p = pk.ZeroShot(instruction="Answer.")
    >>> path = os.path.join(tempfile.mkdtemp(), "results.jsonl")
    >>> first = run_batch(p, llm, [{"input": "x"}, {"input": "yy"}], out=path, progress=False)
    >>> again = run_batch(p, llm, [{"input": "x"}, {"input": "yy"}], out=path, progress=False)
    >>> again.texts, again.summary.resumed, len(open(path).readlines())
    (['A', 'AA'], 2, 2)

    Called inside a running event loop (a notebook, an async app) it raises
    :class:`~promptkit.ConfigurationError`: use ``await prompt.abatch(...)`` there.
    """
    raise AssertionError("never called: blocking_twin makes the entry that runs arun_batch")

