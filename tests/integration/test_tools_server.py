"""Tool calling end to end against a real llama.cpp server on 127.0.0.1 (issue 15).

llama-cpp-python's server takes ``tools`` with ``--chat_format chatml-function-calling``.
SmolLM2-135M rarely calls a tool on its own (``tool_choice="auto"``), but a named
``tool_choice`` makes the server constrain the reply to a call of that tool: the loop then
runs the tool, feeds the result back and gets a text answer. What the tiny model puts in
the arguments is not checked (it is often wrong); that they parse and validate is.
"""

from __future__ import annotations

import pytest

import promptkit as pk
from promptkit.backends.llama_server import LlamaServerBackend

pytestmark = pytest.mark.integration


def km_to_miles(km: float) -> float:
    """Convert kilometres to miles."""
    return round(km / 1.609344, 3)


def llm(url: str) -> pk.LLM:
    return pk.LLM(LlamaServerBackend(base_url=url, model="smollm2"))


def test_named_tool_choice_gives_a_valid_call(llama_tools_server: str) -> None:
    done = llm(llama_tools_server).complete(
        "Convert 10 km to miles.", tools=[km_to_miles], tool_choice="km_to_miles", max_tokens=64
    )
    assert done.tool_calls, done.raw
    call = done.tool_calls[0]
    assert call.name == "km_to_miles" and call.id
    assert isinstance(pk.Tool(km_to_miles).validate(call.arguments)["km"], float)


def test_tool_loop_end_to_end(llama_tools_server: str) -> None:
    ran: list[float] = []

    def convert(km: float) -> float:
        """Convert kilometres to miles."""
        ran.append(km)
        return km_to_miles(km)

    loop = pk.ToolLoop(
        "Convert 10 km to miles.",
        tools=[pk.Tool(convert, name="km_to_miles")],
        tool_choice="km_to_miles",
        max_steps=3,
        params=pk.SamplingParams(max_tokens=64, temperature=0),
    )
    result = loop.run(llm(llama_tools_server))
    assert len(ran) >= 1  # the forced first call ran the user's function
    first = result.steps[0]
    assert first.runs and first.runs[0].ok
    assert result.steps[0].completion.requests == 1
    assert len(result.steps) >= 2  # the result went back to the model
    assert result.usage.total_tokens and result.usage.total_tokens > 0
    tools_msgs = [m for m in result.messages if m.role == "tool"]
    assert tools_msgs[0].tool_call_id == first.runs[0].call.id


def test_streamed_tool_call_assembled(llama_tools_server: str) -> None:
    stream = llm(llama_tools_server).stream(
        "Convert 10 km to miles.", tools=[km_to_miles], tool_choice="km_to_miles", max_tokens=64
    )
    list(stream)
    assert stream.completion is not None
    (call,) = stream.completion.tool_calls
    assert call.name == "km_to_miles"
    assert isinstance(pk.Tool(km_to_miles).validate(call.arguments)["km"], float)
