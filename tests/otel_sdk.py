"""The real OpenTelemetry SDK with in-memory exporters, installed as the global providers
for one test (the pattern of tests/test_telemetry.py, shared by the newer telemetry tests)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

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

    def exported_text(self) -> str:
        """Every exported span and metric as JSON text (to search for what must not be there)."""
        out = [s.to_json() for s in self.finished()]
        data = self.reader.get_metrics_data()
        out.append(data.to_json() if data is not None else "")
        return "\n".join(out)

    def histogram(self, name: str) -> list[Any]:
        """The data points of histogram ``name``."""
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        for rm in data.resource_metrics if data is not None else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        points.extend(m.data.data_points)
        return points

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
    try:
        yield o
    finally:  # also when the generator is closed rather than run to its end
        o.tracer_provider.shutdown()
        o.meter_provider.shutdown()
        reset_globals()


def runs_fresh(code: str) -> None:
    """Run ``code`` in a new interpreter (nothing of this test process imported); it must
    print ``ok`` and exit 0."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
