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
