"""Tool calling on the OpenAI chat-completions wire format (issue 15), against respx mocks in
the documented shapes: ``tools``/``tool_choice``/``parallel_tool_calls`` in the request,
assistant ``tool_calls`` and ``tool`` messages in the history, ``message.tool_calls`` in the
reply, and streamed ``delta.tool_calls`` pieces assembled by index."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import respx
from respx_helpers import body_of

from promptkit import LLM, Message, Tool, ToolArgumentsError, ToolCall
from promptkit._errors import MalformedResponseError
from promptkit.backends.llama_server import LlamaServerBackend
from promptkit.backends.openai import OpenAIBackend
from promptkit.backends.vllm import VLLMBackend

BASE = "http://testserver/v1"


def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the current weather in a city.

    Args:
        city: the city's name
        unit: celsius or fahrenheit
    """
    return f"20 {unit} in {city}"


def get_time(city: str) -> str:
    """Get the local time in a city."""
    return "12:00"


WEATHER_SPEC = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "city": {"type": "string", "description": "the city's name"},
                "unit": {
                    "type": "string",
                    "default": "celsius",
                    "description": "celsius or fahrenheit",
                },
            },
            "required": ["city"],
        },
    },
}


def tool_reply(*calls: tuple[str, str, str], content: str | None = None) -> dict[str, Any]:
    """A chat.completion whose message calls tools, as the API documents it."""
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1,
        "model": "served-model",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "tool_calls": [
                        {
                            "id": cid,
                            "type": "function",
                            "function": {"name": name, "arguments": args},
                        }
                        for cid, name, args in calls
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100},
    }


def sse(*events: Any) -> bytes:
    return ("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode()


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "model": "served-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def llm(cls: type[OpenAIBackend] = OpenAIBackend) -> LLM:
    return LLM(cls(model="my-model", base_url=BASE, retry_base_delay=0))


def test_request_carries_tools_choice_and_parallel_flag(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        json=tool_reply(("call_a", "get_weather", '{"city": "Paris"}'))
    )
    done = llm().complete(
        "Weather in Paris?",
        tools=[get_weather, Tool(get_time)],
        tool_choice="get_weather",
        parallel_tool_calls=False,
    )
    body = body_of(route)
    assert body["tools"][0] == WEATHER_SPEC
    assert body["tools"][1]["function"]["name"] == "get_time"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert done.finish_reason == "tool_calls"
    assert done.text == ""
    assert done.tool_calls == (
        ToolCall(id="call_a", name="get_weather", raw_arguments='{"city": "Paris"}'),
    )
    assert done.tool_calls[0].arguments == {"city": "Paris"}


@pytest.mark.parametrize("choice", ["auto", "required", "none"])
def test_tool_choice_strings_sent_as_is(mock: respx.MockRouter, choice: str) -> None:
    route = mock.post("/chat/completions").respond(json=tool_reply())
    llm().complete("x", tools=[get_weather], tool_choice=choice)
    body = body_of(route)
    assert body["tool_choice"] == choice
    assert "parallel_tool_calls" not in body


def test_no_tools_no_tool_fields(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(json=tool_reply())
    llm().complete("x")
    assert set(body_of(route)) == {"model", "messages"}


def test_parallel_calls_parsed_in_order(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        json=tool_reply(
            ("call_1", "get_weather", '{"city": "Paris"}'),
            ("call_2", "get_weather", '{"city": "Oslo", "unit": "fahrenheit"}'),
            ("call_3", "get_time", '{"city": "Oslo"}'),
        )
    )
    calls = llm().complete("x", tools=[get_weather, get_time]).tool_calls
    assert [(c.id, c.name) for c in calls] == [
        ("call_1", "get_weather"),
        ("call_2", "get_weather"),
        ("call_3", "get_time"),
    ]
    assert calls[1].arguments == {"city": "Oslo", "unit": "fahrenheit"}


def test_malformed_arguments_kept_raw_not_a_crash(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        json=tool_reply(("call_1", "get_weather", '{"city": "Par'))
    )
    done = llm().complete("x", tools=[get_weather])
    call = done.tool_calls[0]
    assert call.raw_arguments == '{"city": "Par'
    with pytest.raises(ToolArgumentsError) as info:
        _ = call.arguments
    assert info.value.raw == '{"city": "Par'


def test_history_with_tool_calls_and_results_in_documented_form(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        json={
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "20 C"},
                    "finish_reason": "stop",
                }
            ]
        }
    )
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"})
    history = [
        Message.user("Weather in Paris?"),
        Message.assistant("", tool_calls=[call]),
        Message.tool("20 celsius in Paris", tool_call_id="call_1", name="get_weather"),
    ]
    assert llm().complete(history, tools=[get_weather]).text == "20 C"
    assert body_of(route)["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {
            "role": "tool",
            "content": "20 celsius in Paris",
            "tool_call_id": "call_1",
            "name": "get_weather",
        },
    ]


def streamed_calls() -> bytes:
    """Two parallel calls streamed as OpenAI does: id/name first, arguments in pieces."""
    first = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    second = {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
    return sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"content": "Checking. "}),
        chunk({"tool_calls": [{"index": 0, **first}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}),
        chunk({"tool_calls": [{"index": 1, **second}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"Oslo"}'}}]}),
        chunk({}, finish="tool_calls"),
    )


EXPECTED = (
    ToolCall(id="call_1", name="get_weather", raw_arguments='{"city": "Paris"}'),
    ToolCall(id="call_2", name="get_time", raw_arguments='{"city": "Oslo"}'),
)


def test_streamed_tool_call_deltas_assembled(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        200, content=streamed_calls(), headers={"content-type": "text/event-stream"}
    )
    stream = llm().stream("x", tools=[get_weather, get_time])
    assert list(stream) == ["Checking. "]
    assert body_of(route)["tools"][0] == WEATHER_SPEC
    assert stream.completion is not None
    assert stream.completion.tool_calls == EXPECTED
    assert stream.completion.finish_reason == "tool_calls"
    assert stream.completion.text == "Checking. "


def test_astream_tool_call_deltas_assembled(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        200, content=streamed_calls(), headers={"content-type": "text/event-stream"}
    )

    async def main() -> Any:
        stream = llm().astream("x", tools=[get_weather, get_time])
        async for _ in stream:
            pass
        return stream.completion

    done = asyncio.run(main())
    assert done.tool_calls == EXPECTED


def test_streamed_calls_reusing_index_zero_are_kept_apart(mock: respx.MockRouter) -> None:
    """Some compatible servers number every call of a parallel batch 0; the ids differ."""
    content = sse(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "a",
                        "function": {"name": "get_time", "arguments": '{"city": "Oslo"}'},
                    }
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "b",
                        "function": {"name": "get_time", "arguments": '{"city": "Rome"}'},
                    }
                ]
            }
        ),
        chunk({}, finish="tool_calls"),
    )
    mock.post("/chat/completions").respond(
        200, content=content, headers={"content-type": "text/event-stream"}
    )
    stream = llm().stream("x", tools=[get_time])
    list(stream)
    assert stream.completion is not None
    assert [(c.id, c.arguments["city"]) for c in stream.completion.tool_calls] == [
        ("a", "Oslo"),
        ("b", "Rome"),
    ]


def test_server_ignoring_stream_still_gives_tool_calls(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(
        json=tool_reply(("call_1", "get_time", '{"city": "Oslo"}'))
    )
    stream = llm().stream("x", tools=[get_time])
    list(stream)
    assert stream.completion is not None
    assert stream.completion.tool_calls[0].name == "get_time"


def test_malformed_tool_call_entry_is_malformed_response(mock: respx.MockRouter) -> None:
    reply = tool_reply()
    reply["choices"][0]["message"]["tool_calls"] = [{"id": "x", "type": "function"}]
    mock.post("/chat/completions").respond(json=reply)
    with pytest.raises(MalformedResponseError):
        llm().complete("x", tools=[get_time])


@pytest.mark.parametrize("cls", [VLLMBackend, LlamaServerBackend])
def test_vllm_and_llama_server_send_the_openai_form(
    mock: respx.MockRouter, cls: type[OpenAIBackend]
) -> None:
    route = mock.post("/chat/completions").respond(
        json=tool_reply(("call_1", "get_weather", '{"city": "Paris"}'))
    )
    done = llm(cls).complete("x", tools=[get_weather], tool_choice="auto")
    body = body_of(route)
    assert body["tools"] == [WEATHER_SPEC]
    assert body["tool_choice"] == "auto"
    assert done.tool_calls[0].arguments == {"city": "Paris"}


def test_openai_sdk_backend_sends_the_same_tool_body(monkeypatch: pytest.MonkeyPatch) -> None:
    from sdk_respx import sdk_mock

    from promptkit.backends.openai_sdk import OpenAISDKBackend

    with sdk_mock(monkeypatch) as router:
        _sdk_tool_body(router, OpenAISDKBackend)


def _sdk_tool_body(mock: respx.MockRouter, cls: Any) -> None:
    route = mock.post(BASE + "/chat/completions").respond(
        json=tool_reply(("call_1", "get_weather", '{"city": "Paris"}'))
    )
    sdk = LLM(cls(model="m", base_url=BASE, api_key="k", max_retries=0))
    done = sdk.complete("x", tools=[get_weather], tool_choice="required")
    body = body_of(route)
    assert body["tools"] == [WEATHER_SPEC]
    assert body["tool_choice"] == "required"
    assert done.tool_calls[0].arguments == {"city": "Paris"}
