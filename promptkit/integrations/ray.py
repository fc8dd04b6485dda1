"""Run a prompt (or a strategy) over a Ray Data dataset, on a pool of Ray actors.

``pip install "promptkit[ray]"``. Nothing here is imported by ``import promptkit``, and
this module imports Ray only when a job runs.

>>> import promptkit as pk
>>> from promptkit.integrations.ray import RayPrompt
>>> classify = pk.ZeroShot(instruction="Label the review positive or negative.",
...                        template="{{ review }}")
>>> job = RayPrompt(classify, {"backend": "fake", "replies": lambda request: "positive"},
...                 concurrency=16, rpm=600, price=(0.15, 0.60))
>>> job.columns
('reply', 'output', 'prompt_tokens', 'completion_tokens', 'total_tokens', 'cost_usd', \
'latency_s', 'requests', 'cached', 'error_type', 'error_message')

and then, with Ray running::

    ds = ray.data.read_parquet("reviews.parquet")      # a "review" column (and an id)
    out = job.map(ds, actors=2)                        # a new Dataset, lazily
    out.write_parquet("labelled/")
    job.close()                                        # the shared rate-limit actor

WHAT RUNS WHERE. :class:`RayPrompt` holds the prompt or strategy and a backend
*configuration*: a backend name or short form (``"openai:gpt-4o-mini"``), a dict of
:func:`promptkit.connect` arguments, or ``profile=`` (a ``promptkit.toml`` profile). No
live :class:`~promptkit.LLM` crosses processes: each actor of the pool calls ``connect()``
once, in its own process (so the API key comes from the worker's environment or
configuration file; set it with ``ray.init(runtime_env={"env_vars": {...}})`` rather than
in the arguments). :meth:`RayPrompt.map` is ``Dataset.map_batches`` with an actor pool
(``compute=ActorPoolStrategy(size=actors)``); each actor keeps one event loop (and so its
HTTP connections) for its whole life and sends ``concurrency`` requests at a time.

COLUMNS. Every input column is kept (ids included), and these are added (names prefixed
with ``prefix``): ``reply`` (the reply text), ``output`` (JSON text of the parsed value:
the validated ``output=`` model, or a strategy's answer, e.g. the winning vote),
``prompt_tokens`` / ``completion_tokens`` / ``total_tokens`` (summed over every request
of the row), ``cost_usd`` (with ``price=``), ``latency_s`` (from the row's start to its
result, rate-limit waits included), ``requests`` (HTTP requests made; 0 for a cache hit),
``cached`` (every reply came from the cache), and ``error_type`` / ``error_message``. A
row that fails (a missing variable, a 400, a timeout after the backend's retries, a reply
that never validated ...) gets its error's class name and message and nulls elsewhere; it
never fails the dataset. A row's variables are the columns named like the prompt's
variables (``columns={"variable": "column"}`` maps other names); a strategy whose
variables are not known in advance gets every column. Rows keep their order inside a
batch; for the whole dataset's order, set
``ray.data.DataContext.get_current().execution_options.preserve_order = True`` (or join
on an id column).

CLUSTER-WIDE RATE LIMITS. ``rpm`` and ``tpm`` are shared by every actor of the job, on
every node: they are held by one named Ray actor (no CPU reserved) with the batch
runner's token buckets (:mod:`promptkit.batch`), and each request takes its share from
it before it is sent (one small Ray call). A cache hit takes nothing; the tokens are
estimated as the runner does and reconciled with the reported usage. A request that
still gets a 429 after the backend's own retries is reported to that actor, which sets
one pause for the whole cluster (the server's ``retry_after``, else 1 s, 2 s, 4 s ... at
most 60 s); every actor sees it (at once when it next asks for a share, else within
0.25 s) and halves the requests it has in flight, growing back by one per run of
successes, as the local runner does. The request is retried after the pause, at most
``max_rate_limit_retries`` times, then recorded as the row's ``RateLimitError``.

RESPONSE CACHE. ``cache="/path/responses.sqlite"`` (a path on each node's local disk)
gives every actor ``pk.Cache`` on that file: SQLite in WAL mode is safe for any number of
processes *on one machine*, so the actors of a node share their replies. Across nodes: a
node's cache file is its own (SQLite must not be shared over NFS or other network file
systems: its locks are unreliable there), so a repeated run hits the cache only for rows
that land on the node that did them before. What is shared across nodes is the rate
limits and the 429 pause (the limits actor), not the cache.

MULTI-NODE SETUP (a vLLM fleet behind one OpenAI-compatible endpoint, results to
Parquet)::

    # each GPU machine: one vLLM server; a load balancer (nginx, HAProxy, a k8s Service)
    # in front of them at http://llm-lb:8000/v1
    vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000
    # the Ray head, then each worker machine (pip install "promptkit[ray]" on every node)
    ray start --head --port=6379
    ray start --address=HEAD_IP:6379
    # the job, from any node: 8 actors over the cluster, 64 requests each in flight
    python cookbook/ray_classify.py --address auto --base-url http://llm-lb:8000/v1 \\
        --model Qwen/Qwen2.5-7B-Instruct --input s3://bucket/reviews/ \\
        --output s3://bucket/labelled/ --actors 8 --concurrency 64 --rpm 30000

THROUGHPUT. With ``A`` actors of ``c`` requests each and a mean latency ``L``, the job
sends about ``A x c / L`` requests per second, until a limit binds: the servers (vLLM's
batch size per GPU: adding GPUs behind the balancer raises it), the rate limits
(``rpm / 60`` per second whatever the node count), or the client CPU (about 1-2 ms of CPU
per request per actor, so one core drives a few hundred requests per second). Adding
nodes adds actors and client CPU; it does not raise a rate limit or a server's capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import math
import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._client import LLM
from .._errors import ConfigurationError, PromptkitError, RateLimitError
from .._params import SamplingParams, merge_params
from .._types import Completion, Request, Usage

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..batch._limits import AdaptiveLimiter, TokenBucket
    from ..evaluation import Price

__all__ = ["RayPrompt"]

#: The columns added to every row, in order (before ``prefix``).
COLUMNS = (
    "reply",
    "output",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "latency_s",
    "requests",
    "cached",
    "error_type",
    "error_message",
)
_TYPES = {
    "reply": "string",
    "output": "string",
    "prompt_tokens": "int64",
    "completion_tokens": "int64",
    "total_tokens": "int64",
    "cost_usd": "float64",
    "latency_s": "float64",
    "requests": "int64",
    "cached": "bool_",
    "error_type": "string",
    "error_message": "string",
}
#: Seconds between two looks of an actor at the cluster-wide pause.
_POLL = 0.25


class RayPrompt:
    """A prompt (or strategy) and a backend configuration, ready for ``map_batches``.

    - ``target``: a prompt (``pk.FewShot(...)``) or a strategy (``pk.SelfConsistency``).
    - ``backend``: a backend name or short form, or a dict of :func:`promptkit.connect`
      arguments (``{"backend": "openai", "base_url": ..., "model": ...}``); ``profile``: a
      configuration-file profile. Never a live ``LLM``: each actor connects itself.
    - ``output``: a pydantic model to parse and validate each reply into (prompts only;
      ``max_attempts`` replies at most, as :func:`promptkit.structured`).
    - ``params``: sampling parameters over the prompt's own.
    - ``concurrency``: requests in flight per actor (default 16).
    - ``rpm`` / ``tpm``: requests / tokens per minute for the whole job, all actors
      together; ``max_rate_limit_retries``: times a request is retried after a 429.
    - ``price``: ``pk.Price`` or ``(input, output)`` dollars per million tokens, for
      ``cost_usd``.
    - ``cache``: a path for a ``pk.Cache`` that every actor on a node shares.
    - ``columns``: ``{variable: column}`` where a column is named otherwise;
      ``prefix``: put before every result column's name.

    See the module documentation for the columns, the limits and a multi-node setup.
    """

    def __init__(
        self,
        target: Any,
        backend: str | Mapping[str, Any] | None = None,
        *,
        profile: str | None = None,
        output: type[BaseModel] | None = None,
        params: SamplingParams | None = None,
        concurrency: int = 16,
        rpm: float | None = None,
        tpm: float | None = None,
        max_rate_limit_retries: int = 5,
        price: Price | tuple[float, float] | Mapping[str, float] | None = None,
        cache: str | None = None,
        columns: Mapping[str, str] | None = None,
        prefix: str = "",
        max_attempts: int = 3,
    ) -> None:
        from ..batch._api import check_options
        from ..prompts import PromptBase

        if isinstance(backend, LLM) or isinstance(target, LLM):
            raise ConfigurationError(
                "RayPrompt takes a backend configuration, not a live LLM (it cannot be "
                "shipped to the actors): pass the arguments you gave connect(), e.g. "
                '{"backend": "openai", "base_url": "http://host:8000/v1", "model": "m"}.'
            )
        self.is_prompt = isinstance(target, PromptBase)
        if not self.is_prompt and not callable(getattr(target, "arun", None)):
            raise ConfigurationError(
                f"RayPrompt needs a prompt or a strategy (with arun()); got "
                f"{type(target).__name__}."
            )
        if output is not None and not self.is_prompt:
            raise ConfigurationError(
                "output= parses a prompt's reply; a strategy returns its own result. Give "
                "output= to a prompt, or build the strategy with its output model."
            )
        check_options(target if self.is_prompt else _Renderable(), [], concurrency, rpm, tpm,
                       max_rate_limit_retries, 1.0)  # fmt: skip
        kwargs: dict[str, Any]
        if backend is None:
            kwargs = {}
        elif isinstance(backend, str):
            kwargs = {"backend": backend}
        elif isinstance(backend, Mapping):
            kwargs = dict(backend)
        else:
            raise ConfigurationError(
                f"backend: expected a backend name, a dict of connect() arguments or None; "
                f"got {type(backend).__name__}."
            )
        if profile is not None:
            kwargs["profile"] = profile
        if "cache" in kwargs:
            raise ConfigurationError("Give the cache as RayPrompt(cache=path), not in backend.")
        from .._config import resolve_config
        from ..backends import backend_class

        # fail here rather than in every actor (which resolve again, in their environment)
        backend_class(resolve_config(**kwargs).backend)
        self.connect_kwargs = kwargs
        self.target = target
        self.output = output
        self.params = params
        self.concurrency = concurrency
        self.rpm = rpm
        self.tpm = tpm
        self.max_rate_limit_retries = max_rate_limit_retries
        self.price: Price | None = None
        if price is not None:
            from ..evaluation._run import as_price

            self.price = as_price("price", price)
        if cache is not None and not isinstance(cache, str):
            cache = str(cache)
        self.cache = cache
        if columns is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in columns.items()
        ):
            raise ConfigurationError("columns: expected {variable name: column name} strings.")
        self.variable_columns = dict(columns or {})
        self.prefix = prefix
        self.max_attempts = max_attempts
        self.limits_name = f"promptkit-limits-{uuid.uuid4().hex[:12]}"
        self._limits: Any = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The names of the columns added to each row."""
        return tuple(self.prefix + c for c in COLUMNS)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_limits"] = None  # the driver's handle stays on the driver
        return state

    # ------------------------------------------------------------------ driver side

    def _ensure_limits(self) -> Any:
        import ray

        if not ray.is_initialized():
            ray.init()
        if self._limits is None:
            self._limits = _limits_actor(self.limits_name, self.rpm, self.tpm)
        return self._limits

    def map_batches_kwargs(
        self, *, actors: int = 1, batch_size: int | None = None, num_cpus: float = 0.25
    ) -> dict[str, Any]:
        """The arguments :meth:`map` gives ``Dataset.map_batches`` (for your own call:
        ``ds.map_batches(**job.map_batches_kwargs(actors=4), **more)``)."""
        from ray.data import ActorPoolStrategy

        if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
            raise ConfigurationError(f"actors={actors!r}: expected a whole number >= 1.")
        self._ensure_limits()
        return {
            "fn": _PromptActor,
            "fn_constructor_kwargs": {"job": self},
            "compute": ActorPoolStrategy(
                size=actors, max_concurrent_calls_per_actor=2, enable_true_multi_threading=True
            ),
            "batch_size": batch_size or 2 * self.concurrency,
            "batch_format": "pyarrow",
            "num_cpus": num_cpus,
        }

    def map(
        self,
        ds: Any,
        *,
        actors: int = 1,
        batch_size: int | None = None,
        num_cpus: float = 0.25,
        **options: Any,
    ) -> Any:
        """``ds`` with the result columns added, computed by ``actors`` Ray actors.

        ``batch_size`` rows go to an actor at a time (default ``2 x concurrency``; an actor
        works on two batches at once, so one batch's last requests overlap the next); each
        actor reserves ``num_cpus`` (default 0.25: the work is waiting on the network).
        Other keyword arguments go to ``Dataset.map_batches``. Lazy, as Ray Data is.
        """
        kwargs = self.map_batches_kwargs(actors=actors, batch_size=batch_size, num_cpus=num_cpus)
        kwargs.update(options)
        return ds.map_batches(**kwargs)

    def stats(self) -> dict[str, int]:
        """The shared limiter's counts so far: ``requests`` (shares taken by the actors,
        with rpm/tpm set), ``rate_limited`` (429s reported) and ``pauses``."""
        import ray

        result: dict[str, int] = ray.get(self._ensure_limits().stats.remote())
        return result

    def close(self) -> None:
        """Stop the shared rate-limit actor (it also ends with the driver)."""
        if self._limits is not None:
            import ray

            with contextlib.suppress(Exception):
                ray.kill(self._limits)
            self._limits = None

    def __enter__(self) -> RayPrompt:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _limits_actor(name: str, rpm: float | None, tpm: float | None) -> Any:
    """The job's limits actor: created by the first to ask (the driver, or an actor when
    the driver closed the job before the dataset ran), found by name by the others."""
    import ray

    return (
        ray.remote(_ClusterLimits)
        .options(name=name, get_if_exists=True, num_cpus=0, max_concurrency=10_000)
        .remote(rpm, tpm)
    )


class _Renderable:
    """Stands in for a strategy in the option checks (which want a prompt)."""

    def render(self) -> None:  # pragma: no cover - never called
        return None


# --------------------------------------------------------------------------- shared limits


class _ClusterLimits:
    """The Ray actor holding a job's rate limits and its 429 pause (an asyncio actor)."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        from ..batch._limits import RealClock, TokenBucket

        clock = RealClock()
        self.rpm: TokenBucket | None = TokenBucket(rpm, clock) if rpm else None
        self.tpm: TokenBucket | None = TokenBucket(tpm, clock) if tpm else None
        self.pause_until = 0.0
        self.cooldown_until = 0.0
        self.consecutive = 0
        self.pauses = 0
        self.requests = 0
        self.rate_limited_count = 0

    def _state(self) -> tuple[float, int]:
        return max(0.0, self.pause_until - time.monotonic()), self.pauses

    async def acquire(self, tokens: float) -> tuple[float, int]:
        """Wait out the pause and take one request and ``tokens`` tokens."""
        while (left := self.pause_until - time.monotonic()) > 0:
            await asyncio.sleep(left)
        if self.rpm is not None:
            await self.rpm.take(1)
        if self.tpm is not None:
            await self.tpm.take(tokens)
        self.requests += 1
        return self._state()

    async def give(self, requests: float, tokens: float) -> None:
        """Give back (or, negative, take more of) the budget."""
        if self.rpm is not None and requests:
            self.rpm.give(requests)
        if self.tpm is not None and tokens:
            self.tpm.give(tokens)

    async def state(self) -> tuple[float, int]:
        """(seconds of pause left, pauses so far)."""
        return self._state()

    async def rate_limited(self, retry_after: float | None) -> tuple[float, int]:
        """A 429 came back: pause every actor (the runner's rule)."""
        from ..batch._limits import MAX_BACKOFF

        now = time.monotonic()
        if now > self.pause_until + MAX_BACKOFF:
            self.consecutive = 0  # a new congestion episode
        self.consecutive += 1
        self.rate_limited_count += 1
        if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
            delay = float(retry_after)
        else:
            delay = min(MAX_BACKOFF, 2.0 ** (self.consecutive - 1))
            delay *= 1.0 + 0.1 * random.random()
        self.pause_until = max(self.pause_until, now + delay)
        if now >= self.cooldown_until:  # one slow-down per congestion episode
            self.pauses += 1
            self.cooldown_until = self.pause_until
        return self._state()

    async def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "rate_limited": self.rate_limited_count,
            "pauses": self.pauses,
        }


# --------------------------------------------------------------------------- actor side


@dataclass
class _RowCount:
    requests: int = 0
    hits: int = 0


_ROW: contextvars.ContextVar[_RowCount | None] = contextvars.ContextVar("_ROW", default=None)


class _Gate:
    """An actor's side of the limits: adaptive in-flight limit, and the shared actor."""

    def __init__(self, limits: Any, concurrency: int, *, limited: bool, tpm: bool) -> None:
        from ..batch._limits import AdaptiveLimiter

        self.limits = limits
        self.limiter: AdaptiveLimiter = AdaptiveLimiter(concurrency)
        self.limited = limited
        self.tpm = tpm
        self.pause_until = 0.0
        self.pauses = 0

    def learn(self, state: tuple[float, int]) -> None:
        left, pauses = state
        if pauses > self.pauses:  # a 429 somewhere in the cluster: slow down here too
            self.pauses = pauses
            self.limiter.decrease()
        if left > 0:
            self.pause_until = max(self.pause_until, time.monotonic() + left)

    async def enter(self, tokens: float) -> None:
        await self.limiter.acquire()
        try:
            while (left := self.pause_until - time.monotonic()) > 0:
                await asyncio.sleep(left)
            if self.limited:
                self.learn(await self.limits.acquire.remote(tokens))
        except BaseException:
            self.limiter.release()
            raise

    async def poll(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # the limits actor may be gone at the end
                self.learn(await self.limits.state.remote())
            await asyncio.sleep(_POLL)


def _request_tokens(req: Request) -> float:
    from .._tokens import approx_tokens

    tokens = sum(approx_tokens(m.content) for m in req.messages or ())
    if req.prompt is not None:
        tokens += approx_tokens(req.prompt)
    n = req.params.get("n") or 1
    return float(tokens + (req.params.get("max_tokens") or 0) * n)


class _GatedLLM(LLM):
    """An LLM whose every request (not cache hits) passes the job's gate, and retries 429s
    after the cluster-wide pause."""

    gate: _Gate
    max_rate_limit_retries: int

    async def _acall(self, req: Request) -> Completion:
        from ..batch._limits import MAX_RETRY_AFTER, is_quota

        row = _ROW.get()
        if self.cache is not None:
            hit = self.cache.get(self.backend, req)
            if hit is not None:
                if row is not None:
                    row.hits += 1
                return hit
        gate = self.gate
        tokens = _request_tokens(req) if gate.tpm else 0.0
        tries = 0
        while True:
            await gate.enter(tokens)
            try:
                part = await self.backend.acomplete(req)
            except RateLimitError as exc:
                gate.limiter.release()
                after = exc.retry_after
                too_long = isinstance(after, (int, float)) and after > MAX_RETRY_AFTER
                if is_quota(exc) or too_long or tries >= self.max_rate_limit_retries:
                    raise
                tries += 1
                wait = float(after) if isinstance(after, (int, float)) else None
                gate.learn(await gate.limits.rate_limited.remote(wait))
                continue
            except BaseException:
                gate.limiter.release()
                raise
            gate.limiter.release()
            gate.limiter.success()
            break
        if row is not None:
            row.requests += part.requests
        used = part.usage.total_tokens
        if gate.tpm and used is not None and used != tokens:
            gate.limits.give.remote(0, tokens - used)  # reconcile; no need to wait
        if self.cache is not None and part.choices:
            self.cache.put(self.backend, req, part)
        return part


def _json(value: Any) -> str | None:
    if value is None:
        return None
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    return json.dumps(value, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) and type(value).__module__ == "numpy" else value


class _PromptActor:
    """What each actor of the pool runs: connects once, then maps batches (pyarrow)."""

    def __init__(self, job: RayPrompt) -> None:
        from .._config import connect

        self.job = job
        llm = connect(cache=job.cache, **job.connect_kwargs)
        gated = _GatedLLM(
            llm.backend,
            params=llm.params,
            on_unsupported=llm.on_unsupported,
            on_truncation=llm.on_truncation,
            max_concurrency=llm.max_concurrency,
            cache=llm.cache,
        )
        limits = _limits_actor(job.limits_name, job.rpm, job.tpm)
        gated.gate = _Gate(
            limits,
            job.concurrency,
            limited=job.rpm is not None or job.tpm is not None,
            tpm=job.tpm is not None,
        )
        gated.max_rate_limit_retries = job.max_rate_limit_retries
        self.llm = gated
        self.call_params = (
            merge_params(job.target.params, job.params) if job.is_prompt else job.params
        )
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="promptkit-ray", daemon=True).start()
        self._poller = asyncio.run_coroutine_threadsafe(gated.gate.poll(), self.loop)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa  # type: ignore[import-untyped]

        names = [self.job.prefix + c for c in COLUMNS]
        clash = sorted(set(names) & set(batch.column_names))
        if clash:
            raise ConfigurationError(
                f"The dataset already has columns named {clash}: give RayPrompt a prefix "
                "(prefix='llm_') so the results do not overwrite them."
            )
        rows = [self._variables(row) for row in batch.to_pylist()]
        done = asyncio.run_coroutine_threadsafe(self._rows(rows), self.loop).result()
        for name, col in zip(names, COLUMNS, strict=True):
            batch = batch.append_column(
                name, pa.array([r[col] for r in done], type=getattr(pa, _TYPES[col])())
            )
        return batch

    def _variables(self, row: Mapping[str, Any]) -> dict[str, Any]:
        job = self.job
        wanted: Any = getattr(job.target, "variables", None)
        names: dict[str, str]
        if isinstance(wanted, (set, frozenset)):
            names = {str(v): job.variable_columns.get(str(v), str(v)) for v in wanted}
        else:
            names = {c: c for c in row}
            names.update(job.variable_columns)
        return {v: _plain(row[c]) for v, c in names.items() if c in row}

    async def _rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{}] * len(rows)
        todo = iter(enumerate(rows))

        async def worker() -> None:
            for i, values in todo:
                out[i] = await asyncio.ensure_future(self._row(values))  # own context

        await asyncio.gather(*(worker() for _ in range(min(self.job.concurrency, len(rows)))))
        return out

    async def _row(self, values: dict[str, Any]) -> dict[str, Any]:
        row = _RowCount()
        _ROW.set(row)
        res: dict[str, Any] = dict.fromkeys(COLUMNS)
        started = time.perf_counter()
        try:
            text, value, usage = await self._call(values)
        except Exception as exc:  # a failed row never fails the dataset
            res["error_type"] = type(exc).__name__
            res["error_message"] = str(exc) if isinstance(exc, PromptkitError) else repr(exc)
        else:
            res["reply"] = text
            res["output"] = _json(value)
            res["prompt_tokens"] = usage.prompt_tokens
            res["completion_tokens"] = usage.completion_tokens
            res["total_tokens"] = usage.total_tokens
            if self.job.price is not None:
                res["cost_usd"] = self.job.price.cost(usage)
        res["latency_s"] = time.perf_counter() - started
        res["requests"] = row.requests
        res["cached"] = row.hits > 0 and row.requests == 0 and res["error_type"] is None
        return res

    async def _call(self, values: dict[str, Any]) -> tuple[str | None, Any, Usage]:
        job = self.job
        if job.is_prompt and job.output is not None:
            from ..strategies.structured import astructured_result

            res = await astructured_result(
                job.target, self.llm, job.output, params=job.params,
                max_attempts=job.max_attempts, **values,
            )  # fmt: skip
            return res.text, res.value, res.usage
        if job.is_prompt:
            from ..prompts import arender_prompt

            messages = await arender_prompt(job.target, values)
            completion = await self.llm.acomplete(messages, params=self.call_params)
            return completion.text, None, completion.usage
        result = await job.target.arun(self.llm, params=job.params, **values)
        value_of = getattr(job.target, "value", None)
        value = value_of(result) if callable(value_of) else getattr(result, "output", result)
        usage = getattr(result, "usage", None)
        return _strategy_text(result), value, usage if isinstance(usage, Usage) else Usage()


def _strategy_text(result: Any) -> str | None:
    text = getattr(result, "text", None)
    if isinstance(text, str):
        return text
    key = getattr(result, "key", None)
    for sample in getattr(result, "samples", ()) or ():  # a vote: the winner's first reply
        if getattr(sample, "key", None) == key and isinstance(getattr(sample, "text", None), str):
            return str(sample.text)
    return None
