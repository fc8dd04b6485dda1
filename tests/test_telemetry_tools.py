"""Tool loop tracing (issue 16) with the real OpenTelemetry SDK: a ``promptkit.tool_loop``
span, a ``promptkit.tool_loop.step`` span per step over its client span, and an
``execute_tool {name}`` span per tool run by the GenAI conventions, under both drivers
(tools on pool threads and on the event loop); nothing without an SDK."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from otel_sdk import Otel, installed, runs_fresh

import promptkit as pk
from promptkit import LLM, FakeBackend, ToolCall
from promptkit._telemetry import CAPTURE_ENV


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    yield from installed(monkeypatch)


def call(name: str, **args: object) -> ToolCall:
    return ToolCall(name=name, arguments=args)


def run(loop: pk.ToolLoop, llm: LLM, mode: str) -> pk.ToolLoopResult:
    return loop.run(llm) if mode == "sync" else asyncio.run(loop.arun(llm))


def two_tools() -> tuple[list[Any], set[int]]:
    """Two tools that only return once both are running (so they run on two threads at
    once, whatever the driver), and the threads they ran on."""
    barrier = threading.Barrier(2, timeout=10)
    threads: set[int] = set()

    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        threads.add(threading.get_ident())
        barrier.wait()
        return a + b

    def shout(text: str) -> str:
        threads.add(threading.get_ident())
        barrier.wait()
        return text.upper()

    return [add, shout], threads


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tool_loop_step_and_execute_tool_spans(otel: Otel, mode: str) -> None:
    tools, threads = two_tools()
    fake = FakeBackend([[call("add", a=2, b=3), call("shout", text="hi")], "5 and HI."])
    result = run(pk.ToolLoop("Do both.", tools=tools), LLM(fake), mode)
    assert result.output == "5 and HI." and [r.value for r in result.runs] == [5, "HI"]
    assert len(threads) == 2  # on two threads at once (else the barrier breaks)

    (root,) = otel.named("promptkit.tool_loop")
    assert root.parent is None
    assert dict(root.attributes or {}) == {
        "promptkit.strategy": "ToolLoop",
        "promptkit.tool_loop.tools": 2,
        "promptkit.tool_loop.max_steps": 8,
        "promptkit.tool_loop.steps": 2,
        "promptkit.tool_loop.tool_calls": 2,
        "promptkit.tool_loop.stopped_by": "answer",
    }
    steps = otel.children(root)
    assert [s.name for s in steps] == ["promptkit.tool_loop.step"] * 2
    assert [dict(s.attributes or {}) for s in steps] == [
        {
            "promptkit.tool_loop.step": 1,
            "promptkit.tool_loop.tool_calls": 2,
            "promptkit.tool_loop.argument_errors": 0,
            "promptkit.tool_loop.tool_errors": 0,
        },
        {"promptkit.tool_loop.step": 2, "promptkit.tool_loop.tool_calls": 0},
    ]
    first = otel.children(steps[0])
    assert sorted(s.name for s in first) == [
        "chat fake-model",
        "execute_tool add",
        "execute_tool shout",
    ]
    assert [s.name for s in otel.children(steps[1])] == ["chat fake-model"]
    (chat,) = [s for s in first if s.name.startswith("chat")]
    assert chat.kind is trace.SpanKind.CLIENT

    (add_span,) = [s for s in first if s.name == "execute_tool add"]
    assert add_span.kind is trace.SpanKind.INTERNAL
    assert add_span.status.status_code is trace.StatusCode.UNSET
    assert dict(add_span.attributes or {}) == {  # no arguments nor result: content is off
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.call.id": "call_1_0",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Add two whole numbers.",
    }
    (shout_span,) = [s for s in first if s.name == "execute_tool shout"]
    assert "gen_ai.tool.description" not in (shout_span.attributes or {})  # it has none
    assert shout_span.attributes["gen_ai.tool.call.id"] == "call_1_1"  # type: ignore[index]
    # the tools ran after the model asked for them, and inside their step
    assert all(chat.end_time <= s.start_time for s in first if s is not chat)  # type: ignore[operator]
    assert {s.context.trace_id for s in otel.finished()} == {root.context.trace_id}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_raising_tool_span_has_error_type_and_bad_arguments_are_counted(
    otel: Otel, mode: str
) -> None:
    def fails(x: int) -> int:
        """Always fails."""
        raise RuntimeError(f"boom {x}")

    def add(a: int, b: int) -> int:
        return a + b

    fake = FakeBackend(
        [[call("fails", x=1), call("add", a="not a number", b=1), call("add", a=1, b=1)], "ok"]
    )
    result = run(pk.ToolLoop("Go.", tools=[fails, add], on_tool_error="feed"), LLM(fake), mode)
    assert result.output == "ok" and [r.ok for r in result.runs] == [False, False, True]

    step = otel.named("promptkit.tool_loop.step")[0]
    assert step.attributes["promptkit.tool_loop.tool_calls"] == 3  # type: ignore[index]
    assert step.attributes["promptkit.tool_loop.argument_errors"] == 1  # type: ignore[index]
    assert step.attributes["promptkit.tool_loop.tool_errors"] == 1  # type: ignore[index]
    assert step.status.status_code is trace.StatusCode.UNSET  # the loop went on
    # the call whose arguments failed ran nothing: no span for it
    assert sorted(s.name for s in otel.children(step)) == [
        "chat fake-model",
        "execute_tool add",
        "execute_tool fails",
    ]
    (failed,) = otel.named("execute_tool fails")
    assert failed.attributes["error.type"] == "RuntimeError"  # type: ignore[index]
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert "gen_ai.tool.call.result" not in (failed.attributes or {})
    (ok,) = otel.named("execute_tool add")
    assert "error.type" not in (ok.attributes or {})


def test_tool_error_raised_marks_step_and_loop(otel: Otel) -> None:
    def fails(x: int) -> int:
        raise RuntimeError("boom")

    fake = FakeBackend([[call("fails", x=1)], "never"])
    with pytest.raises(pk.ToolError):
        pk.ToolLoop("Go.", tools=[fails], on_tool_error="raise").run(LLM(fake))
    (tool,) = otel.named("execute_tool fails")
    assert tool.attributes["error.type"] == "RuntimeError"  # type: ignore[index]
    for name in ("promptkit.tool_loop.step", "promptkit.tool_loop"):
        (s,) = otel.named(name)
        assert s.attributes["error.type"] == "ToolError"  # type: ignore[index]
        assert s.status.status_code is trace.StatusCode.ERROR


@pytest.mark.parametrize("how", ["option", "environment"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tool_arguments_and_result_only_with_content_capture(
    otel: Otel, monkeypatch: pytest.MonkeyPatch, mode: str, how: str
) -> None:
    def lookup(city: str) -> dict[str, Any]:
        """Weather for a city."""
        return {"city": city, "sky": "rain"}

    script: list[Any] = [[call("lookup", city="Paris")], "Rain."]
    run(pk.ToolLoop("Weather?", tools=[lookup]), LLM(FakeBackend(list(script))), mode)
    (off,) = otel.named("execute_tool lookup")
    assert not {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"} & set(off.attributes or {})
    otel.spans.clear()

    if how == "environment":
        monkeypatch.setenv(CAPTURE_ENV, "true")  # read when the LLM is made
        llm = LLM(FakeBackend(list(script)))
    else:
        llm = LLM(FakeBackend(list(script)), capture_content=True)
    run(pk.ToolLoop("Weather?", tools=[lookup]), llm, mode)
    (on,) = otel.named("execute_tool lookup")
    assert json.loads(on.attributes["gen_ai.tool.call.arguments"]) == {"city": "Paris"}  # type: ignore[arg-type,index]
    assert json.loads(on.attributes["gen_ai.tool.call.result"]) == {  # type: ignore[arg-type,index]
        "city": "Paris",
        "sky": "rain",
    }


def test_tool_loop_in_a_chain_step_nests(otel: Otel) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    loop = pk.ToolLoop(pk.ZeroShot(instruction="Add."), tools=[add], name="adder")
    chain = pk.Chain(pk.Step(loop, output="sum"), inputs=["input"])
    fake = FakeBackend([[call("add", a=1, b=2)], "3"])
    assert chain.run(LLM(fake), input="1+2").values["sum"] == "3"
    (step,) = otel.named("promptkit.chain.step")
    (root,) = otel.children(step)
    assert root.name == "promptkit.tool_loop"
    assert root.attributes["promptkit.strategy"] == "adder"  # type: ignore[index]
    assert [s.name for s in otel.children(root)] == ["promptkit.tool_loop.step"] * 2


def test_no_sdk_no_spans_and_no_opentelemetry_import() -> None:
    code = (
        "import asyncio, sys, promptkit as pk\n"
        "from promptkit.strategies import _plan, tool_loop\n"
        "def nope(*a, **k):\n"
        "    raise AssertionError('a span was made')\n"
        "tool_loop.span = tool_loop.carry_context = _plan.start_span = nope\n"
        "def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "def script():\n"
        "    calls = [pk.ToolCall(name='add', arguments={'a': 1, 'b': i}) for i in (1, 2)]\n"
        "    return pk.LLM(pk.FakeBackend([calls, 'done']))\n"
        "loop = pk.ToolLoop('q', tools=[add])\n"
        "assert loop.run(script()).output == 'done'\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "import opentelemetry.trace\n"  # the API, but no SDK
        "assert loop.run(script()).output == 'done'\n"
        "assert asyncio.run(loop.arun(script())).output == 'done'\n"
        "print('ok')\n"
    )
    runs_fresh(code)
