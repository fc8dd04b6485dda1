"""OllamaBackend against respx mocks: native /api/chat and /api/generate, NDJSON streams."""

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
from promptkit._errors import (
    BadRequestError,
    ConfigurationError,
    MalformedResponseError,
    ServerError,
    TruncatedError,
)
from promptkit._types import Message, Request, TokenLogprob, Usage
from promptkit.backends import backend_class
from promptkit.backends.ollama import OllamaBackend

BASE = "http://testserver:11434"


def chat_reply(text: str, reason: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "model": "llama3.2",
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": reason,
        "prompt_eval_count": 12,
        "eval_count": 4,
        **extra,
    }


def ndjson(*objs: Any) -> bytes:
    return "".join(json.dumps(o) + "\n" for o in objs).encode()


def piece(text: str) -> dict[str, Any]:
    return {"model": "llama3.2", "message": {"role": "assistant", "content": text}, "done": False}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE) as router:
        yield router


def ollama(**kw: Any) -> OllamaBackend:
    kw.setdefault("model", "llama3.2")
    kw.setdefault("base_url", BASE)
    kw.setdefault("retry_base_delay", 0)
    return OllamaBackend(**kw)


def test_registry_defaults_and_model_required() -> None:
    assert backend_class("ollama") is OllamaBackend
    b = OllamaBackend(model="llama3.2")
    assert repr(b) == "<OllamaBackend model='llama3.2' base_url='http://127.0.0.1:11434'>"
    assert b.native_n is False
    assert "n" not in b.supports
    with pytest.raises(ConfigurationError, match="model"):
        OllamaBackend()


def test_chat_body_options_and_renames(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply("Paris"))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    done = LLM(ollama(), on_unsupported="error").complete(
        [Message.system("Terse."), Message.user("Capital?")],
        temperature=0.1,
        top_p=0.9,
        top_k=30,
        min_p=0.02,
        max_tokens=64,
        repetition_penalty=1.1,
        frequency_penalty=0.3,
        presence_penalty=0.4,
        seed=42,
        stop=["\n\n"],
        response_format={"name": "City", "schema": schema, "strict": True},
        extra={"keep_alive": "5m", "num_ctx": 4096},
    )
    assert body_of(route) == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Terse."},
            {"role": "user", "content": "Capital?"},
        ],
        "stream": False,
        "format": schema,
        "keep_alive": "5m",
        "options": {
            "temperature": 0.1,
            "top_p": 0.9,
            "top_k": 30,
            "min_p": 0.02,
            "num_predict": 64,
            "repeat_penalty": 1.1,
            "frequency_penalty": 0.3,
            "presence_penalty": 0.4,
            "seed": 42,
            "stop": ["\n\n"],
            "num_ctx": 4096,
        },
    }
    assert done.text == "Paris" and done.finish_reason == "stop"
    assert done.usage == Usage(12, 4, 16)
    assert done.model == "llama3.2" and done.backend == "ollama"
    assert done.renamed == {"max_tokens": "num_predict", "repetition_penalty": "repeat_penalty"}
    assert done.params_sent["num_predict"] == 64 and "max_tokens" not in done.params_sent
    assert done.dropped == {}


def test_logprobs(mock: respx.MockRouter) -> None:
    lp = [
        {
            "token": "Yes",
            "logprob": -0.1,
            "bytes": [89, 101, 115],
            "top_logprobs": [{"token": "Yes", "logprob": -0.1}, {"token": "No", "logprob": -2.4}],
        }
    ]
    route = mock.post("/api/chat").respond(200, json=chat_reply("Yes", logprobs=lp))
    done = LLM(ollama()).complete("ok?", top_logprobs=2)
    body = body_of(route)
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert "options" not in body
    assert done.choices[0].logprobs == (TokenLogprob("Yes", -0.1, (("Yes", -0.1), ("No", -2.4))),)


def test_generate_endpoint_is_raw(mock: respx.MockRouter) -> None:
    route = mock.post("/api/generate").respond(
        200,
        json={
            "model": "llama3.2",
            "response": " Paris.",
            "done": True,
            "done_reason": "length",
            "prompt_eval_count": 5,
            "eval_count": 2,
        },
    )
    done = LLM(ollama()).complete_prompt("The capital of France is", max_tokens=2)
    assert body_of(route) == {
        "model": "llama3.2",
        "prompt": "The capital of France is",
        "raw": True,
        "stream": False,
        "options": {"num_predict": 2},
    }
    assert done.text == " Paris." and done.truncated
    with pytest.raises(TruncatedError) as info:
        LLM(ollama(), on_truncation="error").complete_prompt("x", max_tokens=2)
    assert info.value.completion is not None and info.value.completion.text == " Paris."


def test_n_is_several_requests_with_distinct_seeds(mock: respx.MockRouter) -> None:
    # the requests run concurrently: each reply is chosen by its seed, not arrival order
    by_seed = {5: "a", 6: "b", 7: "c"}
    route = mock.post("/api/chat").mock(
        side_effect=lambda request: httpx.Response(
            200, json=chat_reply(by_seed[json.loads(request.content)["options"]["seed"]])
        )
    )
    done = LLM(ollama()).complete("x", n=3, seed=5)
    assert route.call_count == 3 and done.texts == ["a", "b", "c"]
    seeds = sorted(body_of(route, i)["options"]["seed"] for i in range(3))
    assert seeds == [5, 6, 7]
    assert all("n" not in body_of(route, i)["options"] for i in range(3))

    route.mock(side_effect=None).respond(200, json=chat_reply("z"))
    done = asyncio.run(LLM(ollama()).acomplete("x", n=2))
    assert done.texts == ["z", "z"]


def test_model_not_found_says_pull(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(
        404, json={"error": "model 'llama9' not found, try pulling it first"}
    )
    with pytest.raises(BadRequestError, match="ollama pull llama9") as info:
        LLM(ollama(model="llama9")).complete("x")
    assert info.value.status == 404 and info.value.attempts == 1
    assert route.call_count == 1


def test_server_error_string_is_reported(mock: respx.MockRouter) -> None:
    mock.post("/api/chat").respond(500, json={"error": "llama runner process has terminated"})
    with pytest.raises(ServerError, match="llama runner process has terminated") as info:
        LLM(ollama(max_retries=1)).complete("x")
    assert info.value.attempts == 2


def test_missing_message_is_malformed(mock: respx.MockRouter) -> None:
    mock.post("/api/chat").respond(200, json={"model": "llama3.2", "done": True})
    with pytest.raises(MalformedResponseError, match="message"):
        LLM(ollama()).complete("x")


# --------------------------------------------------------------------------- streaming


def test_stream_ndjson(mock: respx.MockRouter) -> None:
    final = chat_reply("", "stop")
    route = mock.post("/api/chat").respond(
        200,
        content=ndjson(piece("Hel"), piece("lo"), final),
        headers={"content-type": "application/x-ndjson"},
    )
    stream = LLM(ollama()).stream("hi", temperature=0)
    assert list(stream) == ["Hel", "lo"]
    assert stream.completion is not None
    assert stream.completion.text == "Hello"
    assert stream.completion.usage == Usage(12, 4, 16)
    assert stream.completion.finish_reason == "stop"
    assert body_of(route)["stream"] is True


def test_stream_ndjson_async_and_generate(mock: respx.MockRouter) -> None:
    mock.post("/api/generate").respond(
        200,
        content=ndjson(
            {"model": "llama3.2", "response": "a", "done": False},
            {"model": "llama3.2", "response": "b", "done": True, "done_reason": "length"},
        ),
        headers={"content-type": "application/x-ndjson"},
    )

    async def run() -> list[Any]:
        return [d async for d in ollama().astream(Request(prompt="x"))]

    deltas = asyncio.run(run())
    assert "".join(d.text for d in deltas) == "ab"
    assert deltas[-1].finish_reason == "length"


def test_stream_cut_before_done_is_malformed(mock: respx.MockRouter) -> None:
    mock.post("/api/chat").respond(
        200, content=ndjson(piece("Hel")), headers={"content-type": "application/x-ndjson"}
    )
    got: list[str] = []
    with pytest.raises(MalformedResponseError, match="done"):
        for p in LLM(ollama()).stream("x"):
            got.append(p)
    assert got == ["Hel"]

    async def run() -> None:
        async for _ in LLM(ollama()).astream("x"):
            pass

    with pytest.raises(MalformedResponseError):
        asyncio.run(run())


def test_stream_error_line(mock: respx.MockRouter) -> None:
    mock.post("/api/chat").respond(
        200,
        content=ndjson(piece("a"), {"error": "out of memory"}),
        headers={"content-type": "application/x-ndjson"},
    )
    with pytest.raises(ServerError, match="out of memory"):
        list(LLM(ollama()).stream("x"))


def test_stream_bad_line_is_malformed(mock: respx.MockRouter) -> None:
    mock.post("/api/chat").respond(
        200,
        content=b'{"message": {"content": "a"}, "done": false}\n{"mess',
        headers={"content-type": "application/x-ndjson"},
    )
    with pytest.raises(MalformedResponseError):
        list(LLM(ollama()).stream("x"))
