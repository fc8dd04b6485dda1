"""The batch runner: one prompt over many inputs, concurrently, durably, within rate limits.

>>> import promptkit as pk
>>> llm = pk.LLM(pk.FakeBackend(lambda request: request.messages[-1].content.upper()))
>>> shout = pk.ZeroShot(instruction="Repeat the text in capitals.")
>>> result = shout.batch(llm, [{"input": "hi"}, {"input": "bye"}], progress=False)
>>> result.texts
['HI', 'BYE']
>>> result.summary.ok, result.summary.failed
(2, 0)

WHAT IT DOES. :func:`run_batch` (``prompt.batch``) and :func:`arun_batch`
(``await prompt.abatch``) render the prompt with each input (a dict of variables) and send
it, ``concurrency`` requests at a time. A fixed pool of workers pulls inputs from the
iterable as it goes, so a generator of a million inputs is never materialised and at most
``concurrency`` requests are in flight. Results come back in input order as a
:class:`BatchResult`. An input that fails (a template error, a 400, a timeout after the
backend's retries ...) is recorded on its :class:`BatchItem` with its typed
:class:`~promptkit.PromptkitError`; the other inputs go on. The results themselves are
kept for the returned BatchResult; ``collect=False`` keeps only the summary (memory then
stays flat for any number of inputs: pair it with ``out=``).

DURABLE RUNS. With ``out="results.jsonl"`` every result is appended to the file as it
completes, one JSON line each (format below). Start the same run again after a crash, a
Ctrl-C or a ``kill -9`` and it resumes: inputs already in the file are not sent again, and
the file ends with exactly one line per input. How that is guaranteed:

- each line is written with a single ``os.write`` on a file descriptor opened with
  ``O_APPEND``, so a line is never interleaved with another and a killed process leaves at
  worst one partial (*torn*) last line;
- on start the file is read, a torn last line (no final newline) is cut off, and the
  indices present are skipped; an index is never written twice;
- an advisory lock (``flock``, POSIX) refuses a second process on the same file;
- every line carries a hash of its input and of the run's identity (prompt, parameters,
  backend and model): resuming with other inputs or arguments is refused with a
  :class:`~promptkit.ConfigurationError` instead of mixing results (other arguments at
  the start; an input that differs from the one on file when that input is read).

*Flush policy.* A line is handed to the kernel by ``os.write`` before the result is
counted as done; from then on it survives the death of the process, ``kill -9``
included. ``fsync`` (which is what survives a power loss or an OS crash) is called at
most once per ``fsync_interval`` seconds (1 s by default) and at the end of the run:
syncing every line would cost a disk flush per request for no gain against process
crashes. After a power loss at most the last second of lines is lost or torn; the resume
logic above recomputes them. ``fsync_interval=0`` syncs every line.

Line format (one JSON object per line, keys in this order)::

    {"index": 0, "status": "ok", "text": "...", "choices": [{"text": "...",
     "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 2,
     "total_tokens": 11}, "model": "...", "backend": "...", "cached": false,
     "input_sha": "...", "run_sha": "...", "v": 1}
    {"index": 1, "status": "error", "error": {"type": "BadRequestError", "message":
     "...", "status": 400}, "input_sha": "...", "run_sha": "...", "v": 1}

Lines are in completion order, not input order; :meth:`BatchResult.load` reads a file
back in input order. Failed inputs are results too: a resume does not retry them unless
``retry_failed=True``, which first rewrites the file without them (atomically).

RATE LIMITS. ``rpm`` (requests per minute) and ``tpm`` (tokens per minute) are enforced on
the client with token buckets (a burst of at most one second's worth). A request's
tokens are estimated before sending as :func:`promptkit.approx_tokens` of its messages
plus ``max_tokens`` (times ``n``), then reconciled with the usage the server reports. A
reply served from the response cache gives its budget back.

ADAPTIVE SLOW-DOWN. When a request still fails with :class:`~promptkit.RateLimitError`
after the backend's own retries, the runner (1) pauses every worker for the server's
``retry_after`` if the error carries one (up to 5 minutes: a server asking for longer is
recorded as the input's failure at once rather than stalling the batch), else for an
exponential backoff (1 s, 2 s, 4 s ... at most 60 s); (2) halves the number of requests
in flight (at most once per pause; it grows back by one after each run of that many
successes); and (3) puts the input back in the queue, at most ``max_rate_limit_retries``
times, after which the 429 is recorded as the input's failure. An exhausted quota
(``insufficient_quota``) is recorded at once.

PROGRESS. ``progress=None`` shows a progress bar on stderr when stderr is a terminal;
``True`` forces it (a plain line every 10 s when not a terminal), ``False`` hides it.

HTTP backends: httpx's connection pool allows 100 connections per client, so a
``concurrency`` above 100 queues inside the pool rather than on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload

from ._completion import Choice, Completion, Usage
from ._errors import (
    BackendError,
    ConfigurationError,
    InputValidationError,
    PromptkitError,
    RateLimitError,
)
from ._params import SamplingParams, merge_params
from ._progress import Progress

if TYPE_CHECKING:
    from ._client import LLM
    from ._messages import Message
    from ._prompt import PromptBase

__all__ = [
    "BatchItem",
    "BatchResult",
    "BatchSummary",
    "Clock",
    "arun_batch",
    "run_batch",
]

_FORMAT_VERSION = 1
_MAX_BACKOFF = 60.0
#: The longest server-requested pause a batch waits for; longer is the input's failure.
_MAX_RETRY_AFTER = 300.0


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BatchItem:
    """The result for one input.

    Exactly one of ``completion`` and ``error_type`` is set. ``error`` is the exception
    itself for failures of this run; for failures read back from a results file only
    ``error_type`` (the class name) and ``error_message`` remain. ``resumed`` marks results
    read from the ``out`` file instead of computed by this run.
    """

    index: int
    input: Mapping[str, Any] | None
    completion: Completion | None = None
    error: PromptkitError | None = field(default=None, repr=False)
    error_type: str | None = None
    error_message: str | None = None
    resumed: bool = False

    @property
    def ok(self) -> bool:
        """True when the input has a completion."""
        return self.completion is not None

    @property
    def text(self) -> str | None:
        """The completion's text, ``None`` for a failure."""
        return None if self.completion is None else self.completion.text


@dataclass(frozen=True)
class BatchSummary:
    """Counts for a batch.

    ``cache_hits``/``cache_misses`` count this run's completions served by / not found in
    the LLM's response cache (both 0 without a cache); ``resumed`` counts results read
    from the ``out`` file; ``usage`` sums the token usage of every completion (resumed ones
    included); ``rate_limited`` counts 429s absorbed by re-queueing; ``errors`` counts
    failures by error type.
    """

    total: int
    ok: int
    failed: int
    cache_hits: int = 0
    cache_misses: int = 0
    resumed: int = 0
    rate_limited: int = 0
    usage: Usage = field(default_factory=Usage)
    wall_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        out = f"{self.total} inputs: {self.ok} ok, {self.failed} failed"
        if self.errors:
            out += " (" + ", ".join(f"{n} {t}" for t, n in sorted(self.errors.items())) + ")"
        if self.cache_hits or self.cache_misses:
            out += f"; cache {self.cache_hits} hits / {self.cache_misses} misses"
        if self.resumed:
            out += f"; {self.resumed} resumed"
        if self.rate_limited:
            out += f"; {self.rate_limited} rate-limited retries"
        if self.usage.total_tokens is not None:
            out += f"; {self.usage.total_tokens:,} tokens"
        return out + f"; {self.wall_s:.2f} s"


class BatchResult(Sequence[BatchItem]):
    """Per-input results in input order, and a :class:`BatchSummary`.

    Iterate over it (or index it) for :class:`BatchItem` objects; ``texts`` gives the
    texts (``None`` for failures), ``failed`` the failed items.
    """

    def __init__(self, items: list[BatchItem], summary: BatchSummary) -> None:
        self.items = items
        self.summary = summary

    def __repr__(self) -> str:
        return f"<BatchResult {self.summary}>"

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[BatchItem]:
        return iter(self.items)

    @overload
    def __getitem__(self, index: int) -> BatchItem: ...

    @overload
    def __getitem__(self, index: slice) -> list[BatchItem]: ...

    def __getitem__(self, index: int | slice) -> BatchItem | list[BatchItem]:
        return self.items[index]

    @property
    def texts(self) -> list[str | None]:
        """Each input's text, ``None`` where it failed."""
        return [item.text for item in self.items]

    @property
    def completions(self) -> list[Completion | None]:
        """Each input's completion, ``None`` where it failed."""
        return [item.completion for item in self.items]

    @property
    def failed(self) -> list[BatchItem]:
        """The items that failed."""
        return [item for item in self.items if not item.ok]

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], inputs: Sequence[Mapping[str, Any]] | None = None
    ) -> BatchResult:
        """Read a results file written with ``out=`` (torn last line ignored), in input
        order. With ``inputs`` the items carry them, and the file's input hashes must
        match them."""
        records = _read_records(Path(path))
        n = len(inputs) if inputs is not None else (max(records) + 1 if records else 0)
        items = []
        for i in range(n):
            value = inputs[i] if inputs is not None else None
            rec = records.get(i)
            if rec is None:
                items.append(_missing(i, value, f"no result for input {i} in {str(path)!r}"))
                continue
            if value is not None and rec.get("input_sha") != _input_sha(value):
                raise ConfigurationError(
                    f"{str(path)!r} line for input {i} was written for a different input "
                    "(its input hash differs)."
                )
            items.append(_item_from_record(rec, value))
        return cls(items, _summarize(items))


def _missing(index: int, value: Mapping[str, Any] | None, message: str) -> BatchItem:
    err = BackendError(message)
    return BatchItem(index, value, None, err, type(err).__name__, message)


class _Tally:
    """Running counts for a :class:`BatchSummary` (so results need not be kept)."""

    def __init__(self, *, cache: bool) -> None:
        self.cache = cache
        self.total = self.ok = self.failed = self.hits = self.misses = self.resumed = 0
        self.usage = Usage()
        self.errors: dict[str, int] = {}

    def add(self, item: BatchItem) -> None:
        self.total += 1
        if item.resumed:
            self.resumed += 1
        if item.completion is not None:
            self.ok += 1
            self.usage = self.usage + item.completion.usage
            if not item.resumed and self.cache:
                if item.completion.cached:
                    self.hits += 1
                else:
                    self.misses += 1
        else:
            self.failed += 1
            name = item.error_type or "Error"
            self.errors[name] = self.errors.get(name, 0) + 1

    def summary(self, *, wall_s: float = 0.0, rate_limited: int = 0) -> BatchSummary:
        return BatchSummary(
            total=self.total,
            ok=self.ok,
            failed=self.failed,
            cache_hits=self.hits,
            cache_misses=self.misses,
            resumed=self.resumed,
            rate_limited=rate_limited,
            usage=self.usage,
            wall_s=wall_s,
            errors=dict(sorted(self.errors.items())),
        )


def _summarize(items: Iterable[BatchItem]) -> BatchSummary:
    tally = _Tally(cache=False)
    for item in items:
        tally.add(item)
    return tally.summary()


# --------------------------------------------------------------------------- hashing


def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def _sha(value: Any) -> str:
    blob = json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_json_default
    ).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()[:32]


def _input_sha(value: Any) -> str:
    if isinstance(value, Mapping):
        return _sha({str(k): v for k, v in value.items()})
    return _sha(repr(value))


def _params_dump(params: SamplingParams | None) -> Any:
    return None if params is None else params.model_dump(mode="json", exclude_unset=True)


def _run_sha(prompt: PromptBase, llm: LLM, params: SamplingParams | None) -> str:
    try:
        prompt_dump: Any = prompt.model_dump(mode="json")
    except Exception:  # a prompt with fields pydantic cannot dump
        prompt_dump = repr(prompt)
    return _sha(
        {
            "prompt": [type(prompt).__name__, prompt_dump],
            "params": _params_dump(params),
            "llm_params": _params_dump(llm.params),
            "backend": llm.backend.name,
            "model": llm.backend.model,
        }
    )


# --------------------------------------------------------------------------- the JSONL file


def _dumps_line(record: Mapping[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep the line valid UTF-8
        data = json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return data + b"\n"


def _record_ok(index: int, completion: Completion, input_sha: str, run_sha: str) -> dict[str, Any]:
    u = completion.usage
    return {
        "index": index,
        "status": "ok",
        "text": completion.text,
        "choices": [{"text": c.text, "finish_reason": c.finish_reason} for c in completion.choices],
        "usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
        },
        "model": completion.model,
        "backend": completion.backend,
        "cached": completion.cached,
        "input_sha": input_sha,
        "run_sha": run_sha,
        "v": _FORMAT_VERSION,
    }


def _record_error(
    index: int, error: PromptkitError, input_sha: str, run_sha: str
) -> dict[str, Any]:
    err: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    status = getattr(error, "status", None)
    if isinstance(status, int):
        err["status"] = status
    return {
        "index": index,
        "status": "error",
        "error": err,
        "input_sha": input_sha,
        "run_sha": run_sha,
        "v": _FORMAT_VERSION,
    }


def _item_from_record(rec: Mapping[str, Any], value: Mapping[str, Any] | None) -> BatchItem:
    index = int(rec["index"])
    if rec.get("status") == "ok":
        raw_choices = rec.get("choices") or [
            {"text": rec.get("text", ""), "finish_reason": rec.get("finish_reason")}
        ]
        usage = rec.get("usage") or {}
        completion = Completion(
            choices=[
                Choice(str(c.get("text", "")), i, c.get("finish_reason"))
                for i, c in enumerate(raw_choices)
            ],
            model=rec.get("model"),
            backend=rec.get("backend"),
            usage=Usage(
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
                usage.get("total_tokens"),
            ),
            cached=bool(rec.get("cached", False)),
            requests=0,
        )
        return BatchItem(index, value, completion, resumed=True)
    err = rec.get("error") or {}
    return BatchItem(
        index,
        value,
        None,
        None,
        str(err.get("type") or "Error"),
        str(err.get("message") or ""),
        resumed=True,
    )


def _valid_record(rec: Any) -> bool:
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("index"), int)
        and rec["index"] >= 0
        and rec.get("status") in ("ok", "error")
        and isinstance(rec.get("input_sha"), str)
        and isinstance(rec.get("run_sha"), str)
    )


def _parse_records(data: bytes, path: Path) -> tuple[dict[int, dict[str, Any]], int, int]:
    """(records by index, length of the complete lines, duplicate lines)."""
    end = data.rfind(b"\n") + 1  # bytes after the last newline are a torn line
    records: dict[int, dict[str, Any]] = {}
    duplicates = 0
    for lineno, raw in enumerate(data[:end].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            rec = None
        if not _valid_record(rec):
            raise ConfigurationError(
                f"Results file {str(path)!r}, line {lineno}, is not a promptkit batch result "
                "(it does not parse, or lacks index/status/hashes). Give a new out= path, or "
                "remove that line to resume."
            )
        assert isinstance(rec, dict)
        if rec["index"] in records:
            duplicates += 1
            continue
        records[rec["index"]] = rec
    return records, end, duplicates


def _read_records(path: Path) -> dict[int, dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"Cannot read results file {str(path)!r}: {exc}.") from None
    return _parse_records(data, path)[0]


class _ResultsFile:
    """The append-only JSONL file of a durable run (one writer at a time, enforced)."""

    def __init__(self, path: Path, fsync_interval: float) -> None:
        self.path = path
        self.fsync_interval = fsync_interval
        self.records: dict[int, dict[str, Any]] = {}
        self.written: set[int] = set()
        self._fd = -1
        self._last_sync = time.monotonic()
        self._dirty = False

    def open(self) -> None:
        path = self.path
        if path.is_dir():
            raise ConfigurationError(
                f"out={str(path)!r} is a directory: give a file path, e.g. "
                f"{str(path / 'results.jsonl')!r}."
            )
        if not path.parent.is_dir():
            raise ConfigurationError(
                f"out={str(path)!r}: the directory {str(path.parent)!r} does not exist. "
                "Create it first (the runner creates only the file)."
            )
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigurationError(f"Cannot open out={str(path)!r}: {exc}.") from None
        try:
            _lock(fd, path)
            data = _read_fd(fd)
            self.records, end, duplicates = _parse_records(data, path)
            if end < len(data):  # cut the torn last line before appending anything
                os.ftruncate(fd, end)
                os.fsync(fd)
            if duplicates:
                warnings.warn(
                    f"{str(path)!r} holds {duplicates} duplicate line(s) (not written by this "
                    "runner); the first line of each input is used.",
                    stacklevel=4,
                )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def drop_failed(self) -> int:
        """Rewrite the file without its failed lines (atomically); how many were dropped."""
        failed = [i for i, r in self.records.items() if r["status"] != "ok"]
        if not failed:
            return 0
        keep = [r for r in self.records.values() if r["status"] == "ok"]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            for rec in keep:
                f.write(_dumps_line(rec))
            f.flush()
            os.fsync(f.fileno())
        # the lock lives on the old inode: take it on the new one before it replaces it
        new_fd = os.open(tmp, os.O_RDWR | os.O_APPEND)
        try:
            _lock(new_fd, self.path)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            os.close(new_fd)
            raise
        os.close(self._fd)
        self._fd = new_fd
        for i in failed:
            del self.records[i]
        return len(failed)

    def append(self, record: Mapping[str, Any]) -> None:
        index = int(record["index"])
        if index in self.records or index in self.written:  # never twice
            raise AssertionError(f"index {index} written twice")  # pragma: no cover
        data = _dumps_line(record)
        view = memoryview(data)
        while view:  # one write for a regular file; loop only on a short write
            n = os.write(self._fd, view)
            view = view[n:]
        self.written.add(index)
        self._dirty = True
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval:
            os.fsync(self._fd)
            self._last_sync = now
            self._dirty = False

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            if self._dirty:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)  # also releases the lock
            self._fd = -1


def _read_fd(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ConfigurationError(
            f"out={str(path)!r} is being written by another running batch. Wait for it to "
            "finish (or stop it), or give this run another out= path."
        ) from None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- rate limiting


class Clock(Protocol):
    """What the rate limiter and the backoff use to tell and wait for time (replace it
    with a fake clock in tests)."""

    def monotonic(self) -> float:
        """Seconds, monotonically increasing."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""


class _RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up; waiters served in order.

    A request larger than the capacity waits for a full bucket and then takes the bucket
    into debt, so the long-run rate holds for any request size.
    """

    #: Longest single sleep, so that refunds (cache hits) wake waiters soon.
    POLL = 0.05

    def __init__(self, per_minute: float, clock: Clock) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)  # one second's worth
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        need = min(amount, self.capacity)
        async with self.lock:
            while True:
                self._refill()
                if self.tokens >= need - 1e-9:
                    self.tokens -= amount
                    return
                await self.clock.sleep(min((need - self.tokens) / self.rate, self.POLL))

    def give(self, amount: float) -> None:
        """Return tokens (or take more, when ``amount`` is negative)."""
        self._refill()
        self.tokens = min(self.capacity, self.tokens + amount)


class _Limiter:
    """Adaptive concurrency: at most ``limit`` requests in flight; halved on a 429 (once per
    pause), grown back by one after ``limit`` successes in a row. Waiters are served in
    order."""

    def __init__(self, limit: int) -> None:
        self.max = limit
        self.limit = limit
        self.active = 0
        self.streak = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.active < self.limit and not self.waiters:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just before the cancellation: give it back
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(fut)
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        while self.waiters and self.active < self.limit:
            fut = self.waiters.popleft()
            if not fut.done():
                self.active += 1
                fut.set_result(None)

    def decrease(self) -> None:
        self.limit = max(1, self.limit // 2)
        self.streak = 0

    def success(self) -> None:
        if self.limit >= self.max:
            return
        self.streak += 1
        if self.streak >= self.limit:
            self.streak = 0
            self.limit += 1
            self._wake()


def _estimate_tokens(messages: Sequence[Message], params: SamplingParams) -> int:
    from ._prompt import approx_tokens

    prompt = sum(approx_tokens(m.content) for m in messages)
    n = params.n or 1
    return prompt + (params.max_tokens or 0) * n


def _is_quota(exc: RateLimitError) -> bool:
    text = f"{exc} {getattr(exc, 'body', '') or ''}".lower()
    return "insufficient_quota" in text or "quota is used up" in text


# --------------------------------------------------------------------------- the runner


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
        self.rpm = _TokenBucket(rpm, clock) if rpm else None
        self.tpm = _TokenBucket(tpm, clock) if tpm else None
        self.max_rate_limit_retries = max_rate_limit_retries
        self.retry_failed = retry_failed
        self.limiter = _Limiter(concurrency)
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
        self.tally = _Tally(cache=getattr(llm, "cache", None) is not None)
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
        from ._prompt import arender_prompt

        try:
            job.messages = await arender_prompt(self.prompt, job.value)
        except PromptkitError as exc:
            self._finish(job, None, exc)
            return False
        if self.tpm is not None:
            job.estimate = _estimate_tokens(job.messages, self.effective)
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
        too_long = isinstance(after, (int, float)) and after > _MAX_RETRY_AFTER
        if _is_quota(exc) or too_long or job.rate_limited >= self.max_rate_limit_retries:
            self._finish(job, None, exc)
            return
        job.rate_limited += 1
        self.rate_limited += 1
        self.consecutive_429 += 1
        now = self.clock.monotonic()
        if isinstance(after, (int, float)) and math.isfinite(after) and after >= 0:
            delay = float(after)
        else:
            delay = min(_MAX_BACKOFF, 2.0 ** (self.consecutive_429 - 1))
            delay *= 1.0 + 0.1 * random.random()  # spread the restart a little
        self.pause_until = max(self.pause_until, now + delay)
        if now >= self.cooldown_until:  # one decrease per congestion episode
            self.limiter.decrease()
            self.cooldown_until = self.pause_until
        self.retry.append(job)

    # ------------------------------------------------------------------ the whole run

    async def run(self) -> BatchResult:
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


def _known_len(inputs: Iterable[Any]) -> int | None:
    try:
        return len(inputs)  # type: ignore[arg-type]
    except TypeError:
        return None


def _check_options(
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
    _check_options(prompt, inputs, concurrency, rpm, tpm, max_rate_limit_retries, fsync_interval)
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
        clock=clock or _RealClock(),
    )
    return await run.run()


def run_batch(
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
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ConfigurationError(
            "prompt.batch() / run_batch() cannot run inside a running event loop (a notebook "
            "or async code): use `await prompt.abatch(llm, inputs, ...)` there instead."
        )
    _check_options(prompt, inputs, concurrency, rpm, tpm, max_rate_limit_retries, fsync_interval)

    async def main() -> BatchResult:
        try:
            return await arun_batch(
                prompt,
                llm,
                inputs,
                params=params,
                concurrency=concurrency,
                rpm=rpm,
                tpm=tpm,
                out=out,
                progress=progress,
                max_rate_limit_retries=max_rate_limit_retries,
                retry_failed=retry_failed,
                fsync_interval=fsync_interval,
                collect=collect,
                clock=clock,
            )
        finally:
            await _close_async_client(llm)

    return asyncio.run(main())


async def _close_async_client(llm: LLM) -> None:
    """HTTP backends keep an async client bound to this event loop, which ends with
    ``run_batch``: close it (the backend opens a new one when used again)."""
    http = sys.modules.get("promptkit.backends._http")
    if http is not None and isinstance(llm.backend, http.HTTPBackend):
        await llm.backend.aclose()
