"""The client: :class:`LLM` holds a backend and does everything that is the same for all.

A backend (see :mod:`promptkit.backends`) is a transport that turns one
:class:`~promptkit.Request` into one :class:`~promptkit.Completion`. The :class:`LLM` client
sits in front of it: applying the unsupported-parameter policy, asking for ``n`` choices
(one request where the backend honours ``n``, several otherwise, topping up when a server
returns fewer choices than asked), falling back when a server refuses a feature, the
response cache, timing, and the truncation policy. :class:`TextStream` is a streamed reply.

That control flow is written once, as generator plans (:meth:`LLM._plan` for the rounds of
requests, :meth:`LLM._request_plan` for one request with its fallbacks and the cache) that
yield what to send and are sent the replies; :func:`_drive` runs them with
``backend.complete`` on the shared threads, :func:`_adrive` with ``backend.acomplete`` on
the event loop. The transport calls are the only sync/async twins.

Embeddings go through the same backends: :meth:`LLM.embed` splits the input into batches,
keeps the input order and sums the usage.

>>> from promptkit import LLM, FakeBackend
>>> LLM(FakeBackend(["Paris"])).complete("Capital of France?").text
'Paris'
"""

from __future__ import annotations

import functools
import random
import time
import warnings
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

from ._errors import (
    ContentFilteredError,
    FeatureRefusedError,
    MalformedResponseError,
    ParameterError,
    TruncatedError,
)
from ._params import SamplingParams, UnsupportedPolicy
from ._pricing import PriceLike, price_table
from ._sync import run_jobs
from ._telemetry import (
    Hook,
    Observers,
    arun_hook,
    call_cost,
    carry,
    embedded,
    observe,
    observe_request,
    observed,
    observed_acall,
    observed_call,
    parts_cost,
    run_hook,
)
from ._tools import ToolLike, normalize_tool_choice, tool_specs
from ._types import Choice, Completion, Delta, Embeddings, Message, Request, ToolCall, Usage

if TYPE_CHECKING:
    from ._tokens import TokenCounter
    from .backends._base import Backend

__all__ = [
    "LLM",
    "MessagesLike",
    "ResponseCache",
    "TextStream",
    "UnsupportedParameterWarning",
    "as_messages",
]

#: Parameters that are about the request as a whole rather than sampling.
_ALWAYS_OK = frozenset({"n"})

#: Random seed bases for emulated samples are drawn below this (base + 127 < 2**31).
_SEED_SPAN = 2**31 - 256


class ResponseCache(Protocol):
    """What :class:`LLM` needs of a response cache (see :class:`promptkit.Cache`).

    Key on the request with its ``sample`` index; leave ``params["seed"]`` out when
    ``request.auto_seed`` is set (a random seed drawn for an emulated sample), or repeated
    calls never hit."""

    def get(self, backend: Backend, request: Request) -> Completion | None:
        """The stored completion for this exact request, or ``None``."""

    def put(self, backend: Backend, request: Request, completion: Completion) -> None:
        """Store a completion for this exact request."""


class UnsupportedParameterWarning(UserWarning):
    """A sampling parameter was dropped because the backend cannot honour it."""


MessagesLike = str | Sequence[Message | dict[str, Any]]


S = TypeVar("S")
A = TypeVar("A")
R = TypeVar("R")

#: The client's control flow, written once: a generator that yields steps (``S``: requests
#: to send), is sent each step's answer (``A``) or thrown its error, and returns ``R``.
_Plan = Generator[S, A, R]


def _resume(plan: _Plan[S, A, R], answer: Any, error: Exception | None) -> tuple[bool, Any]:
    """Step ``plan`` on, sent ``answer`` or thrown ``error`` (which it handles or re-raises):
    ``(True, result)`` when it returned, ``(False, next step)`` otherwise."""
    try:
        return False, plan.send(answer) if error is None else plan.throw(error)
    except StopIteration as stop:
        return True, stop.value


def _drive(plan: _Plan[S, A, R], send: Callable[[S], A]) -> R:
    """Run ``plan`` to its result, answering each step with ``send(step)`` (sync)."""
    done, value = _resume(plan, None, None)
    while not done:
        try:
            answer = send(value)
        except Exception as exc:
            done, value = _resume(plan, None, exc)
        else:
            done, value = _resume(plan, answer, None)
    return cast(R, value)


async def _adrive(plan: _Plan[S, A, R], send: Callable[[S], Awaitable[A]]) -> R:
    """Async twin of :func:`_drive`: each step is answered with ``await send(step)``."""
    done, value = _resume(plan, None, None)
    while not done:
        try:
            answer = await send(value)
        except Exception as exc:
            done, value = _resume(plan, None, exc)
        else:
            done, value = _resume(plan, answer, None)
    return cast(R, value)


def _tool_choice_key(choice: str | None) -> str:
    """How a refused tool choice is remembered: ``tool_choice=auto`` for no choice or
    ``"auto"`` (what servers assume when tools are sent), else ``tool_choice=<choice>``."""
    return f"tool_choice={choice or 'auto'}"


def as_messages(messages: MessagesLike) -> list[Message]:
    """A str becomes one user message; dicts are validated into Messages."""
    if isinstance(messages, str):
        return [Message(role="user", content=messages)]
    out = []
    for m in messages:
        out.append(m if isinstance(m, Message) else Message.model_validate(m))
    return out


class LLM:
    """A model behind a backend: what :func:`promptkit.connect` returns.

    >>> from promptkit import LLM, FakeBackend
    >>> llm = LLM(FakeBackend(["Paris"]))
    >>> llm.complete("Capital of France?").text
    'Paris'

    ``params`` are the defaults for every call; a call's own ``params`` and keyword
    overrides win. ``on_unsupported`` decides what happens to a parameter the backend cannot
    honour: ``"warn"`` (default: dropped, with an :class:`UnsupportedParameterWarning`),
    ``"drop"`` (dropped quietly) or ``"error"`` (:class:`~promptkit.ParameterError`). Either
    way the dropped parameters are listed in ``Completion.dropped``. The same policy applies
    when the server itself refuses a feature by name
    (:class:`~promptkit.FeatureRefusedError`): after that one failed request the call falls
    back (``n`` emulated, JSON-schema output as ``json_object`` with the schema, then
    instructions alone, parameters dropped) and the backend remembers
    (:attr:`Backend.refused`). ``on_truncation="error"``
    turns a reply cut at ``max_tokens`` into :class:`~promptkit.TruncatedError`.
    ``cache`` (e.g. :class:`promptkit.Cache`) answers repeated identical requests without
    calling the backend; a hit is marked ``Completion.cached``.

    ``prices`` (``{model or backend name: (input, output[, cached_input])}``, dollars per
    million tokens, see :class:`~promptkit.Price`) sets ``Completion.cost``.
    ``on_request(request)``, ``on_response(request, completion)`` and
    ``on_error(request, error)`` (plain or ``async`` functions) see every request sent;
    ``capture_content`` records messages on OpenTelemetry spans (default: the
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` variable when the LLM is made). See
    :mod:`promptkit._telemetry` for the spans and metrics.

    ``n`` choices on a backend that returns one per request (llama.cpp servers, the
    embedded model) take ``n`` requests, each with its own seed: ``seed``, ``seed + 1``,
    ... when a seed >= 0 is given, else a random base and the next ones (so a server
    started with a fixed seed still gives ``n`` distinct samples).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        params: SamplingParams | None = None,
        on_unsupported: UnsupportedPolicy = "warn",
        on_truncation: Literal["ignore", "error"] = "ignore",
        max_concurrency: int = 16,
        cache: ResponseCache | None = None,
        prices: Mapping[str, PriceLike] | None = None,
        on_request: Hook | None = None,
        on_response: Hook | None = None,
        on_error: Hook | None = None,
        capture_content: bool | None = None,
    ) -> None:
        if on_unsupported not in ("error", "warn", "drop"):
            raise ParameterError(
                f"on_unsupported={on_unsupported!r}: expected 'error', 'warn' or 'drop'."
            )
        if on_truncation not in ("ignore", "error"):
            raise ParameterError(f"on_truncation={on_truncation!r}: expected 'ignore' or 'error'.")
        self.backend = backend
        self.params = params or SamplingParams()
        self.on_unsupported: UnsupportedPolicy = on_unsupported
        self.on_truncation = on_truncation
        self.max_concurrency = max_concurrency
        self.cache = cache
        self.observers = Observers(
            on_request, on_response, on_error, capture_content, price_table(prices)
        )

    def __repr__(self) -> str:
        return f"LLM(backend={self.backend.name!r}, model={self.backend.model!r})"

    @property
    def model(self) -> str:
        """The model name the backend sends."""
        return self.backend.model

    # ------------------------------------------------------------------ request building

    def prepare_request(
        self,
        messages: MessagesLike | None = None,
        *,
        prompt: str | None = None,
        params: SamplingParams | None = None,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
        tools: Sequence[ToolLike | Mapping[str, Any]] | None = None,
        tool_choice: str | None = None,
        parallel_tool_calls: bool | None = None,
        **overrides: Any,
    ) -> tuple[Request, dict[str, str]]:
        """The :class:`Request` that :meth:`complete` would hand the backend for these
        arguments (or :meth:`complete_prompt`, given ``prompt=`` raw text instead of
        ``messages``), and the parameters left out of it as unsupported (``{name:
        reason}``, per ``on_unsupported``). Nothing is sent: this is for tools that write
        requests down, such as batch files. ``n`` is in the request only when the backend
        takes it natively (otherwise :meth:`complete` sends one request per choice).

        >>> from promptkit import LLM, FakeBackend
        >>> llm = LLM(FakeBackend(supports=["temperature"]), on_unsupported="drop")
        >>> request, dropped = llm.prepare_request("Hi", temperature=0, top_k=5)
        >>> request.messages[0].content, request.params, dropped
        ('Hi', {'temperature': 0.0}, {'top_k': 'the fake backend cannot honour top_k'})
        """
        if (messages is None) == (prompt is None):
            raise ParameterError("prepare_request() takes messages or prompt=..., exactly one.")
        request, _, dropped = self._prepare(
            messages,
            prompt,
            params,
            overrides,
            response_format,
            timeout,
            (tools, tool_choice, parallel_tool_calls),
        )
        return request, dropped

    def _prepare(
        self,
        messages: MessagesLike | None,
        prompt: str | None,
        params: SamplingParams | None,
        overrides: dict[str, Any],
        response_format: dict[str, Any] | None,
        timeout: float | None,
        tooling: tuple[Any, str | None, bool | None] = (None, None, None),
    ) -> tuple[Request, int, dict[str, str]]:
        merged = self.params.merge(params, **overrides) if (params or overrides) else self.params
        wanted = merged.set_fields()
        n = int(wanted.pop("n", None) or 1)
        supported = self.backend.supports
        refused = self.backend.refused
        kept: dict[str, Any] = {}
        dropped: dict[str, str] = {}
        for key, value in wanted.items():
            if key in supported or key in _ALWAYS_OK:
                kept[key] = value
                continue
            reason = refused.get(key) or f"the {self.backend.name} backend cannot honour {key}"
            self._unsupported(key, value, reason)
            dropped[key] = reason
        if response_format is not None and refused:
            if "response_format" in refused:
                reason = refused["response_format"]
                self._unsupported("response_format", "json_schema", reason)
                dropped["response_format"] = reason
                response_format = None
            elif "json_schema" in refused:
                self._unsupported("response_format", None, refused["json_schema"], substitute=True)
                dropped["response_format"] = refused["json_schema"]
        if n > 1 and self.backend.native_n:
            kept["n"] = n
        msgs = as_messages(messages) if messages is not None else None
        specs, choice, parallel = self._tooling(msgs, *tooling)
        request = Request(
            messages=msgs,
            prompt=prompt,
            params=kept,
            extra=dict(merged.extra),
            response_format=response_format,
            timeout=timeout,
            tools=specs,
            tool_choice=choice,
            parallel_tool_calls=parallel,
        )
        return request, n, dropped

    def _tooling(
        self,
        messages: list[Message] | None,
        tools: Any,
        tool_choice: str | None,
        parallel: bool | None,
    ) -> tuple[tuple[dict[str, Any], ...], str | None, bool | None]:
        """The request's tool fields, checked; a backend without tools refuses them here,
        before anything is sent."""
        specs = tool_specs(tools)
        choice = normalize_tool_choice(tool_choice, specs)
        if parallel is not None and not specs:
            raise ParameterError("parallel_tool_calls without tools: pass tools=[...] too.")
        turns = any(m.role == "tool" or m.tool_calls for m in messages or ())
        if (specs or turns) and not self.backend.supports_tools:
            what = "tools=[...]" if specs else "tool calls / tool messages in the history"
            raise ParameterError(
                f"The {self.backend.name} backend cannot do tool calling, so {what} cannot "
                "be sent. Use a backend with tools (openai, vllm, llama-server, ollama, fake)."
            )
        refused = self.backend.refused if specs else None
        if refused:
            for key in ("tools", _tool_choice_key(choice)):
                said = refused.get(key)
                if said is not None:
                    raise FeatureRefusedError(
                        f"Not sent: {said} (refused earlier on this backend; make a new LLM "
                        "once the server is fixed).",
                        features=(key.partition("=")[0],),
                        reason=said,
                        backend=self.backend.name,
                    )
        return specs, choice, parallel

    def _seed_base(self, request: Request) -> tuple[int | None, bool]:
        """The seed of emulated sample 0 and whether it was drawn here: the user's seed
        when it is >= 0; otherwise (no seed, or a negative one such as llama.cpp's and
        Ollama's ``-1`` for "random") a random base in ``[0, 2**31 - 256)``, so that
        base, base+1, ... are valid seeds on every server (llama.cpp takes a 32-bit
        unsigned seed and reads ``0xFFFFFFFF`` as "random"; vLLM a signed 64-bit one).
        ``None`` when the backend cannot take a seed."""
        seed = request.params.get("seed")
        if isinstance(seed, int) and seed >= 0:
            return seed, False
        if "seed" not in self.backend.supports:
            return None, False
        return random.randrange(_SEED_SPAN), True

    def _unsupported(
        self, key: str, value: Any, reason: str, stacklevel: int = 5, substitute: bool = False
    ) -> None:
        """Apply ``on_unsupported`` to ``key=value``, which cannot be sent (``reason``). A
        ``substitute`` (the same effect by other means: emulated ``n``, ``json_object``
        with the schema) is only warned about."""
        if substitute:
            if self.on_unsupported == "warn":
                warnings.warn(
                    f"{key}: {reason}.", UnsupportedParameterWarning, stacklevel=stacklevel
                )
            return
        if self.on_unsupported == "error":
            raise ParameterError(
                f"{key}={value!r}: {reason}. Remove it, or connect with "
                "on_unsupported='drop' (or 'warn') to send the request without it."
            )
        if self.on_unsupported == "warn":
            warnings.warn(
                f"{key}={value!r} dropped: {reason}.",
                UnsupportedParameterWarning,
                stacklevel=stacklevel,
            )

    def _fall_back(
        self, request: Request, exc: FeatureRefusedError, notes: dict[str, str], seen: set[str]
    ) -> Request:
        """``request`` without the features the server just refused (``exc``), which the
        backend remembers; what was changed goes in ``notes``, the features fallen back
        from in ``seen`` (one call's). Raises ``exc`` when nothing is left to fall back to
        (:class:`~promptkit.ParameterError` when ``on_unsupported="error"`` forbids a drop).
        Another call may have recorded the same refusal meanwhile: this one still falls
        back."""
        backend = self.backend
        said = f': "{exc.reason}"' if exc.reason else ""
        params = dict(request.params)
        response_format = request.response_format
        changed = False
        for feature in exc.features:
            reason = f"the server refused {feature} ({exc.status}{said})"
            if feature in seen:
                continue  # refused again after this call's fallback: nothing more to try
            seen.add(feature)
            if feature in ("tools", "tool_choice"):  # no fallback: remembered, and raised
                key = "tools" if feature == "tools" else _tool_choice_key(request.tool_choice)
                backend.refuse(key, str(exc))
                raise exc
            if feature == "json_schema" and response_format is not None:
                reason += "; sent as json_object with the schema"
                backend.refuse(feature, reason)
                self._unsupported("response_format", None, reason, 6, substitute=True)
                notes["response_format"] = reason
                changed = True
                continue
            if feature == "n":
                reason += "; one request per choice instead"
                backend.refuse(feature, reason)
                self._unsupported("n", params.get("n"), reason, 6, substitute=True)
                notes["n"] = reason
                changed = params.pop("n", None) is not None or changed
                continue
            if feature == "response_format":
                value: Any = response_format
                response_format = None
            elif feature in params:
                value = params.pop(feature)
                if feature == "logprobs":
                    params.pop("top_logprobs", None)
            else:
                continue
            backend.refuse(feature, reason)
            if feature == "logprobs":
                backend.refuse("top_logprobs", reason)
            self._unsupported(feature, value, reason, stacklevel=6)
            notes[feature] = reason
            changed = True
        if not changed:
            raise exc
        return replace(request, params=params, response_format=response_format)

    def _next_requests(
        self, request: Request, have: int, n: int, base: tuple[int | None, bool]
    ) -> list[Request]:
        """Requests for the ``n - have`` choices still missing (at first, the request
        itself, unless ``n`` must be emulated by one request per choice).

        Each emulated (or top-up) request carries its own seed, ``base + sample index``
        (``base`` from :meth:`_seed_base`), so that a server started with a fixed seed
        (``llama-server --seed N``) still returns distinct samples."""
        if have == 0 and (n == 1 or self.backend.native_n):
            return [request]
        missing = n - have
        seed, auto = base
        # one request per missing choice: emulated n, or a top-up after a server that takes
        # n returned fewer choices (it most likely ignores n), sent concurrently
        out = []
        for i in range(missing):
            params = dict(request.params)
            params.pop("n", None)
            if seed is not None:
                # distinct seeds, or every sample would be the same text
                params["seed"] = seed + have + i
            out.append(replace(request, params=params, sample=have + i, auto_seed=auto))
        return out

    def _finish(
        self, parts: list[Completion], n: int, dropped: dict[str, str], started: float
    ) -> Completion:
        choices: list[Choice] = []
        usage = Usage()
        for part in parts:
            choices.extend(part.choices)
            usage = usage + part.usage
        choices = [replace(c, index=i) for i, c in enumerate(choices[:n])]
        last = parts[-1]
        renamed = {
            k: v
            for k, v in self.backend.renames.items()
            if k in last.params_sent or v in last.params_sent
        }
        renamed.update(last.renamed)
        # what the first request carried; `requests` tells how many it took to get n choices
        params_sent = dict(parts[0].params_sent)
        done = Completion(
            choices=choices,
            model=last.model or self.backend.model,
            backend=self.backend.name,
            usage=usage,
            params_sent=params_sent,
            dropped={**dropped, **{k: v for p in parts for k, v in p.dropped.items()}},
            renamed=renamed,
            latency_s=time.perf_counter() - started,
            requests=sum(p.requests for p in parts),
            cached=all(p.cached for p in parts),
            raw=last.raw,
        )
        done.cost = parts_cost(self, parts)
        self._check(done)
        return done

    def _check(self, done: Completion) -> None:
        if any(c.finish_reason == "content_filter" for c in done.choices):
            raise ContentFilteredError(
                "The server withheld the reply (finish_reason 'content_filter'). Rephrase the "
                "prompt or the input; the provider's content policy blocked it.",
                backend=self.backend.name,
            )
        if self.on_truncation == "error" and done.truncated:
            raise TruncatedError(
                "The reply stopped at max_tokens (finish_reason 'length'). Raise max_tokens, "
                "or connect with on_truncation='ignore' and check Completion.truncated.",
                completion=done,
                backend=self.backend.name,
            )

    # ------------------------------------------------------------------ calls

    def complete(
        self,
        messages: MessagesLike,
        *,
        params: SamplingParams | None = None,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
        tools: Sequence[ToolLike | Mapping[str, Any]] | None = None,
        tool_choice: str | None = None,
        parallel_tool_calls: bool | None = None,
        **overrides: Any,
    ) -> Completion:
        """Send chat messages (a str is one user message) and return the Completion.

        Keyword ``overrides`` are sampling parameters (``temperature=0``, ``n=5``, ...).
        """
        request, n, dropped = self._prepare(
            messages,
            None,
            params,
            overrides,
            response_format,
            timeout,
            (tools, tool_choice, parallel_tool_calls),
        )
        return self._run(request, n, dropped)

    def complete_prompt(
        self,
        prompt: str,
        *,
        params: SamplingParams | None = None,
        timeout: float | None = None,
        **overrides: Any,
    ) -> Completion:
        """Send raw text to the backend's completion (not chat) endpoint."""
        request, n, dropped = self._prepare(None, prompt, params, overrides, None, timeout)
        return self._run(request, n, dropped)

    def _request_plan(self, req: Request) -> _Plan[Request, Completion, Completion]:
        """One request, written once for both worlds: the cache, then the request (yielded;
        the driver sends back the backend's Completion or throws its error), falling back
        from the features the server refuses."""
        if self.cache is not None:
            hit = self.cache.get(self.backend, req)
            if hit is not None:
                return hit
        notes: dict[str, str] = {}
        seen: set[str] = set()
        refusals = 0
        while True:
            try:
                part: Completion = yield req
                break
            except FeatureRefusedError as exc:
                # one failed request, then the fallback (remembered by the backend)
                req = self._fall_back(req, exc, notes, seen)
                refusals += 1
        if refusals:  # the fallbacks in `dropped`, the refused requests in `requests`
            part.dropped.update(notes)
            part.requests += refusals
        if self.cache is not None and part.choices:
            self.cache.put(self.backend, req, part)
        return part

    def _call(self, req: Request) -> Completion:
        """:meth:`_request_plan` sent with ``backend.complete`` (cache, then backend)."""
        return _drive(self._request_plan(req), self.backend.complete)

    async def _acall(self, req: Request) -> Completion:
        """:meth:`_request_plan` sent with ``backend.acomplete``."""
        return await _adrive(self._request_plan(req), self.backend.acomplete)

    def _plan(
        self, request: Request, n: int, dropped: dict[str, str]
    ) -> _Plan[list[Request], list[Completion], Completion]:
        """A call for ``n`` choices, written once for both worlds: it yields rounds of
        requests (the driver sends back their Completions, in order): the request itself,
        or one request per choice where ``n`` is emulated, then top-ups while choices are
        missing."""
        started = time.perf_counter()
        parts: list[Completion] = []
        have = 0
        base = self._seed_base(request) if n > 1 else (None, False)
        while True:
            results: list[Completion] = yield self._next_requests(request, have, n, base)
            for part in results:
                if not part.choices:
                    raise MalformedResponseError(
                        "The server returned no choices. Check that the model is loaded and "
                        "the request is valid for it.",
                        backend=self.backend.name,
                    )
                parts.append(part)
                have += len(part.choices)
            if have >= n:
                return self._finish(parts, n, dropped, started)

    def _run(self, request: Request, n: int, dropped: dict[str, str]) -> Completion:
        return _drive(self._plan(request, n, dropped), self._call_all)

    async def _arun(self, request: Request, n: int, dropped: dict[str, str]) -> Completion:
        return await _adrive(self._plan(request, n, dropped), self._acall_all)

    def _call_all(self, pending: list[Request]) -> list[Completion]:
        """Send a round of requests, concurrently (the shared threads of
        :func:`~promptkit._sync.run_jobs`) when there are several; each request is
        :meth:`_call`, traced and hooked, in the caller's span."""
        if len(pending) == 1:  # in this thread and context: nothing to carry
            return [observed_call(self, pending[0])]
        call = carry(functools.partial(observed_call, self))
        return run_jobs([functools.partial(call, r) for r in pending], self.max_concurrency)

    async def _acall_all(self, pending: list[Request]) -> list[Completion]:
        """Async twin of :meth:`_call_all`; one request costs no extra task or semaphore."""
        if len(pending) == 1:
            return [await observed_acall(self, pending[0])]  # _acall, traced and hooked
        import asyncio

        sem = asyncio.Semaphore(self.max_concurrency)

        async def one(req: Request) -> Completion:
            async with sem:
                return await observed_acall(self, req)

        return list(await asyncio.gather(*(one(r) for r in pending)))

    async def acomplete(
        self,
        messages: MessagesLike,
        *,
        params: SamplingParams | None = None,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
        tools: Sequence[ToolLike | Mapping[str, Any]] | None = None,
        tool_choice: str | None = None,
        parallel_tool_calls: bool | None = None,
        **overrides: Any,
    ) -> Completion:
        """Async twin of :meth:`complete`; emulated ``n`` runs its requests concurrently."""
        request, n, dropped = self._prepare(
            messages,
            None,
            params,
            overrides,
            response_format,
            timeout,
            (tools, tool_choice, parallel_tool_calls),
        )
        return await self._arun(request, n, dropped)

    async def acomplete_prompt(
        self,
        prompt: str,
        *,
        params: SamplingParams | None = None,
        timeout: float | None = None,
        **overrides: Any,
    ) -> Completion:
        """Async twin of :meth:`complete_prompt`."""
        request, n, dropped = self._prepare(None, prompt, params, overrides, None, timeout)
        return await self._arun(request, n, dropped)

    # ------------------------------------------------------------------ embeddings

    def _embed_batches(self, texts: str | Sequence[str], batch_size: int | None) -> list[list[str]]:
        items = [texts] if isinstance(texts, str) else list(texts)
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise ParameterError(
                    f"embed() takes texts; item {i} is a {type(text).__name__}. Convert it to "
                    "a str first."
                )
        if not self.backend.supports_embeddings:
            raise self.backend._no_embeddings()
        size = self.backend.embed_batch_size if batch_size is None else batch_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ParameterError(f"batch_size={batch_size!r}: expected a whole number >= 1.")
        return [items[i : i + size] for i in range(0, len(items), size)]

    def _join_embeddings(
        self, batches: list[list[str]], parts: Sequence[Embeddings], started: float
    ) -> Embeddings:
        vectors: list[list[float]] = []
        usage = Usage()
        requests = 0
        model: str | None = None
        dim: int | None = None
        for batch, part in zip(batches, parts, strict=True):
            if len(part.vectors) != len(batch):
                raise MalformedResponseError(
                    f"The {self.backend.name} backend returned {len(part.vectors)} embeddings "
                    f"for {len(batch)} texts. Check that the model is an embedding model.",
                    backend=self.backend.name,
                )
            for vector in part.vectors:
                if dim is None:
                    dim = len(vector)
                if not vector or len(vector) != dim:
                    raise MalformedResponseError(
                        f"The {self.backend.name} backend returned embeddings of different "
                        f"lengths ({dim} and {len(vector)}).",
                        backend=self.backend.name,
                    )
            vectors.extend(part.vectors)
            usage = usage + part.usage
            requests += part.requests
            model = part.model or model
        return Embeddings(
            vectors,
            model=model or self.backend.model or None,
            backend=self.backend.name,
            usage=usage,
            requests=requests,
            latency_s=time.perf_counter() - started,
        )

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int | None = None,
        timeout: float | None = None,
    ) -> Embeddings:
        """Embedding vectors for ``texts`` (a str is one text), in input order.

        >>> from promptkit import LLM, FakeBackend
        >>> e = LLM(FakeBackend(embedding_dim=8)).embed(["refund policy", "shipping times"])
        >>> len(e), e.dim
        (2, 8)

        The texts go in batches of ``batch_size`` (default: the backend's
        ``embed_batch_size``), several at once up to ``max_concurrency``; each batch is
        retried like any request. ``usage`` and ``requests`` add up over the batches.
        """
        started = time.perf_counter()
        batches = self._embed_batches(texts, batch_size)
        embed = self.backend.embed
        if observed(self):
            embed = carry(self._observed_embed)
        jobs = [functools.partial(embed, b, timeout=timeout) for b in batches]
        parts = run_jobs(jobs, self.max_concurrency)
        return self._join_embeddings(batches, parts, started)

    async def aembed(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int | None = None,
        timeout: float | None = None,
    ) -> Embeddings:
        """Async twin of :meth:`embed`; the batches run concurrently."""
        started = time.perf_counter()
        batches = self._embed_batches(texts, batch_size)
        import asyncio

        sem = asyncio.Semaphore(self.max_concurrency)

        async def one(batch: list[str]) -> Embeddings:
            async with sem:
                obs = observe(self, None, "embeddings")
                if obs is None:
                    return await self.backend.aembed(batch, timeout=timeout)
                try:
                    part = await self.backend.aembed(batch, timeout=timeout)
                except BaseException as exc:
                    obs.failed(exc)
                    raise
                embedded(obs, len(batch), part)
                return part

        parts = await asyncio.gather(*(one(b) for b in batches))
        return self._join_embeddings(batches, parts, started)

    def _observed_embed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        obs = observe(self, None, "embeddings")
        if obs is None:
            return self.backend.embed(texts, timeout=timeout)
        try:
            part = self.backend.embed(texts, timeout=timeout)
        except BaseException as exc:
            obs.failed(exc)
            raise
        embedded(obs, len(texts), part)
        return part

    def token_counter(self) -> TokenCounter:
        """The most exact token counter for this model: tiktoken on the OpenAI API (when
        installed), the server's tokenizer on llama.cpp servers, the model's own tokenizer
        on the embedded backend, else :data:`promptkit.APPROX` (1 token per 4 characters).

        >>> from promptkit import LLM, FakeBackend
        >>> LLM(FakeBackend()).token_counter()
        APPROX
        """
        return self.backend.token_counter()

    def special_tokens(self) -> list[str]:
        """The special-token strings untrusted text must not contain for this model: the
        model's own where the backend can know them (the embedded model's vocabulary, a
        llama.cpp server), else :data:`promptkit.COMMON_SPECIAL_TOKENS`. Pass them to a
        prompt to neutralise exactly those: ``Delimited(..., special_tokens=...)``.

        >>> from promptkit import LLM, FakeBackend
        >>> "<|im_start|>" in LLM(FakeBackend()).special_tokens()
        True
        """
        return self.backend.special_tokens()

    def stream(
        self,
        messages: MessagesLike,
        *,
        params: SamplingParams | None = None,
        timeout: float | None = None,
        tools: Sequence[ToolLike | Mapping[str, Any]] | None = None,
        tool_choice: str | None = None,
        parallel_tool_calls: bool | None = None,
        **overrides: Any,
    ) -> TextStream:
        """Stream the reply: iterate for text pieces; ``.completion`` once it is done
        (with the tool calls the reply made, assembled, in ``.completion.tool_calls``).

        >>> from promptkit import LLM, FakeBackend
        >>> s = LLM(FakeBackend(["Hello there"])).stream("Hi")
        >>> "".join(s), s.completion.finish_reason
        ('Hello there', 'stop')
        """
        request, n, dropped = self._prepare(
            messages,
            None,
            params,
            overrides,
            None,
            timeout,
            (tools, tool_choice, parallel_tool_calls),
        )
        if n > 1:
            raise ParameterError("n > 1 cannot be streamed: use complete() for several choices.")
        return TextStream(self, request, dropped)

    def astream(
        self,
        messages: MessagesLike,
        *,
        params: SamplingParams | None = None,
        timeout: float | None = None,
        tools: Sequence[ToolLike | Mapping[str, Any]] | None = None,
        tool_choice: str | None = None,
        parallel_tool_calls: bool | None = None,
        **overrides: Any,
    ) -> TextStream:
        """Async twin of :meth:`stream`: ``async for piece in llm.astream(...)``."""
        return self.stream(
            messages,
            params=params,
            timeout=timeout,
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=parallel_tool_calls,
            **overrides,
        )

    def close(self) -> None:
        """Close the backend's connections."""
        self.backend.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await self.backend.aclose()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class TextStream:
    """A streamed reply. Iterate (``for``/``async for``) for text pieces; afterwards
    ``completion`` holds the whole reply with its finish reason and usage."""

    def __init__(self, llm: LLM, request: Request, dropped: dict[str, str]) -> None:
        self._llm = llm
        self._request = request
        self._dropped = dropped
        self._pieces: list[str] = []
        self._calls: list[ToolCall] = []
        self._last: Delta | None = None
        self._seen: set[str] = set()  # features refused and fallen back from
        self._usage = Usage()
        self._model: str | None = None
        self._started = time.perf_counter()
        self.completion: Completion | None = None

    def _take(self, delta: Delta) -> str:
        """Record one delta (both loops call this for every delta); its text."""
        if delta.text:
            self._pieces.append(delta.text)
        if delta.tool_calls:
            self._calls.extend(delta.tool_calls)
        if delta.usage is not None:
            self._usage = delta.usage
        if delta.model:
            self._model = delta.model
        if delta.finish_reason is not None:
            self._last = delta
        return delta.text

    def _done(self) -> None:
        backend = self._llm.backend
        renames = backend.renames
        done = Completion(
            choices=[
                Choice(
                    "".join(self._pieces),
                    finish_reason=self._last.finish_reason if self._last else None,
                    tool_calls=tuple(self._calls),
                )
            ],
            model=self._model or backend.model,
            backend=backend.name,
            usage=self._usage,
            params_sent={renames.get(k, k): v for k, v in self._request.params.items()},
            dropped=dict(self._dropped),
            renamed={k: v for k, v in renames.items() if k in self._request.params},
            latency_s=time.perf_counter() - self._started,
        )
        done.cost = call_cost(self._llm, done)
        self.completion = done
        self._llm._check(done)

    def _refused(self, exc: FeatureRefusedError) -> None:
        """A refusal when the stream opened: fall back (the request is sent again)."""
        if self._pieces or self._calls:
            raise exc
        notes: dict[str, str] = {}
        self._request = self._llm._fall_back(self._request, exc, notes, self._seen)
        self._dropped.update(notes)

    def __iter__(self) -> Iterator[str]:
        obs = observe_request(self._llm, self._request, attach=False)
        if obs is None:
            yield from self._texts()
            return
        hooks = self._llm.observers
        try:
            if hooks.on_request is not None:
                run_hook(hooks.on_request, self._request)
            yield from self._texts()
        except BaseException as exc:
            if self.completion is not None and not isinstance(exc, GeneratorExit):
                obs.succeeded(self.completion)  # the reply arrived; the policy refused it
            else:
                obs.failed(exc)
            if hooks.on_error is not None and isinstance(exc, Exception):
                run_hook(hooks.on_error, self._request, exc)
            raise
        assert self.completion is not None
        obs.succeeded(self.completion)
        if hooks.on_response is not None:
            run_hook(hooks.on_response, self._request, self.completion)

    def _texts(self) -> Iterator[str]:
        """The stream's text pieces; a feature the server refuses by name is fallen back
        from (:meth:`_refused`) and the stream asked again."""
        while True:
            try:
                for delta in self._llm.backend.stream(self._request):
                    text = self._take(delta)
                    if text:
                        yield text
                break
            except FeatureRefusedError as exc:
                self._refused(exc)
        self._done()

    async def __aiter__(self) -> AsyncIterator[str]:
        obs = observe_request(self._llm, self._request, attach=False)
        if obs is None:
            async for text in self._atexts():
                yield text
            return
        hooks = self._llm.observers
        try:
            if hooks.on_request is not None:
                await arun_hook(hooks.on_request, self._request)
            async for text in self._atexts():
                yield text
        except BaseException as exc:
            if self.completion is not None and not isinstance(exc, GeneratorExit):
                obs.succeeded(self.completion)
            else:
                obs.failed(exc)
            if hooks.on_error is not None and isinstance(exc, Exception):
                await arun_hook(hooks.on_error, self._request, exc)
            raise
        assert self.completion is not None
        obs.succeeded(self.completion)
        if hooks.on_response is not None:
            await arun_hook(hooks.on_response, self._request, self.completion)

    async def _atexts(self) -> AsyncIterator[str]:
        """Async twin of :meth:`_texts`."""
        while True:
            try:
                async for delta in self._llm.backend.astream(self._request):
                    text = self._take(delta)
                    if text:
                        yield text
                break
            except FeatureRefusedError as exc:
                self._refused(exc)
        self._done()

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._pieces)
