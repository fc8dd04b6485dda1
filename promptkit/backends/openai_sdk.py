"""Bring your own OpenAI client: the official ``openai`` SDK as a backend, Azure included.

:class:`OpenAISDKBackend` sends every request through a user's ``openai.OpenAI`` /
``AsyncOpenAI`` client (or ``AzureOpenAI`` / ``AsyncAzureOpenAI``), so whatever that client
carries is used as is: its base URL, API key or Entra ID token provider, organisation and
project headers, proxies and custom ``http_client``. :class:`AzureOpenAIBackend` builds the
Azure clients from promptkit settings (``connect("azure", ...)``).

Everything else is the built-in :class:`~promptkit.backends.openai.OpenAIBackend`'s: the
same request bodies (:meth:`~promptkit.backends.openai.OpenAIBackend.build_body`), the
same reading of replies (from the SDK's raw HTTP response, without its pydantic models),
the same retries and the same typed errors. So a Completion is the same whichever of the
two backends made it, and the SDK's parsing quirks (a ``str`` for a ``text/html`` 200, a
bare ``json.JSONDecodeError`` on malformed JSON) never reach you: those replies, and one
with an empty ``choices`` list, raise :class:`~promptkit.MalformedResponseError`.

One retry layer. By default promptkit retries (``max_retries`` and the other
:class:`~promptkit.backends._http.RetryPolicy` options) and the SDK is called through
``client.with_options(max_retries=0)``. With ``retries="sdk"`` the client's own retry
settings apply and promptkit makes one attempt. Never both.

``openai`` is imported only by the code that builds or maps its objects; ``import
promptkit`` never imports it (``pip install "promptkit[openai]"``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any, ClassVar, Literal, cast
from urllib.parse import urlsplit

import httpx

from .._errors import BackendError, ConfigurationError, ContentFilteredError
from .._types import Completion, Delta, Embeddings, Request
from ._http import Failure, excerpt, safe_url
from .openai import OpenAIBackend

__all__ = ["AzureOpenAIBackend", "OpenAISDKBackend"]

RetryOwner = Literal["promptkit", "sdk"]

#: Azure's answer when its content filter refuses a prompt (a 400 with this code).
_CONTENT_FILTER_CODES = ("content_filter", "responsibleaipolicyviolation")


def _openai() -> Any:
    try:
        import openai
    except ImportError:
        raise ConfigurationError(
            'This backend needs the openai package: pip install "promptkit[openai]".'
        ) from None
    return openai


def _is_async(client: Any) -> bool:
    openai = _openai()
    return isinstance(client, openai.AsyncOpenAI)


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _is_http_error(exc: BaseException) -> bool:
    """An error of the HTTP library under the SDK (httpx, or httpx2 for openai >= 3)."""
    module = type(exc).__module__.partition(".")[0]
    return module.startswith("httpx") and bool(_names(exc) & {"HTTPError", "StreamError"})


#: The HTTPOptions fields that configure promptkit's retries (not the SDK client's).
_RETRY_OPTIONS = ("retry_base_delay", "retry_max_delay", "retry_after_max", "retry_total_timeout")


class OpenAISDKBackend(OpenAIBackend):
    """The OpenAI API (or a compatible server) through the official ``openai`` SDK.

    Wrap a client you already have (sync, async, or one of each)::

        import openai, promptkit as pk

        llm = pk.connect(client=openai.OpenAI(), model="gpt-4o-mini")
        llm = pk.connect(client=openai.OpenAI(), async_client=openai.AsyncOpenAI(),
                         model="gpt-4o-mini")

    or let promptkit build the clients: ``pk.connect("openai-sdk", model=..., base_url=...,
    api_key=...)`` (settings from ``promptkit.toml`` and ``PROMPTKIT_*`` variables as for
    every backend, then ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` as for ``openai``).

    >>> OpenAISDKBackend(model="m", base_url="http://127.0.0.1:8080/v1")
    <OpenAISDKBackend model='m' base_url='http://127.0.0.1:8080/v1'>

    Options beyond :class:`~promptkit.backends.openai.OpenAIBackend`'s:

    - ``client``: an ``OpenAI``/``AzureOpenAI`` or ``AsyncOpenAI``/``AsyncAzureOpenAI``;
      ``async_client``: the async one, when ``client`` is the sync one. With only a sync
      client, async calls run it in worker threads; with only an async client, sync calls
      raise :class:`~promptkit.ConfigurationError`. ``base_url``, ``api_key`` and
      ``headers`` belong to the client then, and are refused here.
    - ``retries``: ``"promptkit"`` (default: promptkit's retry policy, the SDK called with
      ``max_retries=0``) or ``"sdk"`` (the client's own ``max_retries``, or ``max_retries``
      for a client promptkit builds; promptkit makes one attempt).
    - ``organization``, ``project``: for the clients promptkit builds.

    ``model`` is sent as the body's ``model`` (on Azure: the deployment name).
    """

    name: ClassVar[str] = "openai-sdk"

    def __init__(
        self,
        *,
        client: Any = None,
        async_client: Any = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        retries: RetryOwner = "promptkit",
        timeout: float = 60,
        max_retries: int = 3,
        headers: Mapping[str, str] | None = None,
        extra_params: Iterable[str] | None = None,
        stream_usage: bool | None = None,
        embedding_model: str | None = None,
        **options: Any,
    ) -> None:
        # promptkit's retry policy (retry_base_delay, ...: HTTPOptions) goes to the base class
        policy = {k: options.pop(k) for k in _RETRY_OPTIONS if k in options}
        if retries not in ("promptkit", "sdk"):
            raise ConfigurationError(f"retries={retries!r}: expected 'promptkit' or 'sdk'.")
        self.retries: RetryOwner = retries
        #: the max_retries of the clients promptkit builds (the SDK retries only if told to)
        self._client_retries = max_retries if retries == "sdk" else 0
        self._own_clients = client is None and async_client is None
        if self._own_clients:
            client = self._build_client(
                False, base_url, api_key, organization, project, timeout, headers, options
            )
        else:
            given = {"base_url": base_url, "api_key": api_key, "headers": headers}
            clashes = [k for k, v in given.items() if v is not None]
            if clashes or organization or project:
                raise ConfigurationError(
                    f"{', '.join(clashes + ['organization'] * bool(organization))}"
                    f"{', project' if project else ''}: these belong to the openai client "
                    "passed as client=...; set them when you create it, not here."
                )
            if options:
                self._reject_options(options)
        sync, aio = self._sort_clients(client, async_client)
        first = sync if sync is not None else aio
        url = str(first.base_url).rstrip("/")
        key = first.api_key if isinstance(first.api_key, str) and first.api_key else None
        super().__init__(
            model=model,
            base_url=url,
            api_key=key,
            timeout=self._client_timeout(first, timeout),
            max_retries=0 if retries == "sdk" else max_retries,
            extra_params=extra_params,
            stream_usage=stream_usage,
            embedding_model=embedding_model,
            **policy,
        )
        self._settings = (base_url, api_key, organization, project, timeout, headers, options)
        self._sdk = sync if self._own_clients else self._no_retries(sync)
        self._asdk = aio if self._own_clients else self._no_retries(aio)
        self._asdk_loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ clients

    def _build_client(
        self,
        is_async: bool,
        base_url: str | None,
        api_key: str | None,
        organization: str | None,
        project: str | None,
        timeout: float,
        headers: Mapping[str, str] | None,
        options: Mapping[str, Any],
    ) -> Any:
        """An ``OpenAI`` (or ``AsyncOpenAI``) client from promptkit settings."""
        openai = _openai()
        if options:
            self._reject_options(options)
        url = (base_url or os.environ.get("OPENAI_BASE_URL") or self.default_base_url).rstrip("/")
        official = urlsplit(url).hostname == "api.openai.com"
        key = api_key or (os.environ.get("OPENAI_API_KEY") if official else None)
        if not key and official:
            raise ConfigurationError(
                "No API key for the OpenAI API: set the OPENAI_API_KEY environment variable "
                "or pass api_key=... (for a local OpenAI-compatible server, pass its base_url)."
            )
        cls = openai.AsyncOpenAI if is_async else openai.OpenAI
        return cls(
            base_url=url,
            # a local server without a key: the SDK insists on one, the server ignores it
            api_key=key or "no-key",
            organization=organization,
            project=project,
            timeout=timeout,
            max_retries=self._client_retries,
            default_headers=dict(headers) if headers else None,
        )

    def _sort_clients(self, client: Any, async_client: Any) -> tuple[Any, Any]:
        """(sync client or None, async client or None)."""
        openai = _openai()
        sync: Any = None
        aio: Any = None
        for arg, value in (("client", client), ("async_client", async_client)):
            if value is None:
                continue
            if isinstance(value, openai.AsyncOpenAI):
                if aio is not None:
                    raise ConfigurationError("Two async clients given: pass one sync, one async.")
                aio = value
            elif isinstance(value, openai.OpenAI):
                if sync is not None:
                    raise ConfigurationError("Two sync clients given: pass one sync, one async.")
                sync = value
            else:
                raise ConfigurationError(
                    f"{arg}={type(value).__name__}: expected an openai.OpenAI, AsyncOpenAI, "
                    "AzureOpenAI or AsyncAzureOpenAI client."
                )
        return sync, aio

    @staticmethod
    def _client_timeout(client: Any, default: float) -> float:
        value = client.timeout
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
        read = getattr(value, "read", None)
        return float(read) if isinstance(read, (int, float)) and read > 0 else default

    def _no_retries(self, client: Any) -> Any:
        if client is None or self.retries == "sdk":
            return client
        return client.with_options(max_retries=0)

    def _sync_sdk(self) -> Any:
        if self._sdk is None:
            raise ConfigurationError(
                f"The {self.name} backend holds only an async openai client, so it cannot "
                "make sync calls (complete, stream, embed). Use the async ones (acomplete, "
                "astream, aembed), or pass a sync client too: client=..., async_client=...."
            )
        return self._sdk

    def _async_sdk(self) -> Any:
        if self._own_clients:
            loop = asyncio.get_running_loop()
            if self._asdk is None or self._asdk_loop is not loop:
                # its pooled connections belong to the loop that opened them
                self._asdk = self._build_client(True, *self._settings)
                self._asdk_loop = loop
        return self._asdk

    @property
    def client(self) -> Any:
        """The sync openai client requests go through (``None`` if only async)."""
        return self._sdk

    @property
    def async_client(self) -> Any:
        """The async openai client requests go through (``None`` until built or given)."""
        return self._asdk

    def close(self) -> None:
        """Close the clients promptkit built (a client you passed stays yours to close)."""
        if self._own_clients and self._sdk is not None:
            self._sdk.close()

    async def aclose(self) -> None:
        if self._own_clients and self._asdk is not None:
            await self._asdk.close()
            self._asdk = None
        self.close()

    # ------------------------------------------------------------------ one attempt

    def _call(
        self, client: Any, url: httpx.URL, content: bytes, timeout: float | None
    ) -> tuple[Any, dict[str, Any]]:
        """(create, kwargs): the SDK's raw-response ``create`` for this body."""
        openai = _openai()
        body: dict[str, Any] = json.loads(content)
        if url == self._chat_url:
            resource, required = client.chat.completions, ("model", "messages")
        elif url == self._text_url:
            resource, required = client.completions, ("model", "prompt")
        elif url == self._embed_url:
            resource, required = client.embeddings, ("model", "input")
            # the SDK may ask for base64 by default; promptkit reads floats
            body.setdefault("encoding_format", "float")
        else:  # pragma: no cover - every body comes from the three above
            raise ConfigurationError(f"{self.name}: no SDK call for {url}.")
        kwargs: dict[str, Any] = {k: body.pop(k, openai.NOT_GIVEN) for k in required}
        if body.pop("stream", False):
            kwargs["stream"] = True
        if body:
            kwargs["extra_body"] = body
        if timeout is not None:
            kwargs["timeout"] = timeout
        return resource.with_raw_response.create, kwargs

    def _attempt(
        self, url: httpx.URL, content: bytes, timeout: float | None, stream: bool
    ) -> httpx.Response:
        create, kwargs = self._call(self._sync_sdk(), url, content, timeout)
        failure: BaseException | None = None
        try:
            raw = create(**kwargs)
        except Exception as exc:
            failure = self._sdk_failure(exc, content)
        if failure is not None:
            raise failure
        return self._response(raw)

    async def _aattempt(
        self, url: httpx.URL, content: bytes, timeout: float | None, stream: bool
    ) -> httpx.Response:
        create, kwargs = self._call(self._async_sdk(), url, content, timeout)
        failure: BaseException | None = None
        try:
            raw = await create(**kwargs)
        except Exception as exc:
            failure = self._sdk_failure(exc, content)
        if failure is not None:
            raise failure
        return self._response(raw)

    def _response(self, raw: Any) -> httpx.Response:
        """The HTTP response under the SDK's raw-response wrapper. Anything else (a ``str``,
        which the SDK makes of a non-JSON reply when it parses) is a malformed reply."""
        resp = getattr(raw, "http_response", None)
        if resp is None:
            raise self._malformed(
                f"the SDK returned a {type(raw).__name__} instead of the HTTP response",
                1,
                raw if isinstance(raw, str) else None,
            )
        return cast(httpx.Response, resp)

    def _sdk_failure(self, exc: Exception, content: bytes = b"") -> BaseException:
        """The promptkit failure (a retryable ``Failure`` or a promptkit error) for an
        exception the SDK raised on the request body ``content`` (read for the features a
        server refuses by name). No SDK or httpx object is kept (their requests carry the
        credentials)."""
        openai = _openai()
        if isinstance(exc, openai.APIStatusError):
            return self._status_failure(exc.response, content)
        if isinstance(exc, openai.APITimeoutError):
            return Failure("timeout", retryable=True, detail="APITimeoutError")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            detail = type(cause).__name__ if cause is not None else type(exc).__name__
            if cause is not None and _names(cause) & {"TimeoutException"}:
                return Failure("timeout", retryable=True, detail=detail)
            kind = "connect" if cause is None or "ConnectError" in _names(cause) else "dropped"
            return Failure(kind, retryable=True, detail=detail)
        if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError)):
            return self._malformed(f"the SDK could not read it ({type(exc).__name__})", 1)
        if isinstance(exc, openai.OpenAIError):
            return ConfigurationError(
                f"The openai client refused to send the request: "
                f"{excerpt(str(exc), self._key, 500)} Check how the client was created "
                "(credentials, api_version, endpoint)."
            )
        if _is_http_error(exc):
            return self._transport_failure(exc)
        return exc

    def _transport_failure(self, exc: Exception) -> Failure:
        """httpx's or httpx2's errors, by class name (the SDK may use either)."""
        names = _names(exc)
        detail = type(exc).__name__
        if "TimeoutException" in names:
            return Failure("timeout", retryable=True, detail=detail)
        if "ConnectError" in names:
            return Failure("connect", retryable=True, detail=detail)
        if names & {"RemoteProtocolError", "NetworkError"}:
            return Failure("dropped", retryable=True, detail=detail)
        return Failure("transport", retryable=False, detail=detail)

    def _error(self, f: Failure, attempts: int, *, midstream: bool = False) -> BackendError:
        text = f"{f.code} {f.message} {f.body or ''}".lower()
        if f.status == 400 and any(code in text for code in _CONTENT_FILTER_CODES):
            said = f' Server said: "{f.message.rstrip(".")}".' if f.message else ""
            return ContentFilteredError(
                f"{self.name} at {safe_url(self.base_url)} withheld the reply: its content "
                f"filter blocked the prompt (400).{said} Rephrase the prompt or the input.",
                status=f.status,
                backend=self.name,
                attempts=attempts,
                body=f.body,
            )
        return super()._error(f, attempts, midstream=midstream)

    # ------------------------------------------------------------------ reading replies

    def _read(self, resp: httpx.Response, attempts: int) -> None:
        failure: BaseException | None = None
        try:
            resp.read()
        except Exception as exc:
            failure = self._sdk_failure(exc)
        finally:
            resp.close()
        if isinstance(failure, Failure):
            raise self._error(failure, attempts, midstream=True)
        if failure is not None:
            raise failure

    async def _aread(self, resp: httpx.Response, attempts: int) -> None:
        failure: BaseException | None = None
        try:
            await resp.aread()
        except Exception as exc:
            failure = self._sdk_failure(exc)
        finally:
            await resp.aclose()
        if isinstance(failure, Failure):
            raise self._error(failure, attempts, midstream=True)
        if failure is not None:
            raise failure

    def _line_failure(self, exc: Exception) -> Failure | None:
        """httpx's or httpx2's stream errors, by class name (the SDK may use either)."""
        if not _is_http_error(exc):
            return None
        if "StreamError" in _names(exc):
            return Failure("dropped", retryable=False, detail=type(exc).__name__)
        return self._transport_failure(exc)

    # ------------------------------------------------------------------ async, sync client only

    async def acomplete(self, request: Request) -> Completion:
        if self._asdk is None and not self._own_clients:
            return await asyncio.to_thread(self.complete, request)
        return await super().acomplete(request)

    async def aembed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        if self._asdk is None and not self._own_clients:
            return await asyncio.to_thread(self.embed, texts, timeout=timeout)
        return await super().aembed(texts, timeout=timeout)

    async def astream(self, request: Request) -> AsyncIterator[Delta]:
        if self._asdk is None and not self._own_clients:
            it = self.stream(request)
            end = object()
            step: Callable[[], Any] = lambda: next(it, end)  # noqa: E731
            while True:
                item = await asyncio.to_thread(step)
                if item is end:
                    return
                yield item
        else:
            async for delta in super().astream(request):
                yield delta


class AzureOpenAIBackend(OpenAISDKBackend):
    """Azure OpenAI through the ``openai`` SDK's ``AzureOpenAI`` clients.

    ``model`` is the *deployment* name (it goes in the URL,
    ``{endpoint}/openai/deployments/{model}/chat/completions``); ``embedding_model`` the
    embedding deployment's. ``base_url`` is the resource endpoint
    (``https://NAME.openai.azure.com``). Authenticate with ``api_key`` (sent as the
    ``api-key`` header) or ``azure_ad_token_provider`` (a callable returning an Entra ID
    token, called for each request)::

        llm = pk.connect("azure", model="gpt-4o-prod", base_url="https://x.openai.azure.com",
                         api_version="2024-10-21", azure_ad_token_provider=get_token)

    Unset settings come from ``PROMPTKIT_*``, ``promptkit.toml`` and then
    ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``, ``AZURE_OPENAI_DEPLOYMENT`` and
    ``AZURE_OPENAI_API_VERSION`` (or the SDK's ``OPENAI_API_VERSION``). Or wrap your own
    client: ``pk.connect(client=openai.AzureOpenAI(...), model="gpt-4o-prod")``.

    >>> AzureOpenAIBackend(model="dep", base_url="https://x.openai.azure.com",
    ...                    api_key="k", api_version="2024-10-21")
    <AzureOpenAIBackend model='dep' base_url='https://x.openai.azure.com/openai'>
    """

    name: ClassVar[str] = "azure"
    default_base_url: ClassVar[str] = ""
    default_stream_usage: ClassVar[bool | None] = False

    def __init__(
        self,
        *,
        client: Any = None,
        async_client: Any = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        api_version: str | None = None,
        azure_ad_token_provider: Callable[[], Any] | None = None,
        **options: Any,
    ) -> None:
        if client is None and async_client is None:
            api_version = (
                api_version
                or os.environ.get("AZURE_OPENAI_API_VERSION")
                or os.environ.get("OPENAI_API_VERSION")
            )
            if not api_version:
                raise ConfigurationError(
                    "Azure OpenAI needs an api_version: pass api_version=... (e.g. "
                    "'2024-10-21'), put it in promptkit.toml, or set AZURE_OPENAI_API_VERSION."
                )
            endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT")
            base_url = base_url or endpoint
            if not base_url:
                raise ConfigurationError(
                    "Azure OpenAI needs the resource endpoint: pass base_url=... (e.g. "
                    "'https://NAME.openai.azure.com') or set AZURE_OPENAI_ENDPOINT."
                )
            if not api_key and azure_ad_token_provider is None and base_url == endpoint:
                # the key of AZURE_OPENAI_ENDPOINT goes to that endpoint only
                api_key = os.environ.get("AZURE_OPENAI_API_KEY")
            if not api_key and azure_ad_token_provider is None:
                raise ConfigurationError(
                    "Azure OpenAI needs credentials: an api_key (or AZURE_OPENAI_API_KEY), or "
                    "azure_ad_token_provider=... (a callable returning an Entra ID token)."
                )
            options["_azure"] = (api_version, azure_ad_token_provider)
        elif api_version or azure_ad_token_provider:
            raise ConfigurationError(
                "api_version and azure_ad_token_provider belong to the openai client passed "
                "as client=...; set them when you create it."
            )
        if not model:
            raise ConfigurationError(
                "Azure OpenAI needs a deployment: pass model='<deployment name>' (or set "
                "AZURE_OPENAI_DEPLOYMENT)."
            )
        super().__init__(
            client=client,
            async_client=async_client,
            model=model,
            base_url=base_url,
            api_key=api_key,
            **options,
        )

    def _build_client(
        self,
        is_async: bool,
        base_url: str | None,
        api_key: str | None,
        organization: str | None,
        project: str | None,
        timeout: float,
        headers: Mapping[str, str] | None,
        options: Mapping[str, Any],
    ) -> Any:
        openai = _openai()
        rest = dict(options)
        api_version, provider = rest.pop("_azure")
        if rest:
            self._reject_options(rest)
        cls = openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI
        return cls(
            azure_endpoint=(base_url or "").rstrip("/"),
            api_key=api_key,
            api_version=api_version,
            azure_ad_token_provider=provider,
            organization=organization,
            project=project,
            timeout=timeout,
            max_retries=self._client_retries,
            default_headers=dict(headers) if headers else None,
        )

    def _auth_hint(self) -> str:
        return (
            "Check the api_key (AZURE_OPENAI_API_KEY) or the token the "
            "azure_ad_token_provider returns, and that it has access to deployment "
            f"{self.model!r}."
        )

    def _not_found(self, failure: Any) -> str:
        return (
            f"Nothing found at {safe_url(self.base_url)} for deployment {self.model!r} "
            "(404). Check the deployment name (model=...), the endpoint and api_version."
        )
