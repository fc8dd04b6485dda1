"""The real OpenTelemetry SDK with in-memory exporters, installed as the global providers
for one test (the pattern of tests/test_telemetry.py, shared by the newer telemetry tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptkit._telemetry import CAPTURE_ENV


def reset_globals() -> None:
    """What opentelemetry's own test utilities do: allow setting the providers again."""
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    metrics_internal._METER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()


class Otel:
    """The exporters of one test: finished spans, by name and by parent."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self) -> list[ReadableSpan]:
        return sorted(self.spans.get_finished_spans(), key=lambda s: s.start_time or 0)

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [
            s
            for s in self.finished()
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]


def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    """A fixture body: the SDK as the global providers, content capture not asked for by
    the environment; everything reset afterwards."""
    monkeypatch.delenv(CAPTURE_ENV, raising=False)
    reset_globals()
    o = Otel()
    trace.set_tracer_provider(o.tracer_provider)
    metrics.set_meter_provider(o.meter_provider)
    yield o
    o.tracer_provider.shutdown()
    o.meter_provider.shutdown()
    reset_globals()
