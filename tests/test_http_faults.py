"""Server faults the retry rules must get right (issue 12, section 2; issue 20).

408/409 are transient and retried; a ``Retry-After`` beyond the cap ends the call at once;
``x-should-retry`` overrides the status either way; deterministic refusals (501, llama-server's
"Only one completion choice is allowed") cost one request. Waiting is recorded, not done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest
import respx
from retry_helpers import BASE, OK, make

from promptkit._client import LLM
from promptkit._config import Secret
from promptkit._errors import (
    BackendTimeoutError,
    BadRequestError,
    FeatureRefusedError,
    RateLimitError,
    ServerError,
)
from promptkit.backends._http import RetryPolicy
from promptkit.backends.openai import LlamaServerBackend


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE) as router:
        yield router


def responses(*items: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    it = iter(items)
    return lambda request: next(it)


# --------------------------------------------------------------------------- 408 / 409


@pytest.mark.parametrize("status", [408, 409])
def test_408_and_409_are_retried_then_succeed(mock: respx.MockRouter, status: int) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(httpx.Response(status), httpx.Response(200, json=OK))
    )
    backend, sleeps = make()
    done = LLM(backend).complete("x")
    assert done.text == "ok" and route.call_count == 2 and len(sleeps.waits) == 1


def test_408_exhausted_is_a_timeout_409_a_bad_request(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(408)
    backend, sleeps = make(max_retries=2)
    with pytest.raises(BackendTimeoutError, match="408") as info:
        LLM(backend).complete("x")
    assert route.call_count == 3 and info.value.attempts == 3 and len(sleeps.waits) == 2
    mock.reset()
    route = mock.post("/chat/completions").respond(
        409, json={"error": {"message": "Conflict: another request holds the lock"}}
    )
    with pytest.raises(BadRequestError, match="conflict") as info2:
        asyncio.run(LLM(backend).acomplete("x"))
    assert route.call_count == 3 and info2.value.attempts == 3 and info2.value.status == 409


# --------------------------------------------------------------------------- Retry-After


def test_retry_after_600_raises_rate_limit_at_once(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "600"}
    )
    backend, sleeps = make()  # retry_after_max 60
    with pytest.raises(RateLimitError, match="600s") as info:
        LLM(backend).complete("x")
    assert route.call_count == 1 and sleeps.waits == []
    assert info.value.retry_after == 600.0 and info.value.attempts == 1
    with pytest.raises(RateLimitError):
        asyncio.run(LLM(backend).acomplete("x"))
    assert route.call_count == 2 and sleeps.waits == []


def test_retry_after_within_the_cap_is_still_waited(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(429, headers={"Retry-After": "60"}), httpx.Response(200, json=OK)
        )
    )
    backend, sleeps = make()
    assert LLM(backend).complete("x").text == "ok"
    assert route.call_count == 2 and sleeps.waits == [60.0]


def test_a_later_long_retry_after_stops_the_retries(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(503, headers={"Retry-After": "1"}),
            httpx.Response(429, headers={"Retry-After": "900"}),
            httpx.Response(200, json=OK),
        )
    )
    backend, sleeps = make()
    with pytest.raises(RateLimitError) as info:
        LLM(backend).complete("x")
    assert route.call_count == 2 and sleeps.waits == [1.0]
    assert info.value.retry_after == 900.0 and info.value.attempts == 2


def test_5xx_with_a_long_retry_after_is_not_waited_for(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(503, headers={"Retry-After": "600"})
    backend, sleeps = make()
    with pytest.raises(ServerError, match="retry_after_max"):
        LLM(backend).complete("x")
    assert route.call_count == 1 and sleeps.waits == []


def test_no_retries_keeps_the_plain_rate_limit_message(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(429, headers={"Retry-After": "600"})
    backend, _ = make(max_retries=0)
    with pytest.raises(RateLimitError, match="rate limiting") as info:
        LLM(backend).complete("x")
    assert info.value.retry_after == 600.0


# --------------------------------------------------------------------------- x-should-retry


@pytest.mark.parametrize("status", [500, 503, 429])
def test_x_should_retry_false_is_honoured(mock: respx.MockRouter, status: int) -> None:
    route = mock.post("/chat/completions").respond(
        status, json={"error": {"message": "nope"}}, headers={"x-should-retry": "false"}
    )
    backend, sleeps = make()
    with pytest.raises((ServerError, RateLimitError)) as info:
        LLM(backend).complete("x")
    assert route.call_count == 1 and sleeps.waits == [] and info.value.attempts == 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_x_should_retry_true_retries_a_4xx(mock: respx.MockRouter, status: int) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=responses(
            httpx.Response(status, headers={"X-Should-Retry": "true"}),
            httpx.Response(200, json=OK),
        )
    )
    backend, sleeps = make()
    assert LLM(backend).complete("x").text == "ok"
    assert route.call_count == 2 and len(sleeps.waits) == 1


def test_x_should_retry_true_still_bounded_by_max_retries(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(400, headers={"x-should-retry": "true"})
    backend, _ = make(max_retries=2)
    with pytest.raises(BadRequestError) as info:
        LLM(backend).complete("x")
    assert route.call_count == 3 and info.value.attempts == 3


# --------------------------------------------------------------------------- deterministic 5xx


def test_501_is_never_retried(mock: respx.MockRouter) -> None:
    route = mock.post("/embeddings").respond(
        501,
        json={
            "error": {
                "code": 501,
                "message": "This server does not support embeddings. Start it with `--embeddings`",
                "type": "not_supported_error",
            }
        },
    )
    backend, sleeps = make(LlamaServerBackend)
    with pytest.raises(ServerError, match="--embeddings") as info:
        LLM(backend).embed(["x"])
    assert route.call_count == 1 and sleeps.waits == [] and info.value.attempts == 1
    chat = mock.post("/chat/completions").respond(501, text="Not Implemented")
    with pytest.raises(ServerError):
        LLM(backend).complete("x")
    assert chat.call_count == 1


def test_only_one_completion_choice_is_a_refusal_of_n(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        500,
        json={
            "error": {
                "code": 500,
                "message": "Only one completion choice is allowed",
                "type": "server_error",
            }
        },
    )
    backend, sleeps = make()
    request, _ = LLM(backend).prepare_request("x", n=3)
    with pytest.raises(FeatureRefusedError) as info:
        backend.complete(request)
    assert info.value.features == ("n",) and info.value.status == 500
    assert route.call_count == 1 and sleeps.waits == []


def test_a_500_naming_nothing_sent_is_still_retried(mock: respx.MockRouter) -> None:
    # "seed" is named but was not sent: not a refusal of this request
    route = mock.post("/chat/completions").respond(
        500, json={"error": {"message": "seed is not supported"}}
    )
    backend, _ = make(max_retries=1)
    with pytest.raises(ServerError):
        LLM(backend).complete("x", temperature=0)
    assert route.call_count == 2


# --------------------------------------------------------------------------- redaction


def test_short_api_key_redacts_nothing(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        400, json={"error": {"message": "Input should be 'text' or 'json_object' (x=1)"}}
    )
    backend, _ = make(api_key="x")
    with pytest.raises(BadRequestError) as info:
        LLM(backend).complete("x")
    assert "Input should be 'text' or 'json_object' (x=1)" in str(info.value)
    assert "*" not in str(info.value) and "*" not in (info.value.body or "")


def test_a_long_key_is_redacted_exactly(mock: respx.MockRouter) -> None:
    key = "local-secret-42"
    mock.post("/chat/completions").respond(
        401, json={"error": {"message": f"key {key} is not valid; keys look like local-..."}}
    )
    backend, _ = make(api_key=key)
    with pytest.raises(Exception) as info:
        LLM(backend).complete("x")
    text = f"{info.value} {getattr(info.value, 'body', '')}"
    assert key not in text and "key *** is not valid; keys look like local-..." in text


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("x", "text x", "text x"),
        ("1234567", "pin 1234567", "pin 1234567"),
        ("12345678", "pin 12345678!", "pin ***!"),
        ("", "anything", "anything"),
    ],
)
def test_redaction_rule(key: str, text: str, expected: str) -> None:
    assert Secret(key).redact(text) == expected
    assert Secret.MIN_REDACTED == 8


def test_policy_docstring_states_the_rules() -> None:
    doc = RetryPolicy.__doc__ or ""
    for word in ("x-should-retry", "408", "409", "retry_after_max", "FeatureRefusedError"):
        assert word in doc
