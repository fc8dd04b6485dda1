"""Tool calling on Ollama's native /api/chat (issue 15), against respx mocks in the
documented shapes: ``tools`` in the request, ``message.tool_calls`` with object
arguments in the reply (streamed or not), role ``tool`` messages with ``tool_name``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import respx
from respx_helpers import body_of

import promptkit as pk
from promptkit import LLM, Message, ParameterError, ToolArgumentsError, ToolCall
from promptkit.backends.ollama import OllamaBackend

BASE = "http://testserver:11434"


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"sunny in {city}"


def calling(*calls: tuple[str, dict[str, Any]], done: bool = True) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "model": "llama3.2",
        "created_at": "2025-01-01T00:00:00Z",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": n, "arguments": a}} for n, a in calls],
        },
        "done": done,
    }
    if done:
        reply.update(done_reason="stop", prompt_eval_count=120, eval_count=20)
    return reply


def answer(text: str) -> dict[str, Any]:
    return {
        "model": "llama3.2",
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 150,
        "eval_count": 8,
    }


def ndjson(*objs: Any) -> bytes:
    return "".join(json.dumps(o) + "\n" for o in objs).encode()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def llm() -> LLM:
    return LLM(OllamaBackend(model="llama3.2", base_url=BASE, retry_base_delay=0))


def test_tools_sent_and_object_arguments_parsed(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(
        json=calling(("get_weather", {"city": "Toronto"}), ("get_weather", {"city": "Oslo"}))
    )
    done = llm().complete("Weather in Toronto and Oslo?", tools=[get_weather], tool_choice="auto")
    body = body_of(route)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather in a city.",
                "parameters": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    assert "tool_choice" not in body
    assert [(c.id, c.arguments) for c in done.tool_calls] == [
        ("call_0", {"city": "Toronto"}),
        ("call_1", {"city": "Oslo"}),
    ]
    assert done.tool_calls[0].raw_arguments == '{"city": "Toronto"}'


def test_history_tool_turns_in_native_form(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(json=answer("Sunny."))
    history = [
        Message.user("Weather in Toronto?"),
        Message.assistant(
            "",
            tool_calls=[ToolCall(id="call_0", name="get_weather", arguments={"city": "Toronto"})],
        ),
        Message.tool("sunny in Toronto", tool_call_id="call_0", name="get_weather"),
    ]
    assert llm().complete(history, tools=[get_weather]).text == "Sunny."
    assert body_of(route)["messages"] == [
        {"role": "user", "content": "Weather in Toronto?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}],
        },
        {"role": "tool", "content": "sunny in Toronto", "tool_name": "get_weather"},
    ]


def test_history_call_with_malformed_arguments_refused_before_sending(
    mock: respx.MockRouter,
) -> None:
    route = mock.post("/api/chat").respond(json=answer("x"))
    bad = Message.assistant(
        "", tool_calls=[ToolCall(id="c", name="get_weather", raw_arguments="{")]
    )
    with pytest.raises(ToolArgumentsError):
        llm().complete([Message.user("x"), bad, Message.tool("y", tool_call_id="c")])
    assert not route.called


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"tool_choice": "required"}, "cannot force"),
        ({"tool_choice": "get_weather"}, "cannot force"),
        ({"parallel_tool_calls": False}, "no such switch"),
    ],
)
def test_unsupported_tool_options_refused_before_sending(
    mock: respx.MockRouter, kw: dict[str, Any], match: str
) -> None:
    route = mock.post("/api/chat").respond(json=answer("x"))
    with pytest.raises(ParameterError, match=match):
        llm().complete("x", tools=[get_weather], **kw)
    assert not route.called


def test_tool_choice_none_sends_no_tools(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(json=answer("x"))
    llm().complete("x", tools=[get_weather], tool_choice="none")
    assert "tools" not in body_of(route)


def test_streamed_tool_calls_on_completion(mock: respx.MockRouter) -> None:
    mock.post("/api/chat").respond(
        200,
        content=ndjson(calling(("get_weather", {"city": "Oslo"}), done=False), answer("")),
        headers={"content-type": "application/x-ndjson"},
    )
    stream = llm().stream("x", tools=[get_weather])
    assert list(stream) == []
    assert stream.completion is not None
    assert stream.completion.tool_calls == (
        ToolCall(id="call_0", name="get_weather", arguments={"city": "Oslo"}),
    )

    async def main() -> Any:
        s = llm().astream("x", tools=[get_weather])
        async for _ in s:
            pass
        return s.completion

    assert asyncio.run(main()).tool_calls[0].arguments == {"city": "Oslo"}


def test_tool_loop_end_to_end_on_ollama(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat")
    route.side_effect = [
        respx.MockResponse(json=calling(("get_weather", {"city": "Oslo"}))),
        respx.MockResponse(json=answer("It is sunny in Oslo.")),
    ]
    result = pk.ToolLoop("Weather in Oslo?", tools=[get_weather]).run(llm())
    assert result.output == "It is sunny in Oslo."
    assert result.usage.prompt_tokens == 270
    assert body_of(route, 1)["messages"][-1] == {
        "role": "tool",
        "content": "sunny in Oslo",
        "tool_name": "get_weather",
    }
