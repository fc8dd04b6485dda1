"""The workers of a batch run: a fixed pool pulling inputs, rendering, sending within the
limits, re-queueing 429s and writing each result to the journal as it completes."""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import (
    BackendError,
    ConfigurationError,
    InputValidationError,
    PromptkitError,
    RateLimitError,
)
from .._params import SamplingParams, merge_params
from .._progress import Progress
from .._telemetry import span
from .._types import Completion
from ._journal import (
    _input_sha,
    _item_from_record,
    _record_error,
    _record_ok,
    _ResultsFile,
    _run_sha,
)
from ._limits import (
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    AdaptiveLimiter,
    Clock,
    TokenBucket,
    estimate_tokens,
    is_quota,
)
from ._results import BatchItem, BatchResult, Tally

if TYPE_CHECKING:
    from .._client import LLM
    from .._types import Message
    from ..prompts import PromptBase


def _known_len(inputs: Iterable[Any]) -> int | None:
    try:
        return len(inputs)  # type: ignore[arg-type]
    except TypeError:
        return None


@dataclass
class _Job:
    index: int
    value: Any
    input_sha: str
    messages: list[Message] | None = None
    estimate: int = 0
    rate_limited: int = 0


class _Run:
    def __init__(
        self,
        prompt: PromptBase,
        llm: LLM,
        inputs: Iterable[Mapping[str, Any]],
        *,
        params: SamplingParams | None,
        concurrency: int,
        rpm: float | None,
        tpm: float | None,
        out: Path | None,
        progress: bool | None,
        max_rate_limit_retries: int,
        retry_failed: bool,
        fsync_interval: float,
        collect: bool,
        clock: Clock,
    ) -> None:
        self.prompt = prompt
        self.llm = llm
        self.params = params
        self.call_params = merge_params(prompt.params, params)
        self.effective = llm.params.merge(self.call_params) if self.call_params else llm.params
        self.concurrency = concurrency
        self.clock = clock
        self.rpm = TokenBucket(rpm, clock) if rpm else None
        self.tpm = TokenBucket(tpm, clock) if tpm else None
        self.max_rate_limit_retries = max_rate_limit_retries
        self.retry_failed = retry_failed
        self.limiter = AdaptiveLimiter(concurrency)
        self.pause_until = 0.0
        self.cooldown_until = 0.0
        self.consecutive_429 = 0
        self.rate_limited = 0
        self.inputs = inputs
        self.total = _known_len(inputs)
        self.iterator = iter(inputs)
        self.exhausted = False
        self.next_index = 0
        self.retry: deque[_Job] = deque()
        self.items: list[BatchItem | None] = []
        self.file = _ResultsFile(out, fsync_interval) if out is not None else None
        self.run_sha = _run_sha(prompt, llm, params) if out is not None else ""
        self.collect = collect
        self.tally = Tally(cache=getattr(llm, "cache", None) is not None)
        if progress is None:
            isatty = getattr(sys.stderr, "isatty", None)
            progress = bool(isatty()) if callable(isatty) else False
        self.show = progress
        self.bar: Progress | None = None

    # ------------------------------------------------------------------ inputs

    def _record(self, item: BatchItem) -> None:
        if self.collect:
            self.items[item.index] = item
        self.tally.add(item)
        if self.bar is not None:
            cached = item.completion is not None and item.completion.cached and not item.resumed
            self.bar.update(ok=item.ok, cached=cached, resumed=item.resumed)

    def _finish(
        self, job: _Job, completion: Completion | None, error: PromptkitError | None
    ) -> None:
        if self.file is not None:
            if completion is not None:
                rec = _record_ok(job.index, completion, job.input_sha, self.run_sha)
            else:
                assert error is not None
                rec = _record_error(job.index, error, job.input_sha, self.run_sha)
            self.file.append(rec)
        value = job.value if isinstance(job.value, Mapping) else None
        if error is not None:
            item = BatchItem(job.index, value, None, error, type(error).__name__, str(error))
        else:
            item = BatchItem(job.index, value, completion)
        self._record(item)

    def _next_job(self) -> _Job | None:
        """The next job: a re-queued one (already rendered) first, then the next input not
        done yet (to be rendered)."""
        if self.retry:
            return self.retry.popleft()
        while not self.exhausted:
            try:
                value = next(self.iterator)
            except StopIteration:
                self.exhausted = True
                return None
            index = self.next_index
            self.next_index += 1
            if self.collect:
                self.items.append(None)
            job = _Job(index, value, _input_sha(value) if self.file is not None else "")
            if self.file is not None and index in self.file.records:
                rec = self.file.records[index]
                if rec["input_sha"] != job.input_sha:
                    raise ConfigurationError(
                        f"out={str(self.file.path)!r} holds a result for input {index} computed "
                        "from a different input: the inputs changed (or were reordered) since "
                        "that run. Give a new out= path, or restore the original inputs."
                    )
                self._record(_item_from_record(rec, value if isinstance(value, Mapping) else None))
                continue
            if not isinstance(value, Mapping):
                err = InputValidationError(
                    f"Input {index} is a {type(value).__name__}, not a mapping of variables: "
                    "each input must be a dict such as {'input': ...}."
                )
                self._finish(job, None, err)
                continue
            return job
        return None

    async def _render(self, job: _Job) -> bool:
        """Render a new job's messages (a retriever's I/O off the event loop); False when
        rendering failed, which is the input's result."""
        from ..prompts import arender_prompt

        try:
            job.messages = await arender_prompt(self.prompt, job.value)
        except PromptkitError as exc:
            self._finish(job, None, exc)
            return False
        if self.tpm is not None:
            job.estimate = estimate_tokens(job.messages, self.effective)
        return True

    # ------------------------------------------------------------------ workers

    async def _wait_pause(self) -> None:
        while True:
            left = self.pause_until - self.clock.monotonic()
            if left <= 0:
                return
            await self.clock.sleep(left)

    async def _worker(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            if job.messages is not None or await self._render(job):
                await self._attempt(job)

    async def _attempt(self, job: _Job) -> None:
        assert job.messages is not None
        await self.limiter.acquire()
        try:
            await self._wait_pause()
            if self.rpm is not None:
                await self.rpm.take(1)
            if self.tpm is not None:
                await self.tpm.take(job.estimate)
            try:
                completion = await self.llm.acomplete(job.messages, params=self.call_params)
            except RateLimitError as exc:
                self._rate_limited(job, exc)
                return
            except PromptkitError as exc:
                self._finish(job, None, exc)
                return
            except Exception as exc:  # a backend's own bug must not stop the other inputs
                err = BackendError(
                    f"The {self.llm.backend.name} backend raised {type(exc).__name__}: {exc}",
                    backend=self.llm.backend.name,
                )
                err.__cause__ = exc
                self._finish(job, None, err)
                return
        finally:
            self.limiter.release()
        self.consecutive_429 = 0
        self.limiter.success()
        if completion.cached:  # no request went out: give the budget back
            if self.rpm is not None:
                self.rpm.give(1)
            if self.tpm is not None:
                self.tpm.give(job.estimate)
        elif self.tpm is not None and completion.usage.total_tokens is not None:
            self.tpm.give(job.estimate - completion.usage.total_tokens)
        self._finish(job, completion, None)

    def _rate_limited(self, job: _Job, exc: RateLimitError) -> None:
        after = exc.retry_after
        too_long = isinstance(after, (int, float)) and after > MAX_RETRY_AFTER
        if is_quota(exc) or too_long or job.rate_limited >= self.max_rate_limit_retries:
            self._finish(job, None, exc)
            return
        job.rate_limited += 1
        self.rate_limited += 1
        self.consecutive_429 += 1
        now = self.clock.monotonic()
        if isinstance(after, (int, float)) and math.isfinite(after) and after >= 0:
            delay = float(after)
        else:
            delay = min(MAX_BACKOFF, 2.0 ** (self.consecutive_429 - 1))
            delay *= 1.0 + 0.1 * random.random()  # spread the restart a little
        self.pause_until = max(self.pause_until, now + delay)
        if now >= self.cooldown_until:  # one decrease per congestion episode
            self.limiter.decrease()
            self.cooldown_until = self.pause_until
        self.retry.append(job)

    # ------------------------------------------------------------------ the whole run

    async def run(self) -> BatchResult:
        with span("promptkit.batch", {"promptkit.batch.concurrency": self.concurrency}) as s:
            result = await self._run()
            summary = result.summary
            s.set("promptkit.batch.total", summary.total)
            s.set("promptkit.batch.ok", summary.ok)
            s.set("promptkit.batch.failed", summary.failed)
            s.set("promptkit.cost_usd", summary.cost)
            return result

    async def _run(self) -> BatchResult:
        started = time.perf_counter()
        if self.file is not None:
            self.file.open()
        try:
            if self.file is not None:
                other = next(
                    (r for r in self.file.records.values() if r["run_sha"] != self.run_sha), None
                )
                if other is not None:
                    raise ConfigurationError(
                        f"out={str(self.file.path)!r} was written by a run with other arguments "
                        "(prompt, params, backend or model differ): resuming would mix their "
                        "results. Give a new out= path, or run with the original arguments."
                    )
                if self.retry_failed:
                    self.file.drop_failed()
                if self.total is not None:
                    beyond = [i for i in self.file.records if i >= self.total]
                    if beyond:
                        raise ConfigurationError(
                            f"out={str(self.file.path)!r} holds results for input {min(beyond)} "
                            f"and up, but there are only {self.total} inputs: it belongs to "
                            "another run. Give a new out= path."
                        )
            if self.show:
                self.bar = Progress(self.total)
            workers = [asyncio.ensure_future(self._worker()) for _ in range(self.concurrency)]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
            if self.file is not None:
                beyond = [i for i in self.file.records if i >= self.next_index]
                if beyond:
                    raise ConfigurationError(
                        f"out={str(self.file.path)!r} holds results for input {min(beyond)} "
                        f"and up, but there were only {self.next_index} inputs: it belongs to "
                        "another run. Give a new out= path."
                    )
        finally:
            if self.bar is not None:
                self.bar.close()
            if self.file is not None:
                self.file.close()
        items = [item for item in self.items if item is not None]
        assert len(items) == len(self.items)
        summary = self.tally.summary(
            wall_s=time.perf_counter() - started, rate_limited=self.rate_limited
        )
        return BatchResult(items, summary)
