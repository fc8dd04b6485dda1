"""VLLMBackend against respx mocks: vLLM's extras travel in the OpenAI-style body."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import respx
from respx_helpers import body_of

from promptkit._client import LLM
from promptkit._types import Usage
from promptkit.backends import backend_class
from promptkit.backends.vllm import VLLMBackend

BASE = "http://testserver/v1"


def reply(*texts: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "model": "Qwen/Qwen2.5-1.5B-Instruct",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16},
    }


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE) as router:
        yield router


def vllm(**kw: Any) -> VLLMBackend:
    kw.setdefault("model", "Qwen/Qwen2.5-1.5B-Instruct")
    kw.setdefault("base_url", BASE)
    kw.setdefault("retry_base_delay", 0)
    return VLLMBackend(**kw)


def test_registry_and_defaults() -> None:
    assert backend_class("vllm") is VLLMBackend
    b = VLLMBackend(model="m")
    assert b.base_url == "http://127.0.0.1:8000/v1"
    assert b.native_n is True
    assert {"top_k", "min_p", "repetition_penalty", "n", "logprobs"} <= b.supports
    assert repr(b) == "<VLLMBackend model='m' base_url='http://127.0.0.1:8000/v1'>"


def test_body_with_vllm_extras_and_native_n(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=reply("a", "b", "c"))
    done = LLM(vllm(), on_unsupported="error").complete(
        "hi", n=3, top_k=50, min_p=0.05, repetition_penalty=1.05, temperature=0.8, seed=1
    )
    assert route.call_count == 1
    assert body_of(route) == {
        "model": "Qwen/Qwen2.5-1.5B-Instruct",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 3,
        "top_k": 50,
        "min_p": 0.05,
        "repetition_penalty": 1.05,
        "temperature": 0.8,
        "seed": 1,
    }
    assert "authorization" not in route.calls.last.request.headers
    assert done.texts == ["a", "b", "c"]
    assert done.renamed == {} and done.dropped == {}
    assert done.params_sent["repetition_penalty"] == 1.05
    assert done.usage == Usage(10, 6, 16)


def test_structured_output_and_guided_extras(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=reply('{"x": 1}'))
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    llm = LLM(vllm())
    llm.complete("json", response_format={"name": "X", "schema": schema, "strict": False})
    assert body_of(route)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "X", "schema": schema, "strict": False},
    }
    llm.complete("pick", extra={"guided_choice": ["yes", "no"], "min_tokens": 1})
    body = body_of(route)
    # vLLM's old guided_* name is sent in its current form
    assert "guided_choice" not in body and body["min_tokens"] == 1
    assert body["structured_outputs"] == {"choice": ["yes", "no"]}
    llm.complete("re", extra={"structured_outputs": {"regex": "[a-z]+"}})
    assert body_of(route)["structured_outputs"] == {"regex": "[a-z]+"}


def test_n_short_reply_is_topped_up(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(200, json=reply("only"))
    done = LLM(vllm()).complete("hi", n=2)
    assert route.call_count == 2
    first, second = (json.loads(c.request.content) for c in route.calls)
    assert first["n"] == 2 and "n" not in second
    assert done.texts == ["only", "only"]


def test_stream_asks_for_usage(mock: respx.MockRouter) -> None:
    events = (
        'data: {"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},'
        '"finish_reason":null}]}\n\n'
        'data: {"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        'data: {"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,'
        '"total_tokens":4}}\n\n'
        "data: [DONE]\n\n"
    )
    route = mock.post("/chat/completions").respond(
        200, content=events.encode(), headers={"content-type": "text/event-stream"}
    )

    async def run() -> tuple[list[str], Any]:
        s = LLM(vllm()).astream("hi", top_k=3)
        return [p async for p in s], s.completion

    pieces, done = asyncio.run(run())
    assert pieces == ["Hi"]
    assert done.usage == Usage(3, 1, 4) and done.finish_reason == "stop"
    body = body_of(route)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["top_k"] == 3


def test_context_length_message_from_vllm(mock: respx.MockRouter) -> None:
    from promptkit._errors import ContextLengthError

    mock.post("/chat/completions").respond(
        400,
        json={
            "object": "error",
            "message": "This model's maximum context length is 2048 tokens. However, you "
            "requested 3000 tokens (2900 in the messages, 100 in the completion).",
            "type": "BadRequestError",
            "code": 400,
        },
    )
    with pytest.raises(ContextLengthError, match="context") as info:
        LLM(vllm()).complete("long")
    assert info.value.status == 400 and info.value.attempts == 1
