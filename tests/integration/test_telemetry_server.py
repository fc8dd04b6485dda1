"""A traced call to a real llama-cpp-python server on 127.0.0.1: the client span carries
what the server really sent back (model, finish reason, token counts), and the cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import promptkit as pk

pytestmark = pytest.mark.integration


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]


def test_traced_call_to_a_llama_server(llama_server: str, spans: Any) -> None:
    llm = pk.connect(
        "llama-server",
        base_url=llama_server,
        model="smollm2",
        prices={"llama-server": (1.0, 2.0)},  # a backend-wide price
    )
    with llm:
        done = llm.complete("Say hello.", max_tokens=8, temperature=0, seed=3)
    (span,) = spans.get_finished_spans()
    a = dict(span.attributes or {})
    assert span.name == "chat smollm2"
    assert a["gen_ai.provider.name"] == "llama.cpp"
    assert a["gen_ai.request.max_tokens"] == 8 and a["gen_ai.request.seed"] == 3
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == urlsplit(llama_server).port
    assert a["gen_ai.usage.input_tokens"] == done.usage.prompt_tokens > 0
    assert a["gen_ai.usage.output_tokens"] == done.usage.completion_tokens <= 8
    assert a["gen_ai.response.finish_reasons"] == (done.finish_reason,)
    assert a["gen_ai.response.model"] == done.model
    expected = (done.usage.prompt_tokens * 1.0 + done.usage.completion_tokens * 2.0) / 1e6
    assert done.cost == pytest.approx(expected)
    assert a["promptkit.cost_usd"] == pytest.approx(expected)


def test_traced_tool_loop_against_a_llama_server(llama_tools_server: str, spans: Any) -> None:
    from promptkit.backends.llama_server import LlamaServerBackend

    def km_to_miles(km: float) -> float:
        """Convert kilometres to miles."""
        return round(km / 1.609344, 3)

    loop = pk.ToolLoop(
        "Convert 10 km to miles.",
        tools=[km_to_miles],
        tool_choice="km_to_miles",
        max_steps=2,
        params=pk.SamplingParams(max_tokens=64, temperature=0),
    )
    result = loop.run(pk.LLM(LlamaServerBackend(base_url=llama_tools_server, model="smollm2")))
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}

    def parent(s: Any) -> str | None:
        return by_id[s.parent.span_id].name if s.parent is not None else None

    (root,) = [s for s in finished if s.name == "promptkit.tool_loop"]
    steps = [s for s in finished if s.name == "promptkit.tool_loop.step"]
    chats = [s for s in finished if s.name == "chat smollm2"]
    tools = [s for s in finished if s.name == "execute_tool km_to_miles"]
    assert len(steps) == len(result.steps) == len(chats) == 2
    assert {parent(s) for s in steps} == {"promptkit.tool_loop"}
    assert {parent(s) for s in chats} == {"promptkit.tool_loop.step"}
    assert len(tools) == len(result.steps[0].runs) >= 1
    (tool,) = tools[:1]
    assert tool.parent is not None and tool.parent.span_id == steps[0].context.span_id
    a = dict(tool.attributes or {})
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.call.id"] == result.steps[0].runs[0].call.id
    assert "gen_ai.tool.call.arguments" not in a  # content capture is off by default
    assert dict(root.attributes or {})["promptkit.tool_loop.steps"] == 2
    usage = dict(chats[0].attributes or {})
    assert usage["gen_ai.usage.input_tokens"] == result.steps[0].completion.usage.prompt_tokens
