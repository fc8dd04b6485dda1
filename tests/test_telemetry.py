"""Tracing, metrics, hooks, logging and cost, with the real OpenTelemetry SDK and its
in-memory exporters (respx mocks and the fake backend: nothing leaves the process)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from otel_sdk import Otel, installed, runs_fresh

import promptkit as pk
from promptkit import FakeBackend, Request
from promptkit._telemetry import CAPTURE_ENV, DURATION_BUCKETS, TOKEN_BUCKETS
from promptkit.strategies import Chain, Refine, SelfConsistency, Step

BASE = "http://llm.test:8123/v1"
KEY = "sk-secret-telemetry-0123456789"


def reply(*texts: str, cached: int | None = None, **extra: Any) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "model": "gpt-test-2025",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            for i, t in enumerate(texts)
        ],
        "usage": usage,
        **extra,
    }


# --------------------------------------------------------------------------- SDK fixture


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """connect() reads PROMPTKIT_* and promptkit.toml: keep both out of these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("PROMPTKIT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    yield from installed(monkeypatch)


def openai_llm(**kw: Any) -> pk.LLM:
    llm = pk.connect("openai", base_url=BASE, api_key=KEY, model="gpt-test", **kw)
    llm.backend.retry.sleep = lambda s: None  # type: ignore[attr-defined]
    return llm


# --------------------------------------------------------------------------- client spans


@respx.mock
def test_chat_span_follows_the_genai_conventions(otel: Otel) -> None:
    respx.post(f"{BASE}/chat/completions").respond(json=reply("a", "b", cached=600))
    llm = openai_llm()
    done = llm.complete(
        "Hi", temperature=0.3, top_p=0.9, max_tokens=50, stop=["END"], seed=7, n=2,
        presence_penalty=0.5, frequency_penalty=0.25,
    )  # fmt: skip
    assert done.texts == ["a", "b"]
    (span,) = otel.finished()
    assert span.name == "chat gpt-test"
    assert span.kind is trace.SpanKind.CLIENT
    a = dict(span.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-test"
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.presence_penalty"] == 0.5
    assert a["gen_ai.request.frequency_penalty"] == 0.25
    assert a["gen_ai.request.stop_sequences"] == ("END",)
    assert a["gen_ai.request.choice.count"] == 2
    assert a["gen_ai.response.model"] == "gpt-test-2025"
    assert a["gen_ai.response.id"] == "chatcmpl-abc"
    assert a["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert a["gen_ai.usage.input_tokens"] == 1000
    assert a["gen_ai.usage.output_tokens"] == 200
    assert a["gen_ai.usage.cache_read.input_tokens"] == 600
    assert a["server.address"] == "llm.test"
    assert a["server.port"] == 8123
    assert "promptkit.cache_hit" not in a  # only hits are marked
    assert "error.type" not in a
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    assert KEY not in otel.exported_text()


@respx.mock
def test_unsent_parameters_are_not_reported(otel: Otel) -> None:
    respx.post(f"{BASE}/chat/completions").respond(json=reply("a"))
    # top_k is not an OpenAI parameter: dropped, so not on the span
    openai_llm(on_unsupported="drop").complete("Hi", top_k=5, temperature=0)
    a = dict(otel.finished()[0].attributes or {})
    assert "gen_ai.request.top_k" not in a
    assert a["gen_ai.request.temperature"] == 0
    assert "gen_ai.request.choice.count" not in a


@respx.mock
def test_errors_retries_and_metrics(otel: Otel) -> None:
    route = respx.post(f"{BASE}/chat/completions")
    route.side_effect = [
        httpx.Response(503, json={"error": {"message": "busy"}}),
        httpx.Response(200, json=reply("ok")),
        httpx.Response(400, json={"error": {"message": "bad"}}),
    ]
    llm = openai_llm()
    assert llm.complete("Hi").text == "ok"
    with pytest.raises(pk.BadRequestError):
        llm.complete("Hi again")
    ok, failed = otel.finished()
    assert ok.attributes["promptkit.attempts"] == 2  # type: ignore[index]
    (event,) = ok.events
    assert event.name == "retry" and event.attributes["promptkit.attempt"] == 2  # type: ignore[index]
    assert failed.attributes["error.type"] == "BadRequestError"  # type: ignore[index]
    assert failed.status.status_code is trace.StatusCode.ERROR
    # metrics: token usage by type (the failed call has none), duration for both calls
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in otel.histogram("gen_ai.client.token.usage")
    }
    assert tokens["input"].sum == 1000 and tokens["output"].sum == 200
    assert list(tokens["input"].explicit_bounds) == TOKEN_BUCKETS
    durations = otel.histogram("gen_ai.client.operation.duration")
    assert sorted(p.count for p in durations) == [1, 1]
    assert list(durations[0].explicit_bounds) == DURATION_BUCKETS
    assert {p.attributes.get("error.type") for p in durations} == {None, "BadRequestError"}
    assert all(p.attributes["gen_ai.request.model"] == "gpt-test" for p in durations)
    assert KEY not in otel.exported_text()


@respx.mock
def test_metric_attribute_sets_follow_the_response_model(otel: Otel) -> None:
    # the attribute sets are made once per response model: a new model is a new set
    route = respx.post(f"{BASE}/chat/completions")
    route.side_effect = [
        httpx.Response(200, json=reply("a")),
        httpx.Response(200, json={**reply("b"), "model": "gpt-test-2026"}),
        httpx.Response(200, json=reply("c")),
    ]
    llm = openai_llm()
    assert [llm.complete(q).text for q in ("1", "2", "3")] == ["a", "b", "c"]
    durations = {
        p.attributes["gen_ai.response.model"]: p.count
        for p in otel.histogram("gen_ai.client.operation.duration")
    }
    assert durations == {"gpt-test-2025": 2, "gpt-test-2026": 1}
    tokens = {
        (p.attributes["gen_ai.response.model"], p.attributes["gen_ai.token.type"]): p.sum
        for p in otel.histogram("gen_ai.client.token.usage")
    }
    assert tokens == {
        ("gpt-test-2025", "input"): 2000,
        ("gpt-test-2025", "output"): 400,
        ("gpt-test-2026", "input"): 1000,
        ("gpt-test-2026", "output"): 200,
    }
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-test",
        "server.address": "llm.test",
        "server.port": 8123,
    }
    for p in otel.histogram("gen_ai.client.token.usage"):
        assert {k: v for k, v in p.attributes.items() if k in base} == base


@respx.mock
def test_async_retry_is_an_event_on_the_current_client_span(otel: Otel) -> None:
    respx.post(f"{BASE}/chat/completions").side_effect = [
        httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "2"}),
        httpx.Response(200, json=reply("ok")),
    ]
    llm = openai_llm()
    waits: list[float] = []

    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    llm.backend.retry.asleep = asleep  # type: ignore[attr-defined]
    assert asyncio.run(llm.acomplete("Hi")).text == "ok"
    (span,) = otel.finished()
    assert span.attributes["promptkit.attempts"] == 2  # type: ignore[index]
    (event,) = span.events
    assert event.attributes["promptkit.waited_s"] == waits[0] == 2.0  # type: ignore[index]


def test_content_capture_off_by_default_on_when_asked(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = pk.LLM(FakeBackend(lambda r: "Paris"))
    llm.complete("Capital of France?")
    monkeypatch.setenv(CAPTURE_ENV, "true")  # read when an LLM is made
    pk.connect("fake", replies=lambda r: "Paris").complete("Capital of France?")
    pk.LLM(FakeBackend(["Paris"]), capture_content=False).complete("Capital of France?")
    monkeypatch.delenv(CAPTURE_ENV)
    pk.LLM(FakeBackend(["Paris"]), capture_content=True).complete("Capital of France?")
    off, env_on, opt_off, opt_on = (dict(s.attributes or {}) for s in otel.finished())
    for a in (off, opt_off):
        assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    for a in (env_on, opt_on):
        assert json.loads(a["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}
        ]
        out = json.loads(a["gen_ai.output.messages"])
        assert out[0]["parts"][0]["content"] == "Paris"


@respx.mock
def test_key_never_exported_even_with_content(otel: Otel) -> None:
    respx.post(f"{BASE}/chat/completions").respond(json=reply("fine"))
    openai_llm(capture_content=True).complete("Hello")
    text = otel.exported_text()
    assert "Hello" in text and KEY not in text


def test_cache_hits_are_marked(otel: Otel, tmp_path: Any) -> None:
    llm = pk.connect("fake", replies=lambda r: "x", cache=tmp_path / "c.sqlite")
    llm.complete("q", temperature=0)
    again = llm.complete("q", temperature=0)
    assert again.cached and again.cost == 0.0
    first, second = otel.finished()
    assert "promptkit.cache_hit" not in (first.attributes or {})
    assert second.attributes["promptkit.cache_hit"] is True  # type: ignore[index]


def test_stream_and_embeddings_spans(otel: Otel) -> None:
    llm = pk.LLM(FakeBackend(lambda r: "Hello there"))
    assert "".join(llm.stream("Hi")) == "Hello there"

    async def astream() -> str:
        return "".join([p async for p in llm.astream("Hi")])

    assert asyncio.run(astream()) == "Hello there"
    llm.embed(["a", "b", "c"], batch_size=2)
    names = [s.name for s in otel.finished()]
    assert names == ["chat fake-model", "chat fake-model"] + ["embeddings fake-model"] * 2
    embed = otel.finished()[-1]
    assert embed.attributes["gen_ai.operation.name"] == "embeddings"  # type: ignore[index]
    assert embed.attributes["gen_ai.embeddings.dimension.count"] == 256  # type: ignore[index]
    assert otel.finished()[0].attributes["gen_ai.response.finish_reasons"] == ("stop",)  # type: ignore[index]


def test_text_completion_operation(otel: Otel) -> None:
    pk.LLM(FakeBackend(["x"])).complete_prompt("Once upon")
    assert otel.finished()[0].name == "text_completion fake-model"


# --------------------------------------------------------------------------- parent spans

COT = pk.ChainOfThought(instruction="Solve the problem.")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_self_consistency_vote_is_a_parent_span(otel: Otel, mode: str) -> None:
    # emulated n: 4 requests, on pool threads (sync) or tasks (async)
    fake = FakeBackend(lambda r: "Reasoning. The answer is 42.", native_n=False)
    sc = SelfConsistency(COT, k=4, early_stop=False)
    llm = pk.LLM(fake)
    vote = (
        sc.run(llm, input="6 x 7?") if mode == "sync" else asyncio.run(sc.arun(llm, input="6 x 7?"))
    )
    assert vote.answer == "42"
    (parent,) = otel.named("promptkit.self_consistency")
    assert parent.attributes["promptkit.vote.k"] == 4  # type: ignore[index]
    assert parent.attributes["promptkit.vote.samples"] == 4  # type: ignore[index]
    kids = otel.children(parent)
    assert len(kids) == 4 and all(k.name == "chat fake-model" for k in kids)
    assert {k.context.trace_id for k in kids} == {parent.context.trace_id}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chain_steps_are_parent_spans(otel: Otel, mode: str) -> None:
    outline = pk.ZeroShot(instruction="Outline.", template="Topic: {{ topic }}")
    essay = pk.ZeroShot(instruction="Write.", template="{{ outline }}")
    chain = Chain(
        Step(outline, output="outline"),
        Step(SelfConsistency(COT, k=2, early_stop=False), output="answer"),
        Step(essay, output="essay"),
        inputs=["topic", "input"],
    )
    fake = FakeBackend(lambda r: ["Ok. The answer is 1."] * int(r.params.get("n", 1)))
    llm = pk.LLM(fake)
    if mode == "sync":
        chain.run(llm, topic="bees", input="q")
    else:
        asyncio.run(chain.arun(llm, topic="bees", input="q"))
    (root,) = otel.named("promptkit.chain")
    assert root.parent is None
    steps = otel.children(root)
    assert [s.name for s in steps] == ["promptkit.chain.step"] * 3
    assert [s.attributes["promptkit.step.name"] for s in steps] == ["outline", "answer", "essay"]  # type: ignore[index]
    assert [k.name for k in otel.children(steps[0])] == ["chat fake-model"]
    (vote,) = otel.children(steps[1])
    assert vote.name == "promptkit.self_consistency"
    assert [k.name for k in otel.children(vote)] == ["chat fake-model"]
    assert [k.name for k in otel.children(steps[2])] == ["chat fake-model"]


def test_failed_chain_step_span_records_the_error(otel: Otel) -> None:
    chain = Chain(Step(pk.ZeroShot(instruction="x"), output="a"), inputs=["input"])

    def boom(r: Request) -> str:
        raise pk.ServerError("down", backend="fake")

    with pytest.raises(pk.ChainStepError):
        chain.run(pk.LLM(FakeBackend(boom)), input="q")
    (step,) = otel.named("promptkit.chain.step")
    assert step.attributes["error.type"] == "ServerError"  # type: ignore[index]
    (root,) = otel.named("promptkit.chain")
    assert root.status.status_code is trace.StatusCode.ERROR


def test_refine_rounds_are_spans(otel: Otel) -> None:
    draft = pk.ZeroShot(instruction="Write.", template="{{ input }}")
    critique = pk.ZeroShot(instruction="Critique.", template="{{ draft }}")
    revise = pk.ZeroShot(instruction="Revise.", template="{{ draft }} {{ critique }}")
    refine = Refine(draft, critique, revise, rounds=2)
    refine.run(pk.LLM(FakeBackend(lambda r: "text")), input="q")
    rounds = otel.named("promptkit.refine.round")
    assert [r.attributes["promptkit.round"] for r in rounds] == [1, 2]  # type: ignore[index]
    assert all(len(otel.children(r)) == 2 for r in rounds)  # critique + revise


def test_batch_and_evaluation_spans_carry_cost(otel: Otel) -> None:
    llm = pk.connect("fake", replies=lambda r: "4", prices={"fake-model": (1.0, 2.0)})
    result = pk.run_batch(
        pk.ZeroShot(instruction="Echo."), llm, [{"input": "a"}] * 3, progress=False
    )
    (batch,) = otel.named("promptkit.batch")
    assert batch.attributes["promptkit.batch.ok"] == 3  # type: ignore[index]
    assert batch.attributes["promptkit.cost_usd"] == result.summary.cost  # type: ignore[index]
    assert len(otel.children(batch)) == 3
    report = pk.evaluate(
        {"zs": pk.ZeroShot(instruction="Add.")},
        [{"question": "2+2?", "answer": 4}],
        llm,
        inputs={"input": "question"},
        expected="answer",
        metric="numeric",
        progress=False,
    )
    (variant,) = otel.named("promptkit.evaluate.variant")
    assert variant.attributes["promptkit.eval.variant"] == "zs"  # type: ignore[index]
    assert variant.attributes["promptkit.cost_usd"] == report.results[0].cost_usd  # type: ignore[index]
    assert report.results[0].cost_usd is not None and report.results[0].cost_usd > 0


# --------------------------------------------------------------------------- no SDK


def test_import_does_not_import_opentelemetry_and_no_sdk_costs_nothing() -> None:
    code = (
        "import sys, promptkit as pk\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "llm = pk.LLM(pk.FakeBackend(['x']))\n"
        "assert llm.complete('q').text == 'x'\n"
        "from promptkit import _telemetry as t\n"
        "assert t.tracer() is None and t.instruments() is None\n"
        "import opentelemetry.trace, opentelemetry.metrics\n"  # API, but no SDK
        "assert t.tracer() is None and t.instruments() is None\n"
        "assert t.observe_request(llm, pk.Request(prompt='q')) is None\n"
        "print('ok')\n"
    )
    runs_fresh(code)


# --------------------------------------------------------------------------- hooks, logging


def test_sync_and_async_hooks_see_the_exact_request_and_completion() -> None:
    seen: list[tuple[str, Any, Any]] = []

    def on_request(req: Request) -> None:
        seen.append(("request", req, None))

    async def on_response(req: Request, done: pk.Completion) -> None:
        await asyncio.sleep(0)
        seen.append(("response", req, done))

    def on_error(req: Request, exc: Exception) -> None:
        seen.append(("error", req, exc))

    calls = iter(["first", pk.ServerError("down", backend="fake"), "third"])

    def script(r: Request) -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    fake = FakeBackend(script)
    llm = pk.connect("fake", on_request=on_request, on_response=on_response, on_error=on_error)
    llm.backend = fake
    llm.complete("a", temperature=0.5)
    with pytest.raises(pk.ServerError):
        llm.complete("b")
    asyncio.run(llm.acomplete("c"))
    kinds = [k for k, _, _ in seen]
    assert kinds == ["request", "response", "request", "error", "request", "response"]
    # the exact Request objects the backend received
    assert [s[1] for s in seen if s[0] == "request"] == fake.requests
    assert seen[0][1].params["temperature"] == 0.5
    assert seen[1][2].text == "first" and seen[5][2].text == "third"
    assert isinstance(seen[3][2], pk.ServerError)


def test_async_hooks_in_async_calls_and_streams() -> None:
    log: list[str] = []

    async def on_request(req: Request) -> None:
        log.append("req")

    async def on_response(req: Request, done: pk.Completion) -> None:
        log.append(f"resp:{done.text}")

    llm = pk.LLM(
        FakeBackend(["one", "two", "three"]), on_request=on_request, on_response=on_response
    )

    async def main() -> None:
        await llm.acomplete("x")
        async for _ in llm.astream("y"):
            pass

    asyncio.run(main())
    "".join(llm.stream("z"))  # an async hook from sync code runs to completion
    assert log == ["req", "resp:one", "req", "resp:two", "req", "resp:three"]


def test_debug_log_per_call_without_content(caplog: pytest.LogCaptureFixture) -> None:
    llm = pk.LLM(FakeBackend(lambda r: "The secret answer"), prices={"fake-model": (1.0, 1.0)})
    with caplog.at_level(logging.INFO, logger="promptkit"):
        llm.complete("my private question")
    assert not caplog.records
    with caplog.at_level(logging.DEBUG, logger="promptkit"):
        llm.complete("my private question")
    (rec,) = [r for r in caplog.records if r.name == "promptkit"]
    msg = rec.getMessage()
    assert rec.levelno == logging.DEBUG and "chat fake-model" in msg and "cost $" in msg
    assert "private" not in msg and "secret" not in msg


# --------------------------------------------------------------------------- cost


@respx.mock
def test_cost_from_the_price_table_with_cached_input() -> None:
    respx.post(f"{BASE}/chat/completions").respond(json=reply("a", cached=600))
    llm = openai_llm(prices={"gpt-test": {"input": 2.0, "output": 8.0, "cached_input": 0.5}})
    done = llm.complete("Hi")
    assert done.usage.cached_tokens == 600
    # 400 fresh x $2 + 600 cached x $0.5 + 200 out x $8, per 1M tokens
    assert done.cost == pytest.approx((400 * 2.0 + 600 * 0.5 + 200 * 8.0) / 1e6)
    # the response's model name prices too; an unknown model is None, never a guess
    assert openai_llm(prices={"gpt-test-2025": (1.0, 1.0)}).complete("Hi").cost == pytest.approx(
        1200 / 1e6
    )
    assert openai_llm().complete("Hi").cost is None


@respx.mock
def test_cached_tokens_from_llama_server_timings() -> None:
    body = reply("a")
    body["timings"] = {"cache_n": 12, "prompt_n": 3}
    respx.post("http://127.0.0.1:8080/v1/chat/completions").respond(json=body)
    llm = pk.connect("llama-server", base_url="http://127.0.0.1:8080/v1")
    done = llm.complete("Hi")
    assert done.usage.cached_tokens == 12
    assert done.cost is None  # a server's model is priced only when the table says so


def test_local_backends_cost_zero_and_batch_summary(tmp_path: Any) -> None:
    assert pk.LLM(FakeBackend(["x"])).complete("q").cost == 0.0
    llm = pk.LLM(FakeBackend(lambda r: "x" * 40), prices={"fake-model": (1.0, 2.0)})
    result = pk.run_batch(
        pk.ZeroShot(instruction="Echo."), llm, [{"input": "a" * 40}] * 5,
        out=tmp_path / "out.jsonl", progress=False,
    )  # fmt: skip
    costs = [c.cost for c in result.completions]
    assert all(c is not None and c > 0 for c in costs)
    assert result.summary.cost == pytest.approx(sum(costs))  # type: ignore[arg-type]
    assert "$" in str(result.summary)
    # resumed results keep their cost
    again = pk.run_batch(
        pk.ZeroShot(instruction="Echo."), llm, [{"input": "a" * 40}] * 5,
        out=tmp_path / "out.jsonl", progress=False,
    )  # fmt: skip
    assert again.summary.resumed == 5
    assert again.summary.cost == pytest.approx(result.summary.cost)


def test_unpriced_batch_cost_is_none() -> None:
    class Remote(FakeBackend):
        name = "remote"

    result = pk.run_batch(
        pk.ZeroShot(instruction="Echo."), pk.LLM(Remote(["x", "y"])), [{"input": "a"}] * 2,
        progress=False,
    )  # fmt: skip
    assert result.summary.cost is None


def test_prices_from_promptkit_toml_and_evaluate(tmp_path: Any) -> None:
    (tmp_path / "promptkit.toml").write_text(
        'backend = "fake"\n'
        "[prices]\n"
        '"fake-model" = { input = 1.0, output = 2.0 }\n'
        '"other" = [3.0, 4.0, 0.3]\n'
    )
    cfg = pk.resolve_config(cwd=tmp_path, env={})
    assert cfg.prices["other"] == pk.Price(3.0, 4.0, 0.3)
    llm = pk.connect(config_file=tmp_path / "promptkit.toml", replies=lambda r: "4")
    assert llm.complete("abcd" * 10).cost == pytest.approx((10 * 1.0 + 0 * 2.0) / 1e6)
    # evaluate() uses the LLM's table; its own prices= win
    rows = [{"question": "2+2?", "answer": 4}]
    zs = {"zs": pk.ZeroShot(instruction="Add.")}
    base = pk.evaluate(
        zs,
        rows,
        llm,
        inputs={"input": "question"},
        expected="answer",
        metric="numeric",
        progress=False,
    )
    over = pk.evaluate(
        zs, rows, llm, inputs={"input": "question"}, expected="answer", metric="numeric",
        progress=False,
        prices={"fake-model": (100.0, 200.0)},
    )  # fmt: skip
    assert base.results[0].cost_usd is not None and over.results[0].cost_usd is not None
    assert over.results[0].cost_usd == pytest.approx(base.results[0].cost_usd * 100)
    with pytest.raises(pk.ConfigurationError, match="prices"):
        (tmp_path / "promptkit.toml").write_text('[prices]\n"m" = [1.0]\n')
        pk.resolve_config(cwd=tmp_path, env={})


def test_a_failure_while_recording_still_ends_the_span(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptkit._telemetry import CallObservation

    def broken(self: Any, *args: Any) -> None:
        raise RuntimeError("exporter trouble")

    monkeypatch.setattr(CallObservation, "_succeeded", broken)
    with pytest.raises(RuntimeError, match="exporter trouble"):
        pk.LLM(FakeBackend(["x"])).complete("q")
    (span,) = otel.finished()  # ended and exported
    assert span.name == "chat fake-model"
    assert not trace.get_current_span().is_recording()  # and no longer current


def test_sampled_out_spans_cost_no_attribute_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # a sampler that drops every trace: no span is exported, the content is never
    # serialised for it, the metrics are still recorded and the call is unchanged
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    import promptkit._telemetry as telemetry

    def never(*args: Any) -> str:
        raise AssertionError("content serialised for a span nobody keeps")

    monkeypatch.setattr(telemetry, "input_messages", never)
    monkeypatch.setattr(telemetry, "output_messages", never)
    gen = installed(monkeypatch)
    otel = next(gen)
    otel.tracer_provider.sampler = ALWAYS_OFF  # type: ignore[misc]
    try:
        llm = pk.LLM(FakeBackend(["x"]), capture_content=True)
        assert llm.complete("q").text == "x"
        assert otel.finished() == []
        (point,) = otel.histogram("gen_ai.client.operation.duration")
        assert point.count == 1
    finally:
        gen.close()


def test_a_failure_while_opening_the_span_ends_it_with_the_error(
    otel: Otel, tmp_path: Any
) -> None:
    # content capture reads the request's media: a missing file fails before the call
    llm = pk.LLM(FakeBackend(["x"]), capture_content=True)
    missing = pk.Image(str(tmp_path / "gone.png"))
    with pytest.raises(pk.MediaError):
        llm.complete([pk.Message.user(["Look:", missing])])
    (span,) = otel.finished()
    assert span.attributes["error.type"] == "MediaError"  # type: ignore[index]
    assert span.status.status_code is trace.StatusCode.ERROR
    assert not trace.get_current_span().is_recording()
