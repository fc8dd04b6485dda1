"""Every fault an HTTP backend can meet: retries, backoff, and the promptkit error it becomes.

Waiting is replaced by recording sleep functions, so these tests take no real time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from retry_helpers import BASE, OK, Sleeps
from retry_helpers import make as make_backend

from promptkit._client import LLM
from promptkit._errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ContentFilteredError,
    ContextLengthError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
    TruncatedError,
)
from promptkit.backends._http import HTTPBackend, RetryPolicy
from promptkit.backends.ollama import OllamaBackend
from promptkit.backends.openai import LlamaServerBackend, OpenAIBackend
from promptkit.backends.vllm import VLLMBackend

URL = BASE + "/chat/completions"
KEY = "sk-proj-SECRETSECRETSECRET0123456789"

@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE) as router:
        yield router


def make(cls: type[HTTPBackend] = OpenAIBackend, **kw: Any) -> tuple[HTTPBackend, Sleeps]:
    kw.setdefault("retry_base_delay", 0)
    return make_backend(cls, **kw)


def responses(*items: httpx.Response | Exception) -> Any:
    """A respx side effect replaying ``items`` in order."""
    seq = list(items)

    def effect(request: httpx.Request) -> httpx.Response:
        item = seq.pop(0) if len(seq) > 1 else seq[0]
        if isinstance(item, Exception):
            raise item
        return item

    return effect


def no_httpx_in_chain(exc: BaseException) -> None:
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        assert not isinstance(seen, (httpx.HTTPError, json.JSONDecodeError)), repr(seen)
        seen = seen.__cause__ or seen.__context__


# --------------------------------------------------------------------------- retry policy


def test_policy_backoff_is_exponential_with_jitter_and_capped() -> None:
    p = RetryPolicy(base_delay=1.0, max_delay=5.0, retry_after_max=60)
    for attempt, full in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)):
        for _ in range(20):
            assert full / 2 <= p.delay(attempt, None) <= full
    assert p.delay(1, 7.0) == 7.0
    assert p.delay(1, 3600.0) == 60.0


def test_429_with_retry_after_then_success(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(
                429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "2"}
            ),
            httpx.Response(200, json=OK),
        )
    )
    backend, sleeps = make()
    assert LLM(backend).complete("x").text == "ok"
    assert route.call_count == 2
    assert sleeps.waits == [2.0]


def test_retry_after_beyond_the_cap_is_not_waited_for(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(429, headers={"Retry-After": "3600"}),
            httpx.Response(200, json=OK),
        )
    )
    backend, sleeps = make(retry_after_max=5)
    with pytest.raises(RateLimitError, match="retry_after_max") as info:
        LLM(backend).complete("x")
    assert route.call_count == 1 and sleeps.waits == []
    assert info.value.retry_after == 3600.0


def test_retry_after_http_date_and_ms(mock: respx.MockRouter) -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(503, headers={"Retry-After": when}),
            httpx.Response(429, headers={"retry-after-ms": "250"}),
            httpx.Response(200, json=OK),
        )
    )
    backend, sleeps = make()
    LLM(backend).complete("x")
    assert 25 <= sleeps.waits[0] <= 30
    assert sleeps.waits[1] == 0.25


def test_retry_after_real_wait_is_honoured(mock: respx.MockRouter) -> None:
    import time

    mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(429, headers={"Retry-After": "0.05"}), httpx.Response(200, json=OK)
        )
    )
    backend = OpenAIBackend(model="m", base_url=BASE, retry_after_max=1)
    start = time.perf_counter()
    LLM(backend).complete("x")
    assert 0.05 <= time.perf_counter() - start < 1.0


def test_429_exhausted_is_rate_limit_error(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(429, json={"error": {"message": "busy"}})
    backend, sleeps = make(max_retries=2)
    with pytest.raises(RateLimitError, match="busy") as info:
        LLM(backend).complete("x")
    assert info.value.attempts == 3 and info.value.status == 429
    assert route.call_count == 3 and len(sleeps.waits) == 2


def test_insufficient_quota_is_not_retried(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        429, json={"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}
    )
    backend, _ = make()
    with pytest.raises(RateLimitError, match="billing"):
        LLM(backend).complete("x")
    assert route.call_count == 1


def test_rate_limit_error_carries_the_last_retry_after(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(429, json={"error": {"message": "busy"}}, headers={"Retry-After": "9"}),
            httpx.Response(429, json={"error": {"message": "busy"}}, headers={"Retry-After": "4"}),
        )
    )
    backend, sleeps = make(max_retries=1)
    with pytest.raises(RateLimitError) as info:
        LLM(backend).complete("x")
    assert route.call_count == 2 and sleeps.waits == [9.0]
    assert info.value.retry_after == 4.0 and info.value.attempts == 2


def test_rate_limit_error_retry_after_without_retries_async_ms_and_absent(
    mock: respx.MockRouter,
) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(429, headers={"retry-after-ms": "1500"}),
            httpx.Response(429, json={"error": {"message": "busy"}}),
        )
    )
    backend, sleeps = make(max_retries=0)
    with pytest.raises(RateLimitError) as info:
        asyncio.run(LLM(backend).acomplete("x"))
    assert info.value.retry_after == 1.5 and sleeps.waits == []
    with pytest.raises(RateLimitError) as info:
        LLM(backend).complete("x")
    assert info.value.retry_after is None and route.call_count == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 520])
def test_5xx_retried_up_to_the_limit(mock: respx.MockRouter, status: int) -> None:
    route = mock.post("/chat/completions").respond(status, text="<html>bad gateway</html>")
    backend, sleeps = make(max_retries=3)
    with pytest.raises(ServerError) as info:
        LLM(backend).complete("x")
    err = info.value
    assert err.attempts == 4 and route.call_count == 4
    assert err.status == status and err.backend == "openai"
    assert err.body is not None and "bad gateway" in err.body
    assert "after 4 attempts" in str(err)
    assert len(sleeps.waits) == 3


def test_5xx_then_success(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(502), httpx.Response(503), httpx.Response(200, json=OK)
        )
    )
    backend, _ = make()
    assert LLM(backend).complete("x").text == "ok"
    assert route.call_count == 3


def test_backoff_waits_grow(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(500)
    backend, sleeps = make(retry_base_delay=1.0, retry_max_delay=3.0)
    with pytest.raises(ServerError):
        LLM(backend).complete("x")
    low = [0.5, 1.0, 1.5]
    high = [1.0, 2.0, 3.0]
    assert all(lo <= w <= hi for w, lo, hi in zip(sleeps.waits, low, high, strict=True))


def test_max_retries_zero_and_total_timeout(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(503)
    backend, _ = make(max_retries=0)
    with pytest.raises(ServerError) as info:
        LLM(backend).complete("x")
    assert info.value.attempts == 1 and route.call_count == 1
    backend, _ = make(max_retries=10, retry_total_timeout=0)
    with pytest.raises(ServerError) as info:
        LLM(backend).complete("x")
    assert info.value.attempts == 1 and route.call_count == 2


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_other_4xx_not_retried(mock: respx.MockRouter, status: int) -> None:
    route = mock.post("/chat/completions").respond(
        status, json={"error": {"message": "unknown field 'foo'", "type": "invalid_request"}}
    )
    backend, sleeps = make()
    with pytest.raises(BadRequestError) as info:
        LLM(backend).complete("x")
    assert type(info.value) is BadRequestError
    assert info.value.attempts == 1 and route.call_count == 1 and sleeps.waits == []
    assert info.value.status == status


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors(mock: respx.MockRouter, status: int) -> None:
    route = mock.post("/chat/completions").respond(
        status, json={"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}
    )
    backend, _ = make(api_key=KEY)
    with pytest.raises(AuthenticationError, match="api_key") as info:
        LLM(backend).complete("x")
    assert info.value.attempts == 1 and route.call_count == 1 and info.value.status == status


@pytest.mark.parametrize(
    "body",
    [
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens.",
                "code": "context_length_exceeded",
                "type": "invalid_request_error",
            }
        },
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
            }
        },
        {
            "error": {
                "message": "Requested tokens (5000) exceed context window of 2048",
                "type": "internal_server_error",
            }
        },
        {"detail": "too many tokens in prompt"},
    ],
)
def test_context_length(mock: respx.MockRouter, body: dict[str, Any]) -> None:
    route = mock.post("/chat/completions").respond(400, json=body)
    backend, _ = make()
    with pytest.raises(ContextLengthError, match="context window") as info:
        LLM(backend).complete("x")
    assert isinstance(info.value, BadRequestError)
    assert info.value.attempts == 1 and route.call_count == 1


def test_context_length_as_500_is_not_retried(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        500, json={"error": {"message": "Requested tokens (5000) exceed context window of 2048"}}
    )
    backend, _ = make()
    with pytest.raises(ContextLengthError):
        LLM(backend).complete("x")
    assert route.call_count == 1


def test_timeout(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(side_effect=httpx.ReadTimeout("slow"))
    backend, _ = make(max_retries=2, timeout=5)
    with pytest.raises(BackendTimeoutError, match="5s") as info:
        LLM(backend).complete("x")
    assert info.value.attempts == 3 and route.call_count == 3
    no_httpx_in_chain(info.value)


def test_timeout_then_success(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").mock(
        side_effect=responses(httpx.ConnectTimeout("slow"), httpx.Response(200, json=OK))
    )
    backend, _ = make()
    assert LLM(backend).complete("x").text == "ok"


def test_connect_error(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    backend, _ = make(max_retries=1)
    with pytest.raises(BackendConnectionError, match="running") as info:
        LLM(backend).complete("x")
    assert info.value.attempts == 2 and route.call_count == 2
    no_httpx_in_chain(info.value)


@pytest.mark.parametrize("exc", [httpx.RemoteProtocolError("closed"), httpx.ReadError("reset")])
def test_dropped_connection_retried(mock: respx.MockRouter, exc: Exception) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(exc, httpx.Response(200, json=OK))
    )
    backend, _ = make()
    assert LLM(backend).complete("x").text == "ok"
    assert route.call_count == 2


# --------------------------------------------------------------------------- malformed


def test_invalid_json(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        200, content=b'{"choices": [', headers={"content-type": "application/json"}
    )
    backend, _ = make()
    with pytest.raises(MalformedResponseError, match="not a JSON object") as info:
        LLM(backend).complete("x")
    assert route.call_count == 1 and info.value.attempts == 1 and info.value.status == 200
    assert info.value.body == '{"choices": ['
    no_httpx_in_chain(info.value)


def test_html_content_type(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        200,
        text="<html><body>Welcome to nginx</body></html>",
        headers={"content-type": "text/html"},
    )
    backend, _ = make()
    with pytest.raises(MalformedResponseError, match="text/html") as info:
        LLM(backend).complete("x")
    assert info.value.body is not None and "nginx" in info.value.body


@pytest.mark.parametrize(
    "reply",
    [
        {"model": "m", "choices": []},
        {"model": "m"},
        {"model": "m", "choices": [{"index": 0, "finish_reason": "stop"}]},
        {"model": "m", "choices": [{"message": {"content": 42}}]},
        [1, 2, 3],
    ],
)
def test_missing_or_empty_choices(mock: respx.MockRouter, reply: Any) -> None:
    mock.post("/chat/completions").respond(200, json=reply)
    backend, _ = make()
    with pytest.raises(MalformedResponseError) as info:
        LLM(backend).complete("x")
    assert info.value.backend == "openai"


def test_midstream_drop_is_connection_error(mock: respx.MockRouter) -> None:
    def body() -> Iterator[bytes]:
        yield b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        raise httpx.ReadError("connection reset")

    async def abody() -> AsyncIterator[bytes]:
        yield b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        raise httpx.ReadError("connection reset")

    route = mock.post("/chat/completions")
    route.mock(
        side_effect=lambda request: httpx.Response(
            200, content=body(), headers={"content-type": "text/event-stream"}
        )
    )
    backend, _ = make()
    got: list[str] = []
    with pytest.raises(BackendConnectionError, match="dropped") as info:
        for piece in LLM(backend).stream("x"):
            got.append(piece)
    assert got == ["a"]
    no_httpx_in_chain(info.value)

    route.mock(
        side_effect=lambda request: httpx.Response(
            200, content=abody(), headers={"content-type": "text/event-stream"}
        )
    )

    async def run() -> None:
        async for _ in LLM(backend).astream("x"):
            pass

    with pytest.raises(BackendConnectionError):
        asyncio.run(run())


def test_stream_open_is_retried(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(503),
            httpx.Response(
                200,
                content=b'data: {"choices":[{"index":0,"delta":{"content":"hi"},'
                b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
                headers={"content-type": "text/event-stream"},
            ),
        )
    )
    backend, _ = make()
    assert list(LLM(backend).stream("x")) == ["hi"]
    assert route.call_count == 2


def test_stream_open_401(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(401, json={"error": {"message": f"bad key {KEY}"}})
    backend, _ = make(api_key=KEY)
    with pytest.raises(AuthenticationError) as info:
        list(LLM(backend).stream("x"))
    assert KEY not in str(info.value) and KEY not in repr(vars(info.value))


# --------------------------------------------------------------------------- finish reasons


def test_length_and_content_filter(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions")
    cut = json.loads(json.dumps(OK))
    cut["choices"][0]["finish_reason"] = "length"
    route.respond(200, json=cut)
    backend, _ = make()
    assert LLM(backend).complete("x").truncated
    with pytest.raises(TruncatedError, match="max_tokens") as info:
        LLM(backend, on_truncation="error").complete("x", max_tokens=1)
    assert info.value.completion.text == "ok"
    blocked = json.loads(json.dumps(OK))
    blocked["choices"][0]["finish_reason"] = "content_filter"
    route.respond(200, json=blocked)
    with pytest.raises(ContentFilteredError):
        LLM(backend).complete("x")


# --------------------------------------------------------------------------- the key


def test_api_key_never_leaks(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        401,
        json={
            "error": {"message": f"Incorrect API key provided: {KEY}.", "code": "invalid_api_key"}
        },
        headers={"www-authenticate": f"Bearer {KEY}"},
    )
    backend, _ = make(api_key=KEY)
    llm = LLM(backend)
    assert KEY not in repr(backend) and KEY not in repr(llm) and KEY not in str(backend)
    assert KEY not in repr(vars(backend))
    calls: list[Callable[[], object]] = [
        lambda: llm.complete("x"),
        lambda: asyncio.run(llm.acomplete("x")),
    ]
    for call in calls:
        with pytest.raises(AuthenticationError) as info:
            call()
        err = info.value
        assert KEY not in str(err) and KEY not in repr(err)
        assert all(KEY not in repr(v) for v in vars(err).values())
        assert err.body is not None and "Incorrect API key provided" in err.body
        no_httpx_in_chain(err)
    # the key was sent, as a Bearer token only
    assert mock.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


def test_api_key_not_in_other_errors(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(500, text=f"crash dump: auth={KEY}")
    backend, _ = make(api_key=KEY, max_retries=0)
    with pytest.raises(ServerError) as info:
        LLM(backend).complete("x")
    assert KEY not in str(info.value) and KEY not in (info.value.body or "")


def test_authorization_header_option_rejected() -> None:
    from promptkit._errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="api_key"):
        OpenAIBackend(model="m", base_url=BASE, headers={"Authorization": f"Bearer {KEY}"})


# --------------------------------------------------------------------------- async


def test_async_retries_and_errors(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200, json=OK)
        )
    )
    backend, sleeps = make()
    llm = LLM(backend)
    assert asyncio.run(llm.acomplete("x")).text == "ok"
    assert route.call_count == 2 and sleeps.waits == [1.0]

    route.mock(side_effect=None).respond(502)
    with pytest.raises(ServerError) as info:
        asyncio.run(llm.acomplete("x"))
    assert info.value.attempts == 4

    route.mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(BackendTimeoutError):
        asyncio.run(llm.acomplete("x"))

    route.mock(side_effect=None).respond(400, json={"error": {"message": "nope"}})
    calls = route.call_count
    with pytest.raises(BadRequestError) as bad:
        asyncio.run(llm.acomplete("x"))
    assert bad.value.attempts == 1 and route.call_count == calls + 1

    route.respond(200, text="<html></html>", headers={"content-type": "text/html"})
    with pytest.raises(MalformedResponseError):
        asyncio.run(llm.acomplete("x"))


# --------------------------------------------------------------------------- every backend


@pytest.mark.parametrize(
    ("cls", "base", "path"),
    [
        (OpenAIBackend, BASE, "/chat/completions"),
        (VLLMBackend, BASE, "/chat/completions"),
        (LlamaServerBackend, BASE, "/chat/completions"),
        (OllamaBackend, "http://testserver", "/api/chat"),
    ],
)
def test_every_backend_maps_errors_the_same(cls: type[HTTPBackend], base: str, path: str) -> None:
    with respx.mock(base_url=base) as router:
        route = router.post(path).respond(503, json={"error": "loading model"})
        backend, _ = make(cls, base_url=base, max_retries=1)
        with pytest.raises(ServerError, match="loading model") as info:
            LLM(backend).complete("x")
        assert info.value.attempts == 2 and route.call_count == 2
        assert info.value.backend == cls.name
        assert isinstance(info.value, BackendError)
