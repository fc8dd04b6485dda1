"""OpenAIBackend and LlamaServerBackend against respx mocks (nothing leaves the process)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from respx_helpers import body_of

from promptkit._client import LLM
from promptkit._errors import ConfigurationError, MalformedResponseError, ServerError
from promptkit._types import Delta, Message, Request, TokenLogprob, Usage
from promptkit.backends import backend_class
from promptkit.backends.llama_server import LlamaServerBackend
from promptkit.backends.openai import OpenAIBackend

BASE = "http://testserver/v1"
OPENAI = "https://api.openai.com/v1"
KEY = "sk-test-0123456789abcdefghij"


def chat_reply(*texts: str, finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "served-model",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": t},
                "finish_reason": finish,
            }
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        **extra,
    }


def sse(*events: Any, done: bool = True) -> bytes:
    out = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    if done:
        out += "data: [DONE]\n\n"
    return out.encode()


def chunk(text: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    return {
        "object": "chat.completion.chunk",
        "model": "served-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def backend(**kw: Any) -> OpenAIBackend:
    kw.setdefault("model", "my-model")
    kw.setdefault("base_url", BASE)
    kw.setdefault("retry_base_delay", 0)
    return OpenAIBackend(**kw)


# --------------------------------------------------------------------------- construction


def test_registry_names_match() -> None:
    assert backend_class("openai") is OpenAIBackend
    assert backend_class("llama-server") is LlamaServerBackend
    assert OpenAIBackend.name == "openai"
    assert LlamaServerBackend.name == "llama-server"


def test_repr_shows_model_and_url_only() -> None:
    b = backend(api_key=KEY)
    assert repr(b) == f"<OpenAIBackend model='my-model' base_url='{BASE}'>"
    assert KEY not in repr(b) and KEY not in repr(vars(b))
    pw = OpenAIBackend(model="m", base_url="http://user:hunter2@testserver/v1")
    assert "hunter2" not in repr(pw)


def test_real_openai_needs_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIBackend(model="gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    b = OpenAIBackend(model="gpt-4o-mini")
    assert b.base_url == OPENAI
    assert KEY not in repr(b)


def test_compatible_server_does_not_read_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with respx.mock(base_url=BASE) as router:
        route = router.post("/chat/completions").respond(200, json=chat_reply("ok"))
        LLM(backend()).complete("hi")
    assert "authorization" not in route.calls.last.request.headers


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'max_retries'"):
        backend(max_retry=2)
    with pytest.raises(ConfigurationError, match="http"):
        backend(base_url="testserver/v1")
    with pytest.raises(ConfigurationError, match="timeout"):
        backend(timeout=0)
    with pytest.raises(ConfigurationError, match="extra_params"):
        backend(extra_params=["nucleus"])


# --------------------------------------------------------------------------- chat


def test_chat_body_is_exact_and_reply_parsed(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=chat_reply("Paris", "Lyon"))
    llm = LLM(backend(api_key=KEY), on_unsupported="drop")
    done = llm.complete(
        [Message.system("Be brief."), Message.user("Capital?")],
        temperature=0.2,
        top_p=0.9,
        max_tokens=20,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        stop=["\n"],
        seed=7,
        n=2,
        top_k=40,
        min_p=0.1,
        repetition_penalty=1.1,
    )
    assert route.call_count == 1
    assert body_of(route) == {
        "model": "my-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital?"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 20,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "stop": ["\n"],
        "seed": 7,
        "n": 2,
    }
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    assert done.texts == ["Paris", "Lyon"]
    assert done.finish_reason == "stop"
    assert done.usage == Usage(7, 3, 10)
    assert done.model == "served-model"
    assert done.backend == "openai"
    assert set(done.dropped) == {"top_k", "min_p", "repetition_penalty"}
    assert done.renamed == {}
    assert done.params_sent["max_tokens"] == 20 and done.params_sent["n"] == 2
    assert "top_k" not in done.params_sent


def test_chat_logprobs_sent_and_parsed(mock: respx.MockRouter) -> None:
    reply = chat_reply("Yes")
    reply["choices"][0]["logprobs"] = {
        "content": [
            {
                "token": "Yes",
                "logprob": -0.01,
                "bytes": [89, 101, 115],
                "top_logprobs": [
                    {"token": "Yes", "logprob": -0.01, "bytes": None},
                    {"token": "No", "logprob": -4.6, "bytes": None},
                ],
            }
        ]
    }
    route = mock.post("/chat/completions").respond(200, json=reply)
    done = LLM(backend()).complete("Sure?", top_logprobs=2)
    body = body_of(route)
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert done.choices[0].logprobs == (TokenLogprob("Yes", -0.01, (("Yes", -0.01), ("No", -4.6))),)


def test_response_format_extra_and_extra_params(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=chat_reply('{"a": 1}'))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    llm = LLM(backend(extra_params=["top_k"]))
    done = llm.complete(
        "json please",
        response_format={"name": "Answer", "schema": schema, "strict": True},
        top_k=5,
        extra={"logit_bias": {"50256": -100}, "user": "u1"},
    )
    body = body_of(route)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": schema, "strict": True},
    }
    assert body["top_k"] == 5
    assert body["logit_bias"] == {"50256": -100} and body["user"] == "u1"
    assert done.params_sent["top_k"] == 5 and done.params_sent["user"] == "u1"
    assert done.dropped == {}


def test_real_openai_uses_max_completion_tokens(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with respx.mock(base_url=OPENAI) as router:
        route = router.post("/chat/completions").respond(200, json=chat_reply("hi"))
        llm = LLM(OpenAIBackend(model="gpt-4o-mini", api_key=KEY))
        done = llm.complete("hi", max_tokens=30)
    assert body_of(route)["max_completion_tokens"] == 30
    assert "max_tokens" not in body_of(route)
    assert done.renamed == {"max_tokens": "max_completion_tokens"}
    assert done.params_sent == {"max_completion_tokens": 30}


def test_compatible_server_keeps_max_tokens(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=chat_reply("hi"))
    done = LLM(backend()).complete("hi", max_tokens=30)
    assert body_of(route)["max_tokens"] == 30
    assert done.renamed == {}


def test_backend_used_directly(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(200, json=chat_reply("direct"))
    b = backend()
    req = Request(messages=[Message.user("hi")], params={"temperature": 0.5})
    done = b.complete(req)
    assert done.text == "direct" and done.params_sent == {"temperature": 0.5}
    assert asyncio.run(b.acomplete(req)).text == "direct"
    b.close()


def test_no_model_omits_the_field(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=chat_reply("x"))
    LLM(OpenAIBackend(base_url=BASE)).complete("hi")
    assert "model" not in body_of(route)


# --------------------------------------------------------------------------- completions


def test_completion_endpoint_and_text_logprobs(mock: respx.MockRouter) -> None:
    reply = {
        "model": "served-model",
        "choices": [
            {
                "index": 0,
                "text": " Paris",
                "finish_reason": "length",
                "logprobs": {
                    "tokens": [" Paris"],
                    "token_logprobs": [-0.2],
                    "top_logprobs": [{" Paris": -0.2, " Lyon": -2.0}],
                    "text_offset": [0],
                },
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5},
    }
    route = mock.post("/completions").respond(200, json=reply)
    done = LLM(backend()).complete_prompt("The capital of France is", top_logprobs=2, max_tokens=1)
    assert body_of(route) == {
        "model": "my-model",
        "prompt": "The capital of France is",
        "max_tokens": 1,
        "logprobs": 2,
    }
    assert done.text == " Paris" and done.truncated
    assert done.renamed == {"top_logprobs": "logprobs"}
    assert done.choices[0].logprobs == (
        TokenLogprob(" Paris", -0.2, ((" Paris", -0.2), (" Lyon", -2.0))),
    )
    assert asyncio.run(LLM(backend()).acomplete_prompt("x")).text == " Paris"


# --------------------------------------------------------------------------- streaming


def test_stream_sse(mock: respx.MockRouter) -> None:
    events = sse(
        {"model": "served-model", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        chunk("Hel"),
        chunk("lo"),
        chunk(None, "stop"),
    )
    route = mock.post("/chat/completions").respond(
        200, content=events, headers={"content-type": "text/event-stream"}
    )
    stream = LLM(backend()).stream("Say hello", temperature=0)
    assert list(stream) == ["Hel", "lo"]
    assert stream.completion is not None
    assert stream.completion.text == "Hello"
    assert stream.completion.finish_reason == "stop"
    body = body_of(route)
    assert body["stream"] is True and "stream_options" not in body
    assert body["temperature"] == 0


def test_stream_async_and_directly(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        200,
        content=sse(chunk("a"), chunk("b", "length")),
        headers={"content-type": "text/event-stream; charset=utf-8"},
    )

    async def run() -> tuple[list[str], str | None]:
        s = LLM(backend()).astream("x")
        pieces = [p async for p in s]
        assert s.completion is not None
        return pieces, s.completion.finish_reason

    assert asyncio.run(run()) == (["a", "b"], "length")
    deltas = list(backend().stream(Request(messages=[Message.user("x")])))
    assert deltas[-1].finish_reason == "length"
    assert [d.text for d in deltas] == ["a", "b", ""]


def test_stream_usage_on_real_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    events = sse(chunk("Hi"), chunk(None, "stop"), {"choices": [], "usage": usage})
    with respx.mock(base_url=OPENAI) as router:
        route = router.post("/chat/completions").respond(
            200, content=events, headers={"content-type": "text/event-stream"}
        )
        deltas = list(
            OpenAIBackend(model="gpt-4o-mini", api_key=KEY).stream(
                Request(messages=[Message.user("x")])
            )
        )
    assert body_of(route)["stream_options"] == {"include_usage": True}
    assert deltas[-1] == Delta("", finish_reason="stop", usage=Usage(5, 2, 7), model="served-model")


def test_stream_cut_before_end_is_malformed(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        200, content=sse(chunk("Hel"), done=False), headers={"content-type": "text/event-stream"}
    )
    stream = LLM(backend()).stream("x")
    got: list[str] = []
    with pytest.raises(MalformedResponseError, match="stream ended") as info:
        for piece in stream:
            got.append(piece)
    assert got == ["Hel"]
    assert info.value.backend == "openai" and info.value.attempts == 1

    async def run() -> None:
        async for _ in LLM(backend()).astream("x"):
            pass

    with pytest.raises(MalformedResponseError):
        asyncio.run(run())


def test_stream_cut_mid_event_is_malformed(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        200,
        content=b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: {"choi',
        headers={"content-type": "text/event-stream"},
    )
    with pytest.raises(MalformedResponseError):
        list(LLM(backend()).stream("x"))


def test_stream_error_event(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        200,
        content=sse(chunk("a"), {"error": {"message": "model crashed", "code": 500}}),
        headers={"content-type": "text/event-stream"},
    )
    with pytest.raises(ServerError, match="model crashed"):
        list(LLM(backend()).stream("x"))


def test_stream_ignored_by_server_returns_json(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(200, json=chat_reply("whole"))
    stream = LLM(backend()).stream("x")
    assert list(stream) == ["whole"]
    assert stream.completion is not None and stream.completion.finish_reason == "stop"


# --------------------------------------------------------------------------- llama-server


def llama(**kw: Any) -> LlamaServerBackend:
    kw.setdefault("base_url", BASE)
    kw.setdefault("retry_base_delay", 0)
    return LlamaServerBackend(**kw)


def test_llama_server_defaults() -> None:
    b = LlamaServerBackend()
    assert b.base_url == "http://127.0.0.1:8080/v1"
    assert {"top_k", "min_p", "repetition_penalty"} <= b.supports


def test_llama_server_body_and_renames(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=chat_reply("ok"))
    schema = {"type": "object"}
    done = LLM(llama()).complete(
        "hi",
        top_k=20,
        min_p=0.05,
        repetition_penalty=1.1,
        seed=3,
        top_logprobs=1,
        response_format={"name": "X", "schema": schema, "strict": True},
    )
    body = body_of(route)
    assert body == {
        "messages": [{"role": "user", "content": "hi"}],
        "top_k": 20,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
        "seed": 3,
        "logprobs": True,
        "top_logprobs": 1,
        "response_format": {"type": "json_object", "schema": schema},
    }
    assert "authorization" not in route.calls.last.request.headers
    assert done.renamed == {"repetition_penalty": "repeat_penalty"}
    assert done.params_sent["repeat_penalty"] == 1.1
    assert done.dropped == {}


def test_llama_server_n_is_topped_up(mock: respx.MockRouter) -> None:
    # the requests run concurrently: each reply is chosen by its seed, not arrival order
    by_seed = {10: "one", 11: "two", 12: "three"}
    route = mock.post("/chat/completions").mock(
        side_effect=lambda request: httpx.Response(
            200, json=chat_reply(by_seed[json.loads(request.content)["seed"]])
        )
    )
    done = LLM(llama()).complete("pick", n=3, seed=10)
    assert route.call_count == 3
    assert done.texts == ["one", "two", "three"]
    assert [c.index for c in done.choices] == [0, 1, 2]
    assert done.requests == 3
    bodies = [body_of(route, i) for i in range(3)]
    assert all("n" not in b for b in bodies)  # llama-server rejects n != 1
    assert sorted(b["seed"] for b in bodies) == [10, 11, 12]
    assert done.usage == Usage(21, 9, 30)


def test_llama_server_n_top_up_async(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=chat_reply("same"))
    done = asyncio.run(LLM(llama()).acomplete("pick", n=3))
    assert route.call_count == 3
    assert done.texts == ["same"] * 3


def test_llama_server_404_hint(mock: respx.MockRouter) -> None:
    from promptkit._errors import BadRequestError

    mock.post("/chat/completions").respond(404, text="File Not Found")
    with pytest.raises(BadRequestError, match="/v1") as info:
        LLM(llama()).complete("x")
    assert info.value.status == 404 and info.value.attempts == 1


def test_request_timeout_and_odd_text(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=chat_reply("ok"))
    llm = LLM(backend(timeout=7))
    llm.complete("caf\u00e9 \U0001f600")
    assert route.calls.last.request.extensions["timeout"]["read"] == 7
    assert body_of(route)["messages"][0]["content"] == "caf\u00e9 \U0001f600"
    llm.complete("x", timeout=1.5)
    assert route.calls.last.request.extensions["timeout"]["read"] == 1.5
    # lone surrogates cannot be UTF-8: they are sent \\u-escaped rather than crashing
    b = backend()
    b.complete(Request(messages=[Message.model_construct(role="user", content="a\ud800b")]))
    assert b"\\ud800" in route.calls.last.request.content


def test_bad_extra_is_parameter_error(mock: respx.MockRouter) -> None:
    from promptkit._errors import ParameterError

    mock.post("/chat/completions").respond(200, json=chat_reply("ok"))
    with pytest.raises(ParameterError, match="JSON"):
        LLM(backend()).complete("x", extra={"bias": float("nan")})


def test_close_and_reuse(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(200, json=chat_reply("ok"))
    b = backend()
    with LLM(b) as llm:
        assert llm.complete("x").text == "ok"
    assert LLM(b).complete("x").text == "ok"  # a closed backend opens a new client

    async def run() -> str:
        async with LLM(b) as llm:
            return (await llm.acomplete("x")).text

    assert asyncio.run(run()) == "ok"
    assert asyncio.run(run()) == "ok"  # a new event loop gets a new async client


@pytest.mark.parametrize("official", [True, False])
def test_build_body_is_the_body_complete_posts(official: bool) -> None:
    base = OPENAI if official else BASE
    with respx.mock(base_url=base) as router:
        route = router.post("/chat/completions").respond(json=chat_reply("ok"))
        text_route = router.post("/completions").respond(
            json={"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}
        )
        backend = OpenAIBackend(model="gpt-4o-mini", base_url=base, api_key=KEY)
        llm = LLM(backend)
        rf = {"name": "r", "schema": {"type": "object"}}
        request, _ = llm.prepare_request(
            "Hi", max_tokens=5, logprobs=True, response_format=rf, extra={"user": "u1"}
        )
        llm.complete("Hi", max_tokens=5, logprobs=True, response_format=rf, extra={"user": "u1"})
        assert backend.build_body(request) == body_of(route)
        assert ("max_completion_tokens" in body_of(route)) is official
        text_request, _ = llm.prepare_request(prompt="Once", max_tokens=5, top_logprobs=2)
        llm.complete_prompt("Once", max_tokens=5, top_logprobs=2)
        assert backend.build_body(text_request) == body_of(text_route)
