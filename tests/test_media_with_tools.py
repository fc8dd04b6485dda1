"""Content parts and tool turns in one conversation (issues 14 and 15 together): each wire
format carries both, and the cache key covers both."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import respx

import promptkit as pk
from promptkit._cache import cache_key
from promptkit._types import Message, Request
from promptkit.backends.ollama import OllamaBackend
from promptkit.backends.openai import OpenAIBackend

PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00\x00\x00\rIHDR" + bytes(13)
B64 = base64.b64encode(PNG).decode()
CALL = pk.ToolCall(id="call_1", name="lookup", arguments={"sku": "A1"})


def conversation() -> list[Message]:
    return [
        Message.user(["What costs this?", pk.Image(PNG)]),
        Message.assistant("", tool_calls=[CALL]),
        Message.tool("4.50 EUR", tool_call_id="call_1", name="lookup"),
    ]


def test_openai_body_carries_parts_and_tool_turns() -> None:
    reply = {
        "id": "c", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "4.50 EUR"},
                     "finish_reason": "stop"}],
    }
    with respx.mock() as mock:
        route = mock.post("http://t/v1/chat/completions").mock(
            return_value=httpx.Response(200, json=reply)
        )
        assert pk.LLM(OpenAIBackend(model="m", base_url="http://t/v1")).complete(
            conversation()
        ).text == "4.50 EUR"
    body: dict[str, Any] = json.loads(route.calls[-1].request.content)
    user, assistant, tool = body["messages"]
    assert user["content"] == [
        {"type": "text", "text": "What costs this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}},
    ]
    assert assistant == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"sku": "A1"}'},
            }
        ],
    }
    assert tool == {
        "role": "tool", "content": "4.50 EUR", "tool_call_id": "call_1", "name": "lookup"
    }


def test_ollama_body_carries_images_and_tool_turns() -> None:
    reply = {"model": "m", "message": {"role": "assistant", "content": "4.50 EUR"},
             "done": True, "done_reason": "stop"}
    with respx.mock() as mock:
        route = mock.post("http://o:11434/api/chat").mock(
            return_value=httpx.Response(200, json=reply)
        )
        pk.LLM(OllamaBackend(model="m", base_url="http://o:11434")).complete(conversation())
    body: dict[str, Any] = json.loads(route.calls[-1].request.content)
    user, assistant, tool = body["messages"]
    assert user["images"] == [B64] and user["content"] == "What costs this?"
    assert assistant["tool_calls"][0]["function"]["arguments"] == {"sku": "A1"}
    assert tool["role"] == "tool" and tool["tool_name"] == "lookup"


def test_cache_key_covers_parts_and_tool_turns() -> None:
    backend = pk.FakeBackend(["x"])
    base = cache_key(backend, Request(messages=conversation()))
    other_image = conversation()
    other_image[0] = Message.user(["What costs this?", pk.Image(PNG + b"\x00")])
    other_call = conversation()
    other_call[1] = Message.assistant(
        "", tool_calls=[pk.ToolCall(id="call_1", name="lookup", arguments={"sku": "B2"})]
    )
    assert len({base, cache_key(backend, Request(messages=other_image)),
                cache_key(backend, Request(messages=other_call))}) == 3
