"""Tracing and cost: a chain traced to the console, and what a small batch cost.

Technique: observability. With an OpenTelemetry SDK configured (here the console exporter,
one line a span), every model call is a ``chat {model}`` span by the GenAI semantic
conventions (tokens, model, finish reason, cost) under the chain's and each step's span; a
price table gives every completion and the batch summary a cost; a hook sees each reply.
Without the SDK installed the recipe still runs, untraced.

Needs: ``pip install "promptkit[otel]" opentelemetry-sdk`` for the spans.
Run:  python cookbook/tracing.py
"""

from __future__ import annotations

from typing import Any

import promptkit as pk

#: Dollars per million tokens (input, output), by backend or model name: what these calls
#: would cost at a hosted model's prices (the embedded model itself costs 0 unless priced).
PRICES = {"llamacpp": (0.15, 0.60), "fake": (0.15, 0.60)}

gist = pk.ZeroShot(instruction="Summarise the text in one sentence.")
title = pk.ZeroShot(
    instruction="Write a title of at most six words for this summary. Reply with the title.",
)
headline = pk.Chain(
    pk.Step(gist, name="gist", output="gist"),
    pk.Step(title, name="title", output="title", inputs={"input": "gist"}),
    inputs=["input"],
)

TEXT = (
    "Bees pollinate about a third of the crops people eat. Their numbers have fallen in "
    "many countries because of habitat loss, pesticides and disease, and farmers now rent "
    "hives to pollinate orchards."
)
REVIEWS = ["Great kettle, boils fast.", "Stopped working after a week.", "Does the job."]


def trace_to_console() -> bool:
    """Install an OpenTelemetry SDK that prints one line per finished span; False when the
    SDK is not installed."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        return False

    def one_line(span: Any) -> str:
        keep = ("gen_ai.usage.", "gen_ai.response.finish_reasons", "promptkit.cost_usd")
        attrs = {k: v for k, v in (span.attributes or {}).items() if k.startswith(keep)}
        return f"span {span.name} {attrs}\n"

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
    trace.set_tracer_provider(provider)
    return True


def main(llm: pk.LLM) -> tuple[dict[str, str], float | None]:
    """Run the chain once and a batch of three; the chain's outputs and the batch's cost."""
    costs: list[float | None] = []
    priced = pk.LLM(  # the same backend, with a price table and a hook
        llm.backend,
        prices=PRICES,
        on_response=lambda request, completion: costs.append(completion.cost),
    )
    params = pk.PRECISE | pk.SamplingParams(max_tokens=40)
    result = headline.run(priced, input=TEXT, params=params)
    print(f"title: {str(result.values['title']).strip()}")
    print(f"the chain's {len(costs)} calls cost ${sum(c or 0.0 for c in costs):.6f}")

    sentiment = pk.ZeroShot(
        instruction="Is this review positive or negative? Reply with one word.",
        params=params,
    )
    batch = sentiment.batch(priced, [{"input": r} for r in REVIEWS], progress=False)
    print(batch.summary)  # inputs, tokens and the batch's cost
    outputs = {k: str(result.values[k]).strip() for k in ("gist", "title")}
    return outputs, batch.summary.cost


if __name__ == "__main__":
    trace_to_console()
    main(pk.connect())
