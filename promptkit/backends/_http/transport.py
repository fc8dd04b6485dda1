"""The HTTP transport: pooled httpx clients, one request with retries, and reading
replies and streams. :class:`HTTPBackend` is the base class of the HTTP backends; its
options are one :class:`HTTPOptions`, and a wire format plugs in through :meth:`_body`,
which returns a :class:`Body`."""

from __future__ import annotations

import asyncio
import difflib
import ssl
import threading
import time
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

import httpx
import tenacity

from ..._errors import ConfigurationError, MalformedResponseError
from ..._secret import Secret
from ..._telemetry import retried
from ..._types import Completion, Embeddings, Request
from .._base import Backend
from .codec import _MISSING, loads
from .errors import ErrorMapping, Failure, _is_html, safe_url
from .retry import RetryPolicy

__all__ = ["Body", "HTTPBackend", "HTTPOptions"]


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


class Body(NamedTuple):
    """What a wire format builds for one request (:meth:`HTTPBackend._body`)."""

    #: Where the request goes.
    url: httpx.URL
    #: The JSON body, encoded (:func:`~promptkit.backends._http.dumps`).
    content: bytes
    #: Chat endpoint (``messages``) rather than the completion endpoint (``prompt``).
    chat: bool
    #: The sampling parameters as sent, under their wire names.
    sent: dict[str, Any]
    #: promptkit name -> wire name, for the parameters that were renamed.
    renamed: dict[str, str]


@dataclass(frozen=True)
class HTTPOptions:
    """The transport options every HTTP backend takes, validated once.

    The backends' constructors take them as keyword arguments (``OpenAIBackend(timeout=5,
    max_retries=0)``, ``connect(...)``, ``promptkit.toml``); the backend keeps them as
    ``backend.http``.

    >>> HTTPOptions(base_url="http://127.0.0.1:8080/v1/", timeout=5).base_url
    'http://127.0.0.1:8080/v1'
    >>> HTTPOptions(base_url="127.0.0.1:8080")
    Traceback (most recent call last):
    ...
    promptkit._errors.ConfigurationError: base_url='127.0.0.1:8080' is not an http(s) URL: ...

    - ``base_url``: the server's address (``http(s)://host[:port]/path``).
    - ``api_key``: sent as ``Authorization: Bearer``; kept in a
      :class:`~promptkit._secret.Secret`, never shown in reprs or errors.
    - ``timeout``: seconds to wait for the server (connect, and between bytes read).
    - ``headers``: extra HTTP headers for every request (not ``Authorization``).
    - ``max_retries``, ``retry_base_delay``, ``retry_max_delay``, ``retry_after_max``,
      ``retry_total_timeout``: see :class:`~promptkit.backends._http.RetryPolicy`.
    """

    base_url: str
    api_key: Secret | None = None
    timeout: float = 60.0
    max_retries: int = 3
    headers: Mapping[str, str] | None = None
    retry_base_delay: float = 0.5
    retry_max_delay: float = 8.0
    retry_after_max: float = 60.0
    retry_total_timeout: float = 120.0
    #: An example address for error messages (the backend's default).
    example_url: str = "http://127.0.0.1:8080/v1"

    def __post_init__(self) -> None:
        url = self.base_url.strip().rstrip("/")
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigurationError(
                f"base_url={safe_url(url)!r} is not an http(s) URL: pass the server's "
                f"address, e.g. {self.example_url!r}."
            )
        timeout = self.timeout
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(f"timeout={timeout!r}: expected a number of seconds > 0.")
        max_retries = self.max_retries
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries={max_retries!r}: expected a whole number >= 0.")
        for opt, val in (
            ("retry_base_delay", self.retry_base_delay),
            ("retry_max_delay", self.retry_max_delay),
            ("retry_after_max", self.retry_after_max),
            ("retry_total_timeout", self.retry_total_timeout),
        ):
            if not isinstance(val, (int, float)) or val < 0:
                raise ConfigurationError(f"{opt}={val!r}: expected a number of seconds >= 0.")
        for k in self.headers or {}:
            if k.lower() == "authorization":
                raise ConfigurationError(
                    "Pass the API key as api_key=..., not as an Authorization header."
                )
        object.__setattr__(self, "base_url", url)
        object.__setattr__(self, "timeout", float(timeout))

    def retry_policy(self) -> RetryPolicy:
        """The :class:`RetryPolicy` these options describe."""
        return RetryPolicy(
            max_retries=self.max_retries,
            base_delay=float(self.retry_base_delay),
            max_delay=float(self.retry_max_delay),
            retry_after_max=float(self.retry_after_max),
            total_timeout=float(self.retry_total_timeout),
        )

    def http_headers(self) -> httpx.Headers:
        """The headers of every request: JSON, the user agent, the key, ``headers``."""
        hdrs = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "promptkit",
        }
        if self.api_key is not None:
            hdrs["Authorization"] = f"Bearer {self.api_key.get()}"
        hdrs.update(self.headers or {})
        return httpx.Headers(hdrs)  # its repr masks Authorization

    def __repr__(self) -> str:
        return (
            f"HTTPOptions(base_url={safe_url(self.base_url)!r}, "
            f"api_key={'***' if self.api_key else None}, timeout={self.timeout:g}, "
            f"max_retries={self.max_retries})"
        )


class HTTPBackend(Backend, ErrorMapping):
    """Base class of the backends that talk to a server over HTTP.

    Subclasses set ``default_base_url`` and build bodies / parse replies (:meth:`_body`
    and :meth:`_completion`; :meth:`_embed_body` and :meth:`_embeddings` with
    ``_embed_url`` for embeddings; ``stream``/``astream``); this class sends them
    (:meth:`_send`, :meth:`_asend`: ``complete``, ``acomplete``, ``embed`` and ``aembed``
    are here) and maps failures to promptkit errors.

    Options shared by every HTTP backend, declared here once (subclasses take them as
    ``**options`` and pass them on) and kept as one :class:`HTTPOptions` in
    ``backend.http``:

    - ``base_url``, ``api_key``.
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
        self.http = HTTPOptions(
            base_url=base_url or self.default_base_url,
            api_key=Secret(api_key) if api_key else None,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
            retry_after_max=retry_after_max,
            retry_total_timeout=retry_total_timeout,
            example_url=self.default_base_url,
        )
        self.model = model or ""
        self._base_url = self.http.base_url
        self._key = self.http.api_key
        self.timeout = self.http.timeout
        self.retry = self.http.retry_policy()
        self._headers = self.http.http_headers()
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
            f"<{type(self).__name__} model={self.model!r} base_url={safe_url(self._base_url)!r}>"
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
        body = self._body(request, False)
        resp, attempts = self._send(body.url, body.content, request.timeout)
        data = self._json(resp, attempts)
        return self._completion(data, body.chat, body.sent, body.renamed, attempts)

    async def acomplete(self, request: Request) -> Completion:
        body = self._body(request, False)
        resp, attempts = await self._asend(body.url, body.content, request.timeout)
        data = self._json(resp, attempts)
        return self._completion(data, body.chat, body.sent, body.renamed, attempts)

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

    def _body(self, request: Request, stream: bool) -> Body:
        """The :class:`Body` for ``request``: url, JSON body, chat?, params as sent,
        renames applied."""
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

    def _attempt(
        self, url: httpx.URL, content: bytes, timeout: float | None, stream: bool
    ) -> httpx.Response:
        client = self._client or self._sync_client()
        failure: Failure | None = None
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
        failure: Failure | None = None
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
        first: Failure
        try:
            return self._attempt(url, content, timeout, stream), 1
        except Failure as failure:
            first = failure
        if not first.retryable or self.retry.max_retries == 0:
            raise self._error(first, 1)
        pending: Failure | None = first
        last: Failure = first
        attempts = 0
        retrying = tenacity.Retrying(sleep=self.retry.sleep, **self.retry.tenacity_options(started))
        try:
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    if pending is not None:  # the first attempt, already made
                        failed, pending = pending, None
                        raise failed
                    retried(attempts, attempt.retry_state.idle_for)  # a span event
                    return self._attempt(url, content, timeout, stream), attempts
        except tenacity.RetryError as exc:
            got = exc.last_attempt.exception()
            if isinstance(got, Failure):
                last = got
        except Failure as failure:
            last = failure
        raise self._error(last, attempts)

    async def _asend(
        self, url: httpx.URL, content: bytes, timeout: float | None, stream: bool = False
    ) -> tuple[httpx.Response, int]:
        """Async twin of :meth:`_send`."""
        started = time.monotonic()
        first: Failure
        try:
            return await self._aattempt(url, content, timeout, stream), 1
        except Failure as failure:
            first = failure
        if not first.retryable or self.retry.max_retries == 0:
            raise self._error(first, 1)
        pending: Failure | None = first
        last: Failure = first
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
                    retried(attempts, attempt.retry_state.idle_for)  # a span event
                    return await self._aattempt(url, content, timeout, stream), attempts
        except tenacity.RetryError as exc:
            got = exc.last_attempt.exception()
            if isinstance(got, Failure):
                last = got
        except Failure as failure:
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
        failure: Failure | None = None
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
        failure: Failure | None = None
        try:
            await resp.aread()
        except httpx.HTTPError as exc:
            failure = self._transport_failure(exc)
        finally:
            await resp.aclose()
        if failure is not None:
            raise self._error(failure, attempts, midstream=True)

    def _line_failure(self, exc: Exception) -> Failure | None:
        """The failure an error raised while reading a stream's lines stands for (``None``:
        not a transport error, raised as it is). Backends on another HTTP stack override it."""
        if isinstance(exc, httpx.StreamError):
            return Failure("dropped", retryable=False, detail=type(exc).__name__)
        if isinstance(exc, httpx.HTTPError):
            return self._transport_failure(exc)
        return None

    def _lines(self, resp: httpx.Response, attempts: int) -> Generator[str, None, None]:
        """The reply's lines; transport errors become promptkit errors. Closes ``resp``."""
        it = resp.iter_lines()
        try:
            while True:
                failure: Failure | None = None
                try:
                    line = next(it)
                except StopIteration:
                    return
                except Exception as exc:
                    failure = self._line_failure(exc)
                    if failure is None:
                        raise
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
                failure: Failure | None = None
                try:
                    line = await it.__anext__()
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    failure = self._line_failure(exc)
                    if failure is None:
                        raise
                if failure is not None:
                    raise self._error(failure, attempts, midstream=True)
                yield line
        finally:
            await resp.aclose()
