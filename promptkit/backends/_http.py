"""What every HTTP backend shares: pooled httpx clients, retries and error mapping.

:class:`HTTPBackend` owns one lazily created :class:`httpx.Client` and one
:class:`httpx.AsyncClient`, sends JSON bodies built as plain dicts, retries transient
failures with tenacity, and turns every failure into a :mod:`promptkit` error. Subclasses
(the OpenAI-compatible and Ollama backends) only build bodies and parse replies.

Retries (see :class:`RetryPolicy` for the rules): 408, 409, 429, 5xx (but 501),
timeouts, refused and dropped connections are retried with exponential backoff and jitter;
a ``Retry-After`` header (seconds or an HTTP date, or OpenAI's ``retry-after-ms``) is
honoured, and one asking for longer than ``retry_after_max`` ends the call at once with
the error (``RateLimitError.retry_after`` says how long). A server's ``x-should-retry:
true``/``false`` header overrides the status. Deterministic refusals are never retried: a
context overflow, a server not started for embeddings, 501, and a server refusing a
feature by name (:class:`~promptkit.FeatureRefusedError`: one failed request, then the
client falls back and remembers). The first attempt runs without any retry machinery, so
a call that succeeds pays nothing for it.

The API key lives in a :class:`~promptkit._config.Secret`, whose ``repr`` is masked; it is
sent only as ``Authorization: Bearer ...`` and is redacted from every error message and
body excerpt (see :meth:`~promptkit._config.Secret.redact` for the rule).
Errors are raised outside of ``except`` blocks, so no httpx or json exception (whose
request object would carry the headers) is chained to what the user sees.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import random
import re
import ssl
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import tenacity

from .._config import Secret
from .._errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ConfigurationError,
    ContextLengthError,
    FeatureRefusedError,
    MalformedResponseError,
    ParameterError,
    RateLimitError,
    ServerError,
)
from .._types import Completion, Embeddings, Request
from ._base import Backend

__all__ = ["HTTPBackend", "RetryPolicy", "SSEDecoder", "dumps", "loads"]

_EXCERPT = 300

#: Phrases servers use when the prompt does not fit (OpenAI, vLLM, llama.cpp, ...).
_CONTEXT_PHRASES = (
    "context_length_exceeded",
    "maximum context length",
    "exceeds the available context size",
    "exceed_context_size",
    "context window",
    "context length",
    "too many tokens",
)

#: What llama.cpp servers say when asked for embeddings they were not started to serve
#: (a 5xx that retrying cannot cure).
_NO_EMBEDDINGS_PHRASES = (
    "must be created with embedding=true",
    "does not support embeddings",
    "start it with `--embeddings`",
)

#: promptkit parameters a server may refuse by name (FeatureRefusedError.features); the
#: client emulates ``n`` and drops the others per ``on_unsupported``. The response format
#: is ``"json_schema"`` (the JSON-schema form refused: json_object with the schema is
#: tried) or ``"response_format"`` (refused whole: instructions alone).
REFUSABLE = frozenset(
    {
        "n",
        "logprobs",
        "top_logprobs",
        "seed",
        "top_k",
        "min_p",
        "repetition_penalty",
        "presence_penalty",
        "frequency_penalty",
    }
)

#: How servers word the refusal of a field or value (pydantic, FastAPI, OpenAI, vLLM,
#: llama.cpp); a refusal also names a field the request sent.
_REFUSAL_PHRASES = (
    "not supported",
    "unsupported",
    "does not support",
    "not allowed",
    "not permitted",
    "extra_forbidden",
    "literal_error",
    "input should be '",
    "unrecognized",
    "unknown field",
    "unknown parameter",
    "not implemented",
    "only one completion choice",
)

#: ``n`` named in a message: quoted, or as in "n must be 1", "n > 1", "n != 1".
_N_NAMED = re.compile(r"['\"`]n['\"`]|\bn\s*(?:must|>|!=|should)|only one completion choice")

_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+")


# --------------------------------------------------------------------------- helpers


def dumps(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON for a request body (plain dicts, no pydantic)."""
    problem = ""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
            "utf-8"
        )
    except UnicodeEncodeError:
        # lone surrogates cannot be UTF-8: send them \u-escaped, the server decides
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (TypeError, ValueError) as exc:
        problem = str(exc)
    raise ParameterError(
        f"The request body cannot be sent as JSON ({problem}). Values in extra= and "
        "response_format must be JSON data (no NaN, infinity, or Python objects)."
    )


_MISSING = object()


def loads(data: bytes | str) -> Any:
    """``json.loads``, returning a sentinel instead of raising (errors are raised by callers
    outside ``except`` blocks)."""
    try:
        return json.loads(data)
    except ValueError:
        return _MISSING


_SSL_LOCK = threading.Lock()
_SSL: list[ssl.SSLContext] = []


#: Connection pools (httpx.AsyncClient) per backend for async calls; see _async_client.
_ASYNC_POOLS = 4


def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every client (building one costs ~30 ms)."""
    if not _SSL:
        with _SSL_LOCK:
            if not _SSL:
                _SSL.append(httpx.create_ssl_context())
    return _SSL[0]


def _redact(text: str, secret: Secret | None) -> str:
    """``text`` without the API key (:meth:`Secret.redact`) or anything shaped like an
    OpenAI key (``sk-`` and its first 6 characters stay)."""
    if secret is not None:
        text = secret.redact(text)
    return _KEY_LIKE.sub(r"\1***", text)


def _excerpt(text: str, secret: Secret | None, limit: int = _EXCERPT) -> str:
    text = " ".join(_redact(text, secret).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_url(url: str) -> str:
    """``url`` without a password in its userinfo (for reprs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(data: Any) -> tuple[str, str]:
    """(message, code) from an error body: OpenAI ``{"error": {...}}``, Ollama
    ``{"error": "..."}``, FastAPI ``{"detail": ...}``."""
    if not isinstance(data, dict):
        return "", ""
    err = data.get("error", data)
    if isinstance(err, str):
        return err, ""
    if isinstance(err, dict):
        msg = err.get("message") or err.get("detail") or ""
        code = " ".join(str(err.get(k) or "") for k in ("code", "type")).strip()
        if not isinstance(msg, str):
            msg = json.dumps(msg, ensure_ascii=False)
        return msg, code
    return "", ""


def _is_html(resp: httpx.Response) -> bool:
    return "html" in resp.headers.get("content-type", "")


def _is_context_error(text: str) -> bool:
    low = text.lower()
    return any(p in low for p in _CONTEXT_PHRASES)


def _is_no_embeddings(text: str) -> bool:
    low = text.lower()
    return any(p in low for p in _NO_EMBEDDINGS_PHRASES)


_PYDANTIC_MSG = re.compile(r"""['"]msg['"]:\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')""")


def _brief(message: str, limit: int = 200) -> str:
    """A server's error message in brief: the ``msg`` of each pydantic/FastAPI validation
    error it holds, else the message itself, cut at ``limit``."""
    found = [a or b for a, b in _PYDANTIC_MSG.findall(message)]
    text = "; ".join(dict.fromkeys(m.replace('\\"', '"') for m in found if m)) or message
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refused_features(text: str, content: bytes, renames: Mapping[str, str]) -> tuple[str, ...]:
    """The features of the request ``content`` that an error ``text`` refuses by name
    (see :data:`REFUSABLE`); empty when it names none or is not worded as a refusal."""
    low = text.lower()
    if not any(p in low for p in _REFUSAL_PHRASES):
        return ()
    body = loads(content) if content else None
    if not isinstance(body, dict):
        return ()
    sent = dict(body)
    if isinstance(body.get("options"), dict):  # Ollama's native sampling options
        sent.update(body["options"])
    names = {wire: name for name, wire in renames.items()}
    out: list[str] = []
    rf = sent.get("response_format")
    if isinstance(rf, dict) and re.search(r"\bresponse_format\b|\bjson_schema\b", low):
        out.append("json_schema" if rf.get("type") == "json_schema" else "response_format")
    for wire in sent:
        name = names.get(wire, wire)
        if name not in REFUSABLE:
            continue
        if name == "n":
            # vLLM's "n must be 1 when using greedy sampling" refuses a combination, not n
            if _N_NAMED.search(low) and "greedy" not in low:
                out.append(name)
        elif re.search(rf"\b{re.escape(wire)}\b", low):
            out.append(name)
    return tuple(out)


class _Failure(Exception):
    """One failed attempt, already stripped of httpx objects. Never reaches the user."""

    def __init__(
        self,
        kind: str,
        *,
        retryable: bool,
        status: int | None = None,
        message: str = "",
        code: str = "",
        body: str | None = None,
        retry_after: float | None = None,
        detail: str = "",
        refused: tuple[str, ...] = (),
        too_long: bool = False,
    ) -> None:
        super().__init__(kind)
        self.kind = kind  # "status", "timeout", "connect", "dropped", "transport"
        self.retryable = retryable
        self.status = status
        self.message = message
        self.code = code
        self.body = body
        self.retry_after = retry_after
        self.detail = detail
        self.refused = refused  # features the server refused by name (never retried)
        self.too_long = too_long  # Retry-After beyond retry_after_max (not retried)


class _StopAt(tenacity.stop.stop_base):
    """Stop retrying once the monotonic clock passes ``deadline``."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return time.monotonic() >= self.deadline


@dataclass
class RetryPolicy:
    """How a backend retries transient failures.

    What is retried, in this order of precedence:

    1. A reply with ``x-should-retry: true`` or ``false`` (OpenAI's header): as it says,
       whatever its status (a 4xx too; a 5xx or 429 not).
    2. Never: a server refusing a feature by name (a 4xx, or a 5xx whose message names a
       field the request sent, such as llama-cpp-python's 500 "Input should be 'text' or
       'json_object'" for ``response_format``, or llama-server's "Only one completion
       choice is allowed" for ``n``): :class:`~promptkit.FeatureRefusedError` after one
       request, and the client falls back; a prompt over the context window; a server not
       started for embeddings; 501 Not Implemented; 429 ``insufficient_quota``.
    3. 408 (request timeout), 409 (conflict, e.g. a lock), 429, every other 5xx, timeouts,
       refused and dropped connections. Other 4xx are not retried.

    ``max_retries`` retries follow the first attempt (3 -> at most 4 attempts). The wait
    before retry *k* is ``base_delay * 2**(k-1)``, capped at ``max_delay``, with jitter
    (between half and all of it); a ``Retry-After`` header replaces it. A ``Retry-After``
    longer than ``retry_after_max`` is not waited for: the error is raised at once, with
    ``RateLimitError.retry_after`` for a 429 (the batch runner pauses for it). No retry
    starts after ``total_timeout`` seconds. ``sleep`` and ``asleep`` do the waiting
    (replace them in tests).

    >>> RetryPolicy(max_retries=0).max_retries
    0
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    retry_after_max: float = 60.0
    total_timeout: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        delay = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)

    def tenacity_options(self, started: float) -> dict[str, Any]:
        """Keyword arguments for a tenacity ``Retrying`` whose first attempt began at
        ``started`` (a ``time.monotonic()`` value)."""

        def wait(state: tenacity.RetryCallState) -> float:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            after = exc.retry_after if isinstance(exc, _Failure) else None
            left = self.total_timeout - (time.monotonic() - started)
            return max(0.0, min(self.delay(state.attempt_number, after), left))

        return {
            "stop": tenacity.stop_after_attempt(self.max_retries + 1)
            | _StopAt(started + self.total_timeout),
            "wait": wait,
            "retry": tenacity.retry_if_exception(lambda e: isinstance(e, _Failure) and e.retryable),
        }


class SSEDecoder:
    """Server-sent events, line by line: ``feed(line)`` returns an event's data when the
    event is complete (at its blank line), else ``None``; ``flush()`` returns what is left
    at the end of the stream.

    An ``error: {...}`` line (older llama.cpp servers report a failure mid-stream that way,
    before ``data: [DONE]``) makes its event's data ``{"error": {...}}``, so the reader
    raises the server's error instead of ending the stream with empty text.

    >>> sse = SSEDecoder()
    >>> sse.feed('error: {"code": 500, "message": "boom"}'), sse.feed("")
    (None, '{"error": {"code": 500, "message": "boom"}}')
    """

    __slots__ = ("_data", "_error", "_error_event")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._error: list[str] = []
        self._error_event = False  # an "event: error" line: the data is an error

    def feed(self, line: str) -> str | None:
        if not line:
            if self._error or (self._error_event and self._data):
                error = "\n".join(self._error or self._data)
                self._error.clear()
                self._data.clear()
                self._error_event = False
                return _error_event(error)
            self._error_event = False
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data.clear()
            return data
        if line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
        elif line.startswith("error:"):
            value = line[6:]
            self._error.append(value[1:] if value.startswith(" ") else value)
        elif line.startswith("event:") and line[6:].strip() == "error":
            self._error_event = True
        return None  # comments (":"), other event:, id:, retry: lines

    def flush(self) -> str | None:
        return self.feed("")


def _error_event(value: str) -> str:
    """The data of an ``error:`` SSE line as ``{"error": ...}`` JSON."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = {"message": value.strip() or "unknown error"}
    if isinstance(parsed, dict) and "error" in parsed:
        return json.dumps(parsed, ensure_ascii=False)
    if not isinstance(parsed, dict):
        parsed = {"message": str(parsed)}
    return json.dumps({"error": parsed}, ensure_ascii=False)


# --------------------------------------------------------------------------- the base


class HTTPBackend(Backend):
    """Base class of the backends that talk to a server over HTTP.

    Subclasses set ``default_base_url`` and build bodies / parse replies (:meth:`_body`
    and :meth:`_completion`; :meth:`_embed_body` and :meth:`_embeddings` with
    ``_embed_url`` for embeddings; ``stream``/``astream``); this class sends them
    (:meth:`_send`, :meth:`_asend`: ``complete``, ``acomplete``, ``embed`` and ``aembed``
    are here) and maps failures to promptkit errors.

    Options shared by every HTTP backend:

    - ``timeout``: seconds to wait for the server (connect, and between bytes read).
    - ``headers``: extra HTTP headers for every request.
    - ``max_retries`` (3), ``retry_base_delay`` (0.5 s), ``retry_max_delay`` (8 s),
      ``retry_after_max`` (60 s), ``retry_total_timeout`` (120 s): see
      :class:`RetryPolicy`; the policy is ``backend.retry``.
    """

    default_base_url: ClassVar[str] = ""
    #: Where :meth:`embed` posts (set by the subclasses that have embeddings).
    _embed_url: httpx.URL

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60,
        max_retries: int = 3,
        headers: Mapping[str, str] | None = None,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 8.0,
        retry_after_max: float = 60.0,
        retry_total_timeout: float = 120.0,
        **unknown: Any,
    ) -> None:
        if unknown:
            self._reject_options(unknown)
        url = (base_url or self.default_base_url).strip().rstrip("/")
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigurationError(
                f"base_url={_safe_url(url)!r} is not an http(s) URL: pass the server's "
                f"address, e.g. {self.default_base_url!r}."
            )
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(f"timeout={timeout!r}: expected a number of seconds > 0.")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries={max_retries!r}: expected a whole number >= 0.")
        for opt, val in (
            ("retry_base_delay", retry_base_delay),
            ("retry_max_delay", retry_max_delay),
            ("retry_after_max", retry_after_max),
            ("retry_total_timeout", retry_total_timeout),
        ):
            if not isinstance(val, (int, float)) or val < 0:
                raise ConfigurationError(f"{opt}={val!r}: expected a number of seconds >= 0.")
        self.model = model or ""
        self._base_url = url
        self._key = Secret(api_key) if api_key else None
        self.timeout = float(timeout)
        self.retry = RetryPolicy(
            max_retries=max_retries,
            base_delay=float(retry_base_delay),
            max_delay=float(retry_max_delay),
            retry_after_max=float(retry_after_max),
            total_timeout=float(retry_total_timeout),
        )
        hdrs = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "promptkit",
        }
        if self._key is not None:
            hdrs["Authorization"] = f"Bearer {self._key.get()}"
        for k, v in (headers or {}).items():
            if k.lower() == "authorization":
                raise ConfigurationError(
                    "Pass the API key as api_key=..., not as an Authorization header."
                )
            hdrs[k] = v
        self._headers = httpx.Headers(hdrs)  # its repr masks Authorization
        self._client: httpx.Client | None = None
        self._aclients: list[httpx.AsyncClient] | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._aclient_turn = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ identity

    @property
    def base_url(self) -> str:
        """The server address requests go to."""
        return self._base_url

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} model={self.model!r} base_url={_safe_url(self._base_url)!r}>"
        )

    def _reject_options(self, unknown: Mapping[str, Any]) -> None:
        import inspect

        known = [
            p.name
            for cls in type(self).__mro__
            if cls is not object and "__init__" in vars(cls)
            for p in inspect.signature(vars(cls)["__init__"]).parameters.values()
            if p.kind is p.KEYWORD_ONLY
        ]
        parts = []
        for name in sorted(unknown):
            close = difflib.get_close_matches(name, known, n=1)
            parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigurationError(
            f"{type(self).__name__} got unknown option(s) {', '.join(parts)}. "
            f"It accepts: {', '.join(sorted(set(known)))}."
        )

    def _url(self, path: str) -> httpx.URL:
        return httpx.URL(self._base_url + path)

    # ------------------------------------------------------------------ calls

    def complete(self, request: Request) -> Completion:
        url, content, chat, sent, renamed = self._body(request, False)
        resp, attempts = self._send(url, content, request.timeout)
        return self._completion(self._json(resp, attempts), chat, sent, renamed, attempts)

    async def acomplete(self, request: Request) -> Completion:
        url, content, chat, sent, renamed = self._body(request, False)
        resp, attempts = await self._asend(url, content, request.timeout)
        return self._completion(self._json(resp, attempts), chat, sent, renamed, attempts)

    def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        """Embed one batch: one POST to the backend's embeddings endpoint."""
        body = self._embed_body(texts)
        resp, attempts = self._send(self._embed_url, body, timeout)
        return self._embeddings(self._json(resp, attempts), len(texts), attempts)

    async def aembed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        body = self._embed_body(texts)
        resp, attempts = await self._asend(self._embed_url, body, timeout)
        return self._embeddings(self._json(resp, attempts), len(texts), attempts)

    # what subclasses provide: the wire format, one request body and reply at a time

    def _body(
        self, request: Request, stream: bool
    ) -> tuple[httpx.URL, bytes, bool, dict[str, Any], dict[str, str]]:
        """(url, JSON body, chat?, params as sent, renames applied) for ``request``."""
        raise NotImplementedError

    def _completion(
        self,
        data: dict[str, Any],
        chat: bool,
        sent: dict[str, Any],
        renamed: dict[str, str],
        attempts: int,
    ) -> Completion:
        """The Completion of a reply's JSON object (from :meth:`_json`)."""
        raise NotImplementedError

    def _embed_body(self, texts: Sequence[str]) -> bytes:
        """The JSON body that embeds ``texts``, posted to ``self._embed_url``."""
        raise self._no_embeddings()

    def _embeddings(self, data: dict[str, Any], n: int, attempts: int) -> Embeddings:
        """The Embeddings of a reply's JSON object, for ``n`` texts."""
        raise NotImplementedError

    # ------------------------------------------------------------------ clients

    def _sync_client(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        headers=self._headers,
                        timeout=self.timeout,
                        follow_redirects=False,
                        verify=_ssl_context(),
                    )
                client = self._client
        return client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        clients = self._aclients
        if clients is None or self._aclient_loop is not loop:
            # a client's pooled connections belong to the loop that opened them
            clients = [
                httpx.AsyncClient(
                    headers=self._headers,
                    timeout=self.timeout,
                    follow_redirects=False,
                    verify=_ssl_context(),
                )
                for _ in range(_ASYNC_POOLS)
            ]
            self._aclients, self._aclient_loop = clients, loop
        # Requests take the pools in turn: with many in flight, each pool keeps few enough
        # connections alive to reuse them (httpcore 1.0 closes a returned connection once
        # the pool holds max_keepalive_connections (20) connections in all, busy or idle).
        self._aclient_turn = (self._aclient_turn + 1) % len(clients)
        return clients[self._aclient_turn]

    def close(self) -> None:
        """Close the pooled connections (the clients are re-created if used again)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both clients."""
        aclients, self._aclients, self._aclient_loop = self._aclients, None, None
        for aclient in aclients or ():
            await aclient.aclose()
        self.close()

    # ------------------------------------------------------------------ one attempt

    def _transport_failure(self, exc: Exception) -> _Failure:
        name = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return _Failure("timeout", retryable=True, detail=name)
        if isinstance(exc, httpx.ConnectError):
            return _Failure("connect", retryable=True, detail=name)
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.NetworkError)):
            return _Failure("dropped", retryable=True, detail=name)
        return _Failure("transport", retryable=False, detail=name)

    def _status_failure(self, resp: httpx.Response, content: bytes = b"") -> _Failure:
        """The failure of a reply with an error status to the request body ``content``
        (the retry rules are :class:`RetryPolicy`'s)."""
        status = resp.status_code
        text = resp.content.decode("utf-8", "replace")
        message, code = _server_message(loads(text) if text else None)
        full = f"{message} {code} {text[:2000]}"
        refused: tuple[str, ...] = ()
        if (
            status >= 400
            and status not in (401, 403, 404, 408, 409, 429)
            and not (_is_context_error(full))
        ):
            # the server's message only: a body echoing the request names every field
            said = f"{message} {code}" if message else text[:2000]
            refused = _refused_features(said, content, self.renames)
        should = resp.headers.get("x-should-retry", "").strip().lower()
        retryable = False
        if should in ("true", "false"):
            retryable = should == "true"
        elif refused or status == 501:
            retryable = False
        elif status in (408, 409):
            retryable = True
        elif status == 429:
            retryable = "insufficient_quota" not in full
        elif status >= 500:
            retryable = not (_is_context_error(full) or _is_no_embeddings(full))
        retry_after = _retry_after(resp.headers) if retryable or status == 429 else None
        too_long = (
            retryable
            and self.retry.max_retries > 0
            and retry_after is not None
            and retry_after > self.retry.retry_after_max
        )
        if too_long:
            retryable = False
        return _Failure(
            "status",
            retryable=retryable,
            status=status,
            message=_excerpt(message, self._key, 500),
            code=code,
            body=_excerpt(text, self._key),
            retry_after=retry_after,
            refused=refused,
            too_long=too_long,
        )

    def _attempt(
        self, url: httpx.URL, content: bytes, timeout: float | None, stream: bool
    ) -> httpx.Response:
        client = self._client or self._sync_client()
        failure: _Failure | None = None
        try:
            request = client.build_request(
                "POST",
                url,
                content=content,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
            resp = client.send(request, stream=stream)
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc)
        else:
            if resp.status_code < 300:
                return resp
            if stream:
                try:
                    resp.read()
                except httpx.HTTPError as exc:
                    failure = self._transport_failure(exc)
                finally:
                    resp.close()
            if failure is None:
                failure = self._status_failure(resp, content)
        raise failure

    async def _aattempt(
        self, url: httpx.URL, content: bytes, timeout: float | None, stream: bool
    ) -> httpx.Response:
        client = self._async_client()
        failure: _Failure | None = None
        try:
            request = client.build_request(
                "POST",
                url,
                content=content,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
            resp = await client.send(request, stream=stream)
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc)
        else:
            if resp.status_code < 300:
                return resp
            if stream:
                try:
                    await resp.aread()
                except httpx.HTTPError as exc:
                    failure = self._transport_failure(exc)
                finally:
                    await resp.aclose()
            if failure is None:
                failure = self._status_failure(resp, content)
        raise failure

    # ------------------------------------------------------------------ with retries

    def _send(
        self, url: httpx.URL, content: bytes, timeout: float | None, stream: bool = False
    ) -> tuple[httpx.Response, int]:
        """POST with retries: (2xx response, attempts made). Raises promptkit errors."""
        started = time.monotonic()
        first: _Failure
        try:
            return self._attempt(url, content, timeout, stream), 1
        except _Failure as failure:
            first = failure
        if not first.retryable or self.retry.max_retries == 0:
            raise self._error(first, 1)
        pending: _Failure | None = first
        last: _Failure = first
        attempts = 0
        retrying = tenacity.Retrying(sleep=self.retry.sleep, **self.retry.tenacity_options(started))
        try:
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    if pending is not None:  # the first attempt, already made
                        failed, pending = pending, None
                        raise failed
                    return self._attempt(url, content, timeout, stream), attempts
        except tenacity.RetryError as exc:
            got = exc.last_attempt.exception()
            if isinstance(got, _Failure):
                last = got
        except _Failure as failure:
            last = failure
        raise self._error(last, attempts)

    async def _asend(
        self, url: httpx.URL, content: bytes, timeout: float | None, stream: bool = False
    ) -> tuple[httpx.Response, int]:
        """Async twin of :meth:`_send`."""
        started = time.monotonic()
        first: _Failure
        try:
            return await self._aattempt(url, content, timeout, stream), 1
        except _Failure as failure:
            first = failure
        if not first.retryable or self.retry.max_retries == 0:
            raise self._error(first, 1)
        pending: _Failure | None = first
        last: _Failure = first
        attempts = 0
        retrying = tenacity.AsyncRetrying(
            sleep=self.retry.asleep, **self.retry.tenacity_options(started)
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    if pending is not None:
                        failed, pending = pending, None
                        raise failed
                    return await self._aattempt(url, content, timeout, stream), attempts
        except tenacity.RetryError as exc:
            got = exc.last_attempt.exception()
            if isinstance(got, _Failure):
                last = got
        except _Failure as failure:
            last = failure
        raise self._error(last, attempts)

    # ------------------------------------------------------------------ replies

    def _json(self, resp: httpx.Response, attempts: int) -> dict[str, Any]:
        """The JSON object of a 2xx reply, or :class:`MalformedResponseError`."""
        ctype = resp.headers.get("content-type", "")
        content = resp.content
        if "html" in ctype:
            raise self._malformed(
                f"the reply is {ctype.split(';')[0]}, not JSON: base_url probably points at "
                "a web page or a proxy rather than the API (OpenAI-compatible APIs usually "
                "end in /v1)",
                attempts,
                content.decode("utf-8", "replace"),
                resp.status_code,
            )
        data = loads(content)
        if data is _MISSING or not isinstance(data, dict):
            raise self._malformed(
                f"the reply is not a JSON object (content-type {ctype or 'missing'!r})",
                attempts,
                content.decode("utf-8", "replace"),
                resp.status_code,
            )
        return data

    def _check_stream_type(self, resp: httpx.Response, attempts: int) -> None:
        if _is_html(resp):
            resp.close()
            raise self._html_stream(attempts)

    async def _acheck_stream_type(self, resp: httpx.Response, attempts: int) -> None:
        if _is_html(resp):
            await resp.aclose()
            raise self._html_stream(attempts)

    def _html_stream(self, attempts: int) -> MalformedResponseError:
        return self._malformed(
            "the streamed reply is HTML: base_url probably points at a web page or a proxy "
            "rather than the API",
            attempts,
        )

    def _read(self, resp: httpx.Response, attempts: int) -> None:
        """Read a streamed reply's whole body (and close it)."""
        failure: _Failure | None = None
        try:
            resp.read()
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc)
        finally:
            resp.close()
        if failure is not None:
            raise self._error(failure, attempts, midstream=True)

    async def _aread(self, resp: httpx.Response, attempts: int) -> None:
        """Async twin of :meth:`_read`."""
        failure: _Failure | None = None
        try:
            await resp.aread()
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc)
        finally:
            await resp.aclose()
        if failure is not None:
            raise self._error(failure, attempts, midstream=True)

    def _lines(self, resp: httpx.Response, attempts: int) -> Generator[str, None, None]:
        """The reply's lines; transport errors become promptkit errors. Closes ``resp``."""
        it = resp.iter_lines()
        try:
            while True:
                failure: _Failure | None = None
                try:
                    line = next(it)
                except StopIteration:
                    return
                except httpx.HTTPError as exc:
                    failure = self._transport_failure(exc)
                except httpx.StreamError as exc:
                    failure = _Failure("dropped", retryable=False, detail=type(exc).__name__)
                if failure is not None:
                    raise self._error(failure, attempts, midstream=True)
                yield line
        finally:
            resp.close()

    async def _alines(self, resp: httpx.Response, attempts: int) -> AsyncGenerator[str, None]:
        """Async twin of :meth:`_lines`."""
        it = resp.aiter_lines()
        try:
            while True:
                failure: _Failure | None = None
                try:
                    line = await it.__anext__()
                except StopAsyncIteration:
                    return
                except httpx.HTTPError as exc:
                    failure = self._transport_failure(exc)
                except httpx.StreamError as exc:
                    failure = _Failure("dropped", retryable=False, detail=type(exc).__name__)
                if failure is not None:
                    raise self._error(failure, attempts, midstream=True)
                yield line
        finally:
            await resp.aclose()

    # ------------------------------------------------------------------ errors

    def _malformed(
        self, reason: str, attempts: int | None, body: str | None = None, status: int | None = None
    ) -> MalformedResponseError:
        return MalformedResponseError(
            f"{self.name} at {_safe_url(self._base_url)}: malformed reply, {reason}. "
            "Check that base_url points at the right kind of server for this backend "
            "and that the server is healthy.",
            status=status,
            backend=self.name,
            attempts=attempts,
            body=_excerpt(body, self._key) if body else None,
        )

    def _stream_error(self, data: Any, attempts: int) -> BackendError:
        """An error the server reported inside a 2xx reply or stream (``{"error": ...}``)."""
        message, code = _server_message(data)
        message = _excerpt(message or json.dumps(data, ensure_ascii=False), self._key, 500)
        failure = _Failure("status", retryable=False, message=message, code=code, body=message)
        if _is_context_error(f"{message} {code}"):
            return self._error(failure, attempts)
        return ServerError(
            f"{self.name} reported an error in its reply: {message}. "
            "Try again; if it persists, check the server logs.",
            backend=self.name,
            attempts=attempts,
            body=message,
        )

    def _auth_hint(self) -> str:
        if self._key is None:
            return "This server wants an API key: pass api_key=... (sent as a Bearer token)."
        return "Check that api_key is valid and has access to this model."

    def _not_found(self, failure: _Failure) -> str:
        return (
            f"Nothing found at {_safe_url(self._base_url)} for this request (404). Check "
            "base_url (OpenAI-compatible servers usually end in /v1) and the model name "
            f"{self.model!r}."
        )

    def _error(self, f: _Failure, attempts: int, *, midstream: bool = False) -> BackendError:
        """The promptkit error for a failure, after ``attempts`` attempts."""
        url = _safe_url(self._base_url)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        said = f' Server said: "{f.message.rstrip(".")}".' if f.message else ""
        kw: dict[str, Any] = {
            "status": f.status,
            "backend": self.name,
            "attempts": attempts,
            "body": f.body,
        }
        if f.kind == "timeout":
            where = " while streaming" if midstream else ""
            return BackendTimeoutError(
                f"{self.name} at {url} did not answer within {self.timeout:g}s{where}{tries} "
                f"({f.detail}). Raise timeout=..., lower max_tokens, or check the server load.",
                **kw,
            )
        if f.kind == "connect":
            return BackendConnectionError(
                f"Could not connect to {self.name} at {url}{tries} ({f.detail}). Check that "
                "the server is running and that base_url is right.",
                **kw,
            )
        if f.kind in ("dropped", "transport"):
            what = "was dropped in the middle of the stream" if midstream else "failed"
            return BackendConnectionError(
                f"The connection to {self.name} at {url} {what}{tries} ({f.detail}). "
                "Try again; if it persists, check the server and any proxy in between.",
                **kw,
            )
        status = f.status or 0
        text = f"{f.message} {f.code} {f.body or ''}"
        if status != 429 and _is_context_error(text):
            return ContextLengthError(
                f"The prompt does not fit the model's context window ({status or 'error'})."
                f"{said} Shorten the prompt, lower max_tokens, or use a model or server "
                "with a longer context.",
                **kw,
            )
        if f.refused:
            brief = _brief(f.message or f.body or "")
            return FeatureRefusedError(
                f"{self.name} at {url} refused {', '.join(f.refused)} ({status}). Server "
                f'said: "{brief.rstrip(".")}". Not retried: LLM calls fall back without it '
                "(per on_unsupported) and remember; otherwise leave it out of the request.",
                features=f.refused,
                reason=brief,
                **kw,
            )
        if f.too_long:
            wait = (
                f"asked to wait {f.retry_after:g}s before a retry ({status}), longer than "
                f"retry_after_max ({self.retry.retry_after_max:g}s), so the call stopped "
                f"at once{tries}.{said}"
            )
            if status == 429:
                return RateLimitError(
                    f"{self.name} {wait} Try again after retry_after seconds (the batch "
                    "runner pauses for it), or raise retry_after_max to wait inside the call.",
                    retry_after=f.retry_after,
                    **kw,
                )
            return ServerError(
                f"{self.name} at {url} {wait} Try again later, or raise retry_after_max.",
                **kw,
            )
        if status == 408:
            return BackendTimeoutError(
                f"{self.name} at {url} timed out the request (408){tries}.{said} Try again "
                "later, lower max_tokens, or check the server load.",
                **kw,
            )
        if status in (401, 403):
            return AuthenticationError(
                f"{self.name} at {url} refused the credentials ({status}).{said} "
                f"{self._auth_hint()}",
                **kw,
            )
        if status == 429:
            if "insufficient_quota" in text:
                return RateLimitError(
                    f"{self.name}: the account's quota is used up (429).{said} Check your "
                    "plan and billing; retrying will not help.",
                    retry_after=f.retry_after,
                    **kw,
                )
            return RateLimitError(
                f"{self.name} is rate limiting requests (429){tries}.{said} Send fewer "
                "requests at once (lower max_concurrency), raise max_retries, or check your "
                "rate limits.",
                retry_after=f.retry_after,
                **kw,
            )
        if status >= 500 and _is_no_embeddings(text):
            return ServerError(
                f"{self.name} at {url} does not serve embeddings ({status}).{said} Start "
                "llama.cpp's llama-server with --embeddings (llama-cpp-python's server: "
                "--embedding true), or embed with a server or model that has embeddings.",
                **kw,
            )
        if status == 501:
            return ServerError(
                f"{self.name} at {url} does not implement this request (501).{said} Not "
                "retried: use a server, endpoint or option that has it.",
                **kw,
            )
        if status >= 500:
            return ServerError(
                f"{self.name} at {url} failed with {status}{tries}.{said} Try again later; "
                "if it persists, check the server logs.",
                **kw,
            )
        if status == 404:
            return BadRequestError(self._not_found(f) + said, **kw)
        if status == 409:
            return BadRequestError(
                f"{self.name} at {url} reported a conflict (409){tries}.{said} Another "
                "request probably holds the resource: try again later.",
                **kw,
            )
        if 300 <= status < 400:
            return BadRequestError(
                f"{self.name} at {url} redirected the request ({status}). Set base_url to "
                "the final address of the API.",
                **kw,
            )
        return BadRequestError(
            f"{self.name} rejected the request ({status}).{said} Check the parameters and "
            "extra fields it accepts (Completion.params_sent shows what is sent).",
            **kw,
        )
