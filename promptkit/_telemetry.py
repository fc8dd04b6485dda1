"""Tracing, metrics, hooks and logging for every model call.

**OpenTelemetry**, by the GenAI semantic conventions, from ``opentelemetry-api`` alone
(``pip install "promptkit[otel]"``; configure an SDK as usual). Each request to a model is
one ``CLIENT`` span named ``"{operation} {model}"`` (``chat``, ``text_completion``,
``embeddings``) with ``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model``, the sampling parameters as sent (``gen_ai.request.temperature``,
``top_p``, ``top_k``, ``max_tokens``, ``frequency_penalty``, ``presence_penalty``,
``stop_sequences``, ``seed``, ``choice.count``), ``gen_ai.response.model``/``id``/
``finish_reasons``, ``gen_ai.usage.input_tokens``/``output_tokens`` (and
``cache_read.input_tokens``), ``server.address``/``server.port``, ``error.type`` on failure.
promptkit adds ``promptkit.cache_hit`` (answered by the response cache),
``promptkit.attempts`` (when an HTTP request was retried; each retry is also a ``retry``
span event with the attempt number and the seconds waited) and ``promptkit.cost_usd``.
Strategies, the batch runner and :func:`~promptkit.evaluate` open parent spans
(``promptkit.self_consistency``, ``promptkit.chain``, ``promptkit.chain.step``,
``promptkit.refine.round``, ``promptkit.tool_loop``, ``promptkit.tool_loop.step``,
``promptkit.batch``, ``promptkit.evaluate.variant``); a tool loop runs each tool in an
``execute_tool {gen_ai.tool.name}`` span by the conventions (arguments and result only
with content capture).
Metrics: the ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``
histograms, with the conventions' bucket boundaries.

Message content (``gen_ai.input.messages``, ``gen_ai.output.messages``) is recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (read when the LLM is made) or
``capture_content=True`` is given to :func:`~promptkit.connect` / :class:`~promptkit.LLM`.
API keys never are. A stream's span is not made current while the caller iterates (so the
caller's own spans do not nest under it); the other client spans are, for their request.

When ``opentelemetry`` was never imported, or no SDK provider is set, none of this runs: the
check is a few attribute lookups per call (under a microsecond), and ``opentelemetry`` is
never imported by promptkit itself.

**Hooks**, for custom logging without OpenTelemetry: ``on_request(request)``,
``on_response(request, completion)`` and ``on_error(request, error)`` on
:class:`~promptkit.LLM` / :func:`~promptkit.connect`, plain functions or ``async`` ones,
called for every chat or text completion request sent to the backend (each sample of an
emulated ``n``, each stream; a response-cache hit too, marked ``Completion.cached``) with
the exact :class:`~promptkit.Request` and its :class:`~promptkit.Completion` (whose
``cost`` is that request's). Embedding batches get spans, metrics and log records, not
hooks.

**Logging**: one ``DEBUG`` record per request on the ``promptkit`` logger (operation, model,
tokens, cost, latency, cache hit; never content or keys).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._media import telemetry_parts
from ._pricing import price_for

if TYPE_CHECKING:
    from ._client import LLM
    from ._types import Completion, Embeddings, Request

__all__ = ["Hook", "capture_content_default", "span"]

logger = logging.getLogger("promptkit")

#: A hook: a function (or ``async`` function) of the request, and the completion or error.
Hook = Callable[..., Awaitable[None] | None]

#: The attributes of the duration record and of the input and output token records.
_MetricSets = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

#: Bucket boundaries the GenAI conventions advise for the two histograms.
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864]  # fmt: skip
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                    20.48, 40.96, 81.92]  # fmt: skip

#: ``gen_ai.provider.name`` per backend name (others: the backend's own name).
_PROVIDERS = {"llama-server": "llama.cpp", "llamacpp": "llama.cpp"}

#: promptkit parameter -> ``gen_ai.request.*`` attribute.
_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
}


def capture_content_default() -> bool:
    """Whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for content."""
    return os.environ.get(CAPTURE_ENV, "").strip().lower() == "true"


# --------------------------------------------------------------------------- providers


class _Resolved:
    """The tracer and instruments for the current global providers, re-resolved only when
    a provider object changes (so the per-call check is an identity comparison)."""

    __slots__ = ("duration", "meter_provider", "tokens", "tracer", "tracer_provider")

    def __init__(self) -> None:
        self.tracer_provider: Any = None
        self.tracer: Any = None
        self.meter_provider: Any = None
        self.tokens: Any = None
        self.duration: Any = None


_resolved = _Resolved()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("promptkit")
    except Exception:
        return "0"


_UNSET: Any = object()
#: Whether a provider is named by OTEL_PYTHON_{TRACER,METER}_PROVIDER (read once: reading
#: os.environ costs microseconds, too much for every call).
_env_providers: dict[str, bool] = {}


def _env_provider(name: str) -> bool:
    known = _env_providers.get(name)
    if known is None:
        known = _env_providers[name] = name in os.environ
    return known


def _global_provider(mod: Any, attr: str, env: str, getter: str) -> Any:
    """The global provider the API holds, without the API getter's per-call environment
    lookup: ``None`` while none is set (and no environment variable names one)."""
    provider = getattr(mod, attr, _UNSET)
    if provider is None and not _env_provider(env):
        return None
    if provider is None or provider is _UNSET:
        provider = getattr(mod, getter)()
    return provider


def _otel() -> tuple[Any, Any]:
    """The ``opentelemetry.context`` and ``opentelemetry.trace`` modules (once tracing)."""
    return sys.modules["opentelemetry.context"], sys.modules["opentelemetry.trace"]


def tracer() -> Any:
    """The promptkit tracer, or ``None`` when no OpenTelemetry SDK is configured."""
    mod = sys.modules.get("opentelemetry.trace")
    if mod is None:
        return None
    provider = _global_provider(
        mod, "_TRACER_PROVIDER", "OTEL_PYTHON_TRACER_PROVIDER", "get_tracer_provider"
    )
    if provider is None:
        return None
    r = _resolved
    if provider is not r.tracer_provider:
        if isinstance(provider, (mod.ProxyTracerProvider, mod.NoOpTracerProvider)):
            r.tracer = None
        else:
            r.tracer = provider.get_tracer("promptkit", _version())
        r.tracer_provider = provider
    return r.tracer


def instruments() -> tuple[Any, Any] | None:
    """The (token usage, duration) histograms, or ``None`` without a metrics SDK."""
    mod = sys.modules.get("opentelemetry.metrics")
    internal = sys.modules.get("opentelemetry.metrics._internal")
    if mod is None or internal is None:
        return None
    provider = _global_provider(
        internal, "_METER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER", "get_meter_provider"
    )
    if provider is None:
        return None
    r = _resolved
    if provider is not r.meter_provider:
        r.tokens = r.duration = None
        if not isinstance(provider, mod.NoOpMeterProvider) and type(provider).__name__ != (
            "_ProxyMeterProvider"
        ):
            meter = provider.get_meter("promptkit", _version())
            r.tokens = _histogram(
                meter,
                "gen_ai.client.token.usage",
                "{token}",
                "Number of input and output tokens used.",
                TOKEN_BUCKETS,
            )
            r.duration = _histogram(
                meter,
                "gen_ai.client.operation.duration",
                "s",
                "GenAI operation duration.",
                DURATION_BUCKETS,
            )
        r.meter_provider = provider
    if r.tokens is None:
        return None
    return r.tokens, r.duration


def _histogram(meter: Any, name: str, unit: str, description: str, buckets: list[Any]) -> Any:
    try:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
        )
    except TypeError:  # opentelemetry-api before 1.23 has no advisory
        return meter.create_histogram(name, unit=unit, description=description)


# --------------------------------------------------------------------------- hooks


def run_hook(hook: Hook, *args: Any) -> None:
    """Call a hook from sync code; an ``async`` hook runs to completion first."""
    result = hook(*args)
    if inspect.isawaitable(result):
        _run_coroutine(result)


async def arun_hook(hook: Hook, *args: Any) -> None:
    """Call a hook from async code, awaiting it when it is ``async``."""
    result = hook(*args)
    if inspect.isawaitable(result):
        await result


def _run_coroutine(awaitable: Awaitable[Any]) -> None:
    import asyncio

    async def wrap() -> None:
        await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(wrap())
        return
    # a sync call made inside a running loop: run the hook's loop in a helper thread
    import threading

    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(wrap())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="promptkit-hook")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


@dataclass
class Observers:
    """What an :class:`~promptkit.LLM` reports to: hooks, price table, content capture."""

    on_request: Hook | None = None
    on_response: Hook | None = None
    on_error: Hook | None = None
    capture_content: bool | None = None
    prices: dict[str, Any] = field(default_factory=dict)
    #: Request-independent span/metric attributes, per (operation, backend, model, URL).
    attrs_cache: dict[Any, dict[str, Any]] = field(default_factory=dict, repr=False)
    #: Metric attribute sets (duration, input tokens, output tokens) per operation and model.
    metric_sets: dict[Any, _MetricSets] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.capture_content is None:  # the environment, read once per LLM
            self.capture_content = capture_content_default()

    @property
    def hooked(self) -> bool:
        return (
            self.on_request is not None or self.on_response is not None or self.on_error is not None
        )


# --------------------------------------------------------------------------- one call


def _operation(request: Request) -> str:
    return "chat" if request.messages is not None else "text_completion"


def _server(backend: Any) -> tuple[str | None, int | None]:
    url = getattr(backend, "base_url", None)
    if not isinstance(url, str):
        return None, None
    return _parse_server(url)


@functools.lru_cache(maxsize=64)
def _parse_server(url: str) -> tuple[str | None, int | None]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None
    return parts.hostname, port


def _content(text: Any) -> str:
    return text if isinstance(text, str) else json.dumps(text, default=str)


def input_messages(request: Request) -> str:
    """``gen_ai.input.messages``: the request's messages (or prompt) as JSON."""
    if request.messages is not None:
        out = [
            {"role": m.role, "parts": (
                [{"type": "text", "content": _content(m.content)}]
                if isinstance(m.content, str) else telemetry_parts(m.content)
            )}
            for m in request.messages
        ]
        add_tool_parts(out, [(m.tool_calls, m.tool_call_id) for m in request.messages])
    else:
        out = [{"role": "user", "parts": [{"type": "text", "content": request.prompt or ""}]}]
    return json.dumps(out, ensure_ascii=False)


def add_tool_parts(out: list[dict[str, Any]], tools: list[tuple[Any, str | None]]) -> None:
    """Tool turns in the GenAI semantic conventions' form: an assistant's calls as
    ``tool_call`` parts after its text (dropped when empty), a tool message's content as
    one ``tool_call_response`` part. ``tools``: (tool calls, tool_call_id) per message."""
    for entry, (calls, call_id) in zip(out, tools, strict=True):
        parts = entry["parts"]
        if call_id is not None:
            text = parts[0]["content"] if parts else ""
            entry["parts"] = [{"type": "tool_call_response", "id": call_id, "response": text}]
        elif calls:
            kept = [p for p in parts if p.get("type") != "text" or p.get("content")]
            entry["parts"] = kept + [
                {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.raw_arguments}
                for c in calls
            ]


def output_messages(completion: Completion) -> str:
    """``gen_ai.output.messages``: the choices as JSON."""
    out = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": c.text}],
            "finish_reason": c.finish_reason or "",
        }
        for c in completion.choices
    ]
    add_tool_parts(out, [(c.tool_calls, None) for c in completion.choices])
    return json.dumps(out, ensure_ascii=False)


def _call_attributes(llm: LLM, operation: str) -> dict[str, Any]:
    """The attributes that do not depend on the request (the metrics' dimensions)."""
    backend = llm.backend
    key = (operation, backend.name, backend.model, getattr(backend, "base_url", None))
    cache = llm.observers.attrs_cache
    found = cache.get(key)
    if found is not None:
        return found
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": _PROVIDERS.get(backend.name, backend.name),
    }
    if backend.model:
        attrs["gen_ai.request.model"] = backend.model
    host, port = _server(backend)
    if host:
        attrs["server.address"] = host
        if port is not None:
            attrs["server.port"] = port
    if len(cache) > 64:
        cache.clear()
    cache[key] = attrs
    return attrs


def _request_attributes(llm: LLM, request: Request | None, operation: str) -> dict[str, Any]:
    attrs = dict(_call_attributes(llm, operation))
    if request is None:
        return attrs
    params = request.params
    for name, attr in _PARAMS.items():
        value = params.get(name)
        if value is not None and isinstance(value, (int, float, str, bool)):
            attrs[attr] = value
    stop = params.get("stop")
    if stop:
        attrs["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    n = params.get("n")
    if isinstance(n, int) and n != 1:
        attrs["gen_ai.request.choice.count"] = n
    if request.response_format is not None:
        attrs["gen_ai.output.type"] = "json"
    return attrs


def call_cost(llm: LLM, completion: Completion) -> float | None:
    """The cost of ``completion`` by the LLM's price table (None when unpriced; 0 for a
    cache hit, which sent nothing)."""
    if completion.cached:
        return 0.0
    price = price_for(llm.observers.prices, llm.backend.name, completion.model, llm.backend.model)
    return price.cost(completion.usage) if price is not None else None


def parts_cost(llm: LLM, parts: list[Completion]) -> float | None:
    """The summed cost of the requests of one call (None when any is unpriced)."""
    total = 0.0
    for part in parts:
        cost = part.cost if part.cost is not None else call_cost(llm, part)
        if cost is None:
            return None
        total += cost
    return round(total, 12)


class CallObservation:
    """One request being observed: its span (when tracing), timing and hooks."""

    __slots__ = (
        "attrs", "llm", "metrics", "operation", "recording", "request", "span", "started", "token",
    )  # fmt: skip

    def __init__(self, llm: LLM, request: Request | None, operation: str) -> None:
        self.llm = llm
        self.request = request
        self.operation = operation
        self.span: Any = None
        self.recording = False  # a span the sampler kept: worth its attributes
        self.token: Any = None
        self.attrs: dict[str, Any] | None = None
        self.metrics = instruments()
        self.started = time.perf_counter()

    # ---- span

    def open(self, tracer: Any, attach: bool, attrs: dict[str, Any]) -> None:
        context, trace = _otel()

        model = attrs.get("gen_ai.request.model")
        name = f"{self.operation} {model}" if model else self.operation
        self.span = tracer.start_span(name, kind=trace.SpanKind.CLIENT, attributes=attrs)
        self.recording = self.span.is_recording()  # False: sampled out, attributes are lost
        if self.recording and self.request is not None and self._capture():
            self.span.set_attribute("gen_ai.input.messages", input_messages(self.request))
        if attach:
            self.token = context.attach(trace.set_span_in_context(self.span))

    def _capture(self) -> bool:
        return bool(self.llm.observers.capture_content)

    def _close(self) -> None:
        if self.token is not None:
            _otel()[0].detach(self.token)
            self.token = None
        if self.span is not None:
            self.span.end()

    def _base_attrs(self) -> dict[str, Any]:
        if self.attrs is None:
            self.attrs = _request_attributes(self.llm, self.request, self.operation)
        return self.attrs

    # ---- outcomes

    def succeeded(self, completion: Completion, *, content: bool = True) -> None:
        """Record the reply on the span, the metrics and the log; the span ends (and stops
        being current) whatever happens while recording."""
        try:
            self._succeeded(completion, content)
        finally:
            self._close()

    def failed(self, exc: BaseException) -> None:
        """Record the failure ``exc``; the span ends whatever happens while recording."""
        try:
            self._failed(exc)
        finally:
            self._close()

    def _succeeded(self, completion: Completion, content: bool) -> None:
        elapsed = time.perf_counter() - self.started
        usage = completion.usage
        cost = call_cost(self.llm, completion)
        if completion.cost is None and content:  # what on_response sees: this request's cost
            completion.cost = cost
        span = self.span
        if span is not None and self.recording:
            attrs: dict[str, Any] = {}
            if completion.model:
                attrs["gen_ai.response.model"] = completion.model
            raw = completion.raw
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                attrs["gen_ai.response.id"] = raw["id"]
            reasons = [c.finish_reason for c in completion.choices if c.finish_reason]
            if reasons:
                attrs["gen_ai.response.finish_reasons"] = reasons
            if usage.prompt_tokens is not None:
                attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            if usage.completion_tokens is not None:
                attrs["gen_ai.usage.output_tokens"] = usage.completion_tokens
            if usage.cached_tokens is not None:
                attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
            if completion.cached:
                attrs["promptkit.cache_hit"] = True
            if cost is not None:
                attrs["promptkit.cost_usd"] = cost
            if content and self._capture():
                attrs["gen_ai.output.messages"] = output_messages(completion)
            span.set_attributes(attrs)
        if self.metrics is not None:
            base, given, made = self._metric_sets(completion.model)
            tokens, duration = self.metrics
            duration.record(elapsed, base)
            if not completion.cached:
                if usage.prompt_tokens is not None:
                    tokens.record(usage.prompt_tokens, given)
                if usage.completion_tokens is not None:
                    tokens.record(usage.completion_tokens, made)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "promptkit %s %s: %s in / %s out tokens, cost %s, %.3f s%s",
                self.operation,
                completion.model or self.llm.backend.model or self.llm.backend.name,
                usage.prompt_tokens,
                usage.completion_tokens,
                "unknown" if cost is None else f"${cost:.6g}",
                elapsed,
                " (cache hit)" if completion.cached else "",
            )

    def _failed(self, exc: BaseException) -> None:
        elapsed = time.perf_counter() - self.started
        kind = type(exc).__name__
        if self.span is not None:
            from opentelemetry.trace import Status, StatusCode  # failures only

            self.span.set_attribute("error.type", kind)
            self.span.set_status(Status(StatusCode.ERROR, kind))
        if self.metrics is not None:
            attrs = self._metric_attrs(None)
            attrs["error.type"] = kind
            self.metrics[1].record(elapsed, attrs)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "promptkit %s %s failed after %.3f s: %s",
                self.operation,
                self.llm.backend.model or self.llm.backend.name,
                elapsed,
                kind,
            )

    def _metric_attrs(self, response_model: str | None) -> dict[str, Any]:
        attrs = dict(_call_attributes(self.llm, self.operation))
        if response_model:
            attrs["gen_ai.response.model"] = response_model
        return attrs

    def _metric_sets(self, response_model: str | None) -> _MetricSets:
        """The attribute sets of the duration record and the input and output token records,
        made once per LLM, operation and response model (the SDK copies what it keeps)."""
        cache = self.llm.observers.metric_sets
        backend = self.llm.backend
        key = (
            self.operation,
            backend.name,
            backend.model,
            getattr(backend, "base_url", None),
            response_model,
        )
        found = cache.get(key)
        if found is None:
            base = self._metric_attrs(response_model)
            found = (
                base,
                {**base, "gen_ai.token.type": "input"},
                {**base, "gen_ai.token.type": "output"},
            )
            if len(cache) > 64:
                cache.clear()
            cache[key] = found
        return found


def observe(
    llm: LLM, request: Request | None, operation: str, *, attach: bool = True
) -> CallObservation | None:
    """Start observing one request, or ``None`` when nothing observes it (no SDK, no hook,
    no DEBUG logging): the caller then takes its plain path."""
    tr = tracer()
    if (
        tr is None
        and not llm.observers.hooked
        and instruments() is None
        and not logger.isEnabledFor(logging.DEBUG)
    ):
        return None
    obs = CallObservation(llm, request, operation)
    if tr is not None:
        try:
            obs.open(tr, attach, obs._base_attrs())
        except BaseException as exc:  # e.g. content capture reading a missing media file
            obs.failed(exc)  # the span ends, with the error, instead of leaking
            raise
    return obs


def observe_request(llm: LLM, request: Request, *, attach: bool = True) -> CallObservation | None:
    """:func:`observe` for a chat or text completion request."""
    return observe(llm, request, _operation(request), attach=attach)


def observed(llm: LLM) -> bool:
    """Whether calls of ``llm`` are observed at all (tracing, metrics, hooks, DEBUG log)."""
    return (
        tracer() is not None
        or llm.observers.hooked
        or instruments() is not None
        or logger.isEnabledFor(logging.DEBUG)
    )


def observed_call(llm: LLM, request: Request) -> Completion:
    """``llm._call(request)`` (cache, then backend) inside its span, with the hooks."""
    obs = observe_request(llm, request)
    if obs is None:
        return llm._call(request)
    hooks = llm.observers
    try:
        if hooks.on_request is not None:
            run_hook(hooks.on_request, request)
        part = llm._call(request)
    except BaseException as exc:
        obs.failed(exc)
        if hooks.on_error is not None and isinstance(exc, Exception):
            run_hook(hooks.on_error, request, exc)
        raise
    obs.succeeded(part)
    if hooks.on_response is not None:
        run_hook(hooks.on_response, request, part)
    return part


async def observed_acall(llm: LLM, request: Request) -> Completion:
    """Async twin of :func:`observed_call`."""
    obs = observe_request(llm, request)
    if obs is None:
        return await llm._acall(request)
    hooks = llm.observers
    try:
        if hooks.on_request is not None:
            await arun_hook(hooks.on_request, request)
        part = await llm._acall(request)
    except BaseException as exc:
        obs.failed(exc)
        if hooks.on_error is not None and isinstance(exc, Exception):
            await arun_hook(hooks.on_error, request, exc)
        raise
    obs.succeeded(part)
    if hooks.on_response is not None:
        await arun_hook(hooks.on_response, request, part)
    return part


def embedded(obs: CallObservation, texts: int, embeddings: Embeddings) -> None:
    """Close an embeddings observation: one batch of ``texts`` embedded."""
    from ._types import Completion

    if obs.span is not None:
        obs.span.set_attribute("promptkit.embed.texts", texts)
        if embeddings.vectors:
            obs.span.set_attribute("gen_ai.embeddings.dimension.count", embeddings.dim)
    obs.succeeded(
        Completion(choices=[], model=embeddings.model, usage=embeddings.usage), content=False
    )


# --------------------------------------------------------------------------- retries


def retried(attempt: int, waited_s: float) -> None:
    """Mark a retry on the current client span: attempt ``attempt`` (2, 3, ...) starts
    after ``waited_s`` seconds of waiting in all. Called by the HTTP backends."""
    if tracer() is None:
        return
    span = _otel()[1].get_current_span()
    if span.is_recording():
        span.add_event("retry", {"promptkit.attempt": attempt, "promptkit.waited_s": waited_s})
        span.set_attribute("promptkit.attempts", attempt)


# --------------------------------------------------------------------------- parent spans


class _Span:
    """A parent span made current for its duration (sync or async ``with``)."""

    __slots__ = ("attrs", "name", "span", "token")

    def __init__(self, name: str, attrs: Mapping[str, Any] | None) -> None:
        self.name = name
        self.attrs = attrs
        self.span: Any = None
        self.token: Any = None

    def __enter__(self) -> _Span:
        tr = tracer()
        if tr is not None:
            context, trace = _otel()
            self.span = tr.start_span(self.name, attributes=dict(self.attrs or {}))
            self.token = context.attach(trace.set_span_in_context(self.span))
        return self

    def set(self, name: str, value: Any) -> None:
        """Set an attribute (ignored when not tracing or when ``value`` is None)."""
        if self.span is not None and value is not None:
            self.span.set_attribute(name, value)

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if self.span is None:
            return
        context = _otel()[0]
        if exc is not None:
            from opentelemetry.trace import Status, StatusCode

            self.span.set_attribute("error.type", type(exc).__name__)
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        context.detach(self.token)
        self.span.end()
        self.span = self.token = None

    async def __aenter__(self) -> _Span:
        return self.__enter__()

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(kind, exc, tb)


def span(name: str, attrs: Mapping[str, Any] | None = None) -> _Span:
    """A parent span ``name`` around a block (a no-op without an SDK).

    >>> with span("promptkit.batch", {"promptkit.items": 3}) as s:
    ...     s.set("promptkit.ok", 3)
    """
    return _Span(name, attrs)


def start_span(name: str, attrs: Mapping[str, Any] | None = None) -> _Span | None:
    """A parent span already entered, or ``None`` when not tracing (for plan drivers)."""
    if tracer() is None:
        return None
    return span(name, attrs).__enter__()


def carry_context(job: Callable[[], Any]) -> Callable[[], Any]:
    """``job`` bound to the caller's context (current span) for running on a pool thread;
    ``job`` itself when not tracing."""
    if tracer() is None:
        return job
    import contextvars

    ctx = contextvars.copy_context()
    return lambda: ctx.run(job)


def carry(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run, on whatever thread, in a copy of the caller's context (current span), so
    pool threads' client spans get their parent; ``fn`` itself when not tracing."""
    if tracer() is None:
        return fn
    import contextvars

    ctx = contextvars.copy_context()
    return lambda *args, **kwargs: ctx.copy().run(fn, *args, **kwargs)
