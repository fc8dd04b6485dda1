"""The tool loop: call the model with tools, run the tools it asks for, feed the results
back, until it answers in text or runs out of steps.

>>> import promptkit as pk
>>> def add(a: int, b: int) -> int:
...     '''Add two whole numbers.'''
...     return a + b
>>> fake = pk.FakeBackend([[pk.ToolCall(name="add", arguments={"a": 2, "b": 3})], "It is 5."])
>>> result = pk.ToolLoop("What is 2 + 3?", tools=[add]).run(pk.LLM(fake))
>>> result.output, result.stopped_by, [r.text for r in result.steps[0].runs]
('It is 5.', 'answer', ['5'])
>>> [m.role for m in fake.requests[1].messages]
['user', 'assistant', 'tool']

Each step is one model call; the calls it asks for run concurrently where they can (on the
event loop under ``arun``; on threads under ``run``) and their results go back as ``tool``
messages, in the order the model asked. Arguments are validated before a tool runs; a call
whose arguments fail (or that names no known tool) is answered with an error message so
the model can correct itself, at most ``max_argument_errors`` times in a run. A tool that
raises is answered with the error too (``on_tool_error="feed"``) or stops the loop with a
:class:`~promptkit.ToolError` (``"raise"``). Nothing runs but the functions given.

Tool results are untrusted text: what is fed back is neutralised like a prompt's untrusted
values (chat-template special tokens broken, invisible characters shown), so a web page
a tool fetched cannot open a turn of its own on a local server; ``neutralise_results=False``
feeds them back unchanged.

With an OpenTelemetry SDK configured, a run is a ``promptkit.tool_loop`` span (tools, max
steps; at the end steps taken, tool calls answered, ``stopped_by``), each step a
``promptkit.tool_loop.step`` span over its ``chat`` client span (tool calls, argument
errors, tool errors), and each tool run an ``execute_tool {name}`` span by the GenAI
conventions (``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``gen_ai.tool.type``,
``gen_ai.tool.description``, ``error.type`` when it raised; ``gen_ai.tool.call.arguments``
and ``gen_ai.tool.call.result`` only when the LLM captures content), a child of its step
on pool threads and on the event loop alike.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from .._errors import ParameterError, ToolArgumentsError, ToolError
from .._params import merge_params
from .._sync import run_jobs
from .._telemetry import carry_context, span
from .._tools import Tool, ToolLike, as_tools, result_text
from .._types import Completion, Message, ToolCall, Usage
from .._untrusted import neutralise
from ..prompts import PromptBase
from ._plan import (
    Call,
    Plan,
    Strategy,
    Work,
    check_choices,
    enter,
    leave,
    one,
    prompt_params,
    rendered,
    traced,
)

if TYPE_CHECKING:
    from .._client import LLM, MessagesLike
    from .._params import SamplingParams

__all__ = ["ToolLoop", "ToolLoopResult", "ToolRun", "ToolStep"]

StopReason = Literal["answer", "max_steps"]


@dataclass(frozen=True)
class ToolRun:
    """One tool call of a step: the ``call`` as the model made it, the validated
    ``arguments`` (None when they failed), the tool's return ``value`` (as returned), the
    ``text`` fed back as the tool message (neutralised unless the loop has
    ``neutralise_results=False``), the ``error`` (None when it ran fine) and how long it
    ran."""

    call: ToolCall
    arguments: Any = None
    value: Any = None
    text: str = ""
    error: str | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """The tool ran and returned."""
        return self.error is None


@dataclass(frozen=True)
class ToolStep:
    """One model call of the loop and the tool calls it made (``runs``, in the model's
    order; empty for the final answer, and for a last step cut by ``max_steps``)."""

    number: int
    completion: Completion = field(repr=False)
    runs: tuple[ToolRun, ...] = ()
    elapsed_s: float = 0.0

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """The tool calls the model asked for in this step."""
        return self.completion.tool_calls


@dataclass(frozen=True)
class ToolLoopResult:
    """The final text (``output``), every step, why the loop ended (``"answer"``: the model
    answered without calling tools; ``"max_steps"``: it was still calling tools), the whole
    conversation (``messages``, tool turns included) and the usage summed over every call."""

    output: str
    steps: tuple[ToolStep, ...]
    stopped_by: StopReason
    messages: tuple[Message, ...] = field(repr=False)
    usage: Usage = field(default_factory=Usage, repr=False)

    @property
    def text(self) -> str:
        """The final text."""
        return self.output

    @property
    def runs(self) -> list[ToolRun]:
        """Every tool run of every step, in order."""
        return [r for s in self.steps for r in s.runs]


class _Pending:
    """A call with validated arguments, waiting to run."""

    __slots__ = ("call", "tool", "valid")

    def __init__(self, call: ToolCall, tool: Tool, valid: Any) -> None:
        self.call = call
        self.tool = tool
        self.valid = valid


def _outcome(pending: _Pending, value: Any, error: BaseException | None, took: float) -> ToolRun:
    if error is not None:
        text = f"Error: the tool raised {type(error).__name__}: {error}"
        return ToolRun(pending.call, pending.valid, None, text, text, took)
    return ToolRun(pending.call, pending.valid, value, result_text(value), None, took)


def _tool_attributes(p: _Pending, capture: bool) -> dict[str, Any]:
    """An ``execute_tool`` span's attributes, by the GenAI semantic conventions (the
    arguments only when content is captured)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": p.tool.name,
        "gen_ai.tool.type": "function",
    }
    if p.call.id:
        attrs["gen_ai.tool.call.id"] = p.call.id
    if p.tool.description:
        attrs["gen_ai.tool.description"] = p.tool.description
    if capture:
        attrs["gen_ai.tool.call.arguments"] = p.call.raw_arguments
    return attrs


def _invoke(p: _Pending) -> Any:
    """Run a tool in this thread (an ``async`` tool on an event loop of its own)."""
    fn = p.tool._fn()
    if p.tool.is_async:
        return asyncio.run(p.tool._invoke(fn, p.valid))
    return p.tool._invoke(fn, p.valid)


class _RunTools(Work):
    """The driver's part: run a step's valid calls, concurrently; (value, error, seconds)
    per call, in order. A tool's exception is returned, not raised. ``trace``: each run
    in an ``execute_tool`` span (a child of the current step span, on any thread);
    ``capture``: with its arguments and result."""

    def __init__(
        self, pending: list[_Pending], concurrent: bool, trace: bool = False, capture: bool = False
    ) -> None:
        self.pending = pending
        self.concurrent = concurrent
        self.trace = trace
        self.capture = capture

    def _one(self, p: _Pending) -> tuple[Any, BaseException | None, float]:
        started = time.perf_counter()
        try:
            if self.trace:
                with span(f"execute_tool {p.tool.name}", _tool_attributes(p, self.capture)) as s:
                    value = _invoke(p)
                    if self.capture:
                        s.set("gen_ai.tool.call.result", result_text(value))
            else:
                value = _invoke(p)
        except Exception as exc:
            return None, exc, time.perf_counter() - started
        return value, None, time.perf_counter() - started

    def run(self, limit: int) -> list[tuple[Any, BaseException | None, float]]:
        if not self.concurrent or len(self.pending) < 2:
            return [self._one(p) for p in self.pending]
        jobs: list[Callable[[], Any]] = [functools.partial(self._one, p) for p in self.pending]
        if self.trace:  # the pool threads' execute_tool spans get the step span as parent
            jobs = [carry_context(job) for job in jobs]
        return run_jobs(jobs, limit)

    async def arun(self, limit: int) -> list[tuple[Any, BaseException | None, float]]:
        sem = asyncio.Semaphore(max(1, limit if self.concurrent else 1))

        async def invoke(p: _Pending) -> Any:
            fn = p.tool._fn()
            if p.tool.is_async:
                return await p.tool._invoke(fn, p.valid)
            return await asyncio.to_thread(p.tool._invoke, fn, p.valid)

        async def one_call(p: _Pending) -> tuple[Any, BaseException | None, float]:
            async with sem:
                started = time.perf_counter()
                try:
                    if self.trace:
                        name = f"execute_tool {p.tool.name}"
                        async with span(name, _tool_attributes(p, self.capture)) as s:
                            value = await invoke(p)
                            if self.capture:
                                s.set("gen_ai.tool.call.result", result_text(value))
                    else:
                        value = await invoke(p)
                except Exception as exc:
                    return None, exc, time.perf_counter() - started
                return value, None, time.perf_counter() - started

        return list(await asyncio.gather(*(one_call(p) for p in self.pending)))


class ToolLoop(Strategy[ToolLoopResult]):
    """Call the model with ``tools`` and run the tools it calls until it answers.

    ``prompt_or_messages``: a prompt (rendered with the run's variables), a string (one
    user message) or a list of messages. ``tools``: :class:`~promptkit.Tool` objects or
    typed functions. ``max_steps``: the most model calls (default 8). ``on_tool_error``:
    ``"feed"`` (default) answers a failing call with the error text, ``"raise"`` stops with
    :class:`~promptkit.ToolError`. ``max_argument_errors`` (default 3): how many calls with
    bad arguments (or an unknown tool) are answered with the error before the loop raises
    :class:`~promptkit.ToolArgumentsError`. ``tool_choice`` applies to the first step
    only (later steps use ``"auto"``, so that the model can answer); ``concurrent=False``
    runs a step's calls one after the other.

    Tool results come from outside (web pages, files, other services), so the text fed
    back is neutralised like a prompt's untrusted values (:func:`~promptkit.neutralise`:
    chat-template special tokens broken, invisible characters shown) and cannot forge a
    turn on a server that tokenizes it: ``special_tokens`` (default
    :data:`~promptkit.COMMON_SPECIAL_TOKENS`; ``llm.special_tokens()`` for the model's
    own), ``neutralise_results=False`` to feed results back unchanged. ``ToolRun.text``
    is the text fed back; ``ToolRun.value`` the tool's own return value. Ordinary text
    that spells a special token gets the zero-width space too (HTML's ``<s>`` is also
    Llama 2's): pass the model's own ``special_tokens`` to touch only what it parses.
    """

    def __init__(
        self,
        prompt_or_messages: PromptBase | MessagesLike,
        *,
        tools: Sequence[ToolLike],
        max_steps: int = 8,
        on_tool_error: Literal["feed", "raise"] = "feed",
        max_argument_errors: int = 3,
        tool_choice: str | None = None,
        parallel_tool_calls: bool | None = None,
        concurrent: bool = True,
        neutralise_results: bool = True,
        special_tokens: Sequence[str] | None = None,
        params: SamplingParams | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise ParameterError(f"max_steps={max_steps!r}: expected a whole number >= 1.")
        if on_tool_error not in ("feed", "raise"):
            raise ParameterError(f"on_tool_error={on_tool_error!r}: expected 'feed' or 'raise'.")
        if max_argument_errors < 0:
            raise ParameterError(f"max_argument_errors={max_argument_errors!r}: expected >= 0.")
        self.tools = as_tools(tools)
        if not self.tools:
            raise ParameterError("ToolLoop needs at least one tool: tools=[...].")
        self.source = prompt_or_messages
        self.max_steps = max_steps
        self.on_tool_error = on_tool_error
        self.max_argument_errors = max_argument_errors
        self.tool_choice = tool_choice
        self.parallel_tool_calls = parallel_tool_calls
        self.concurrent = concurrent
        self.neutralise_results = neutralise_results
        self.special_tokens = tuple(special_tokens) if special_tokens is not None else None
        self.params = params
        self.name = name
        self._by_name = {t.name: t for t in self.tools}
        self._specs = tuple(t.spec() for t in self.tools)

    def __repr__(self) -> str:
        return f"ToolLoop(tools={[t.name for t in self.tools]}, max_steps={self.max_steps})"

    @property
    def variables(self) -> frozenset[str] | None:
        """The prompt's variables (none for fixed messages)."""
        if isinstance(self.source, PromptBase):
            got = getattr(self.source, "variables", None)
            return frozenset(got) if isinstance(got, (set, frozenset)) else None
        return frozenset()

    def value(self, result: Any) -> Any:
        return result.output

    def _check(self, call: ToolCall, errors: int) -> tuple[_Pending | None, ToolRun | None]:
        """A call's tool and validated arguments, or the error run fed back instead."""
        tool = self._by_name.get(call.name)
        try:
            if tool is None:
                raise ToolArgumentsError(
                    f"There is no tool named {call.name!r}; the tools are {sorted(self._by_name)}.",
                    tool=call.name,
                    raw=call.raw_arguments,
                    call_id=call.id,
                )
            valid = tool.validate(call.arguments, call_id=call.id)
        except ToolArgumentsError as exc:
            if errors >= self.max_argument_errors:
                raise
            text = f"Error: {exc} Call the tool again with corrected arguments."
            return None, ToolRun(call, None, None, text, str(exc))
        return _Pending(call, tool, valid), None

    def _fed_back(self, run: ToolRun) -> ToolRun:
        """``run`` with the text fed back neutralised (unless ``neutralise_results=False``)."""
        if not self.neutralise_results:
            return run
        text = neutralise(run.text, self.special_tokens)
        return run if text == run.text else replace(run, text=text)

    def plan(
        self, llm: LLM, variables: Mapping[str, Any], params: SamplingParams | None = None
    ) -> Plan[ToolLoopResult]:
        """Call, run tools, feed back, repeat (see the class doc); a generator of calls.
        Traced as a ``promptkit.tool_loop`` span, a ``promptkit.tool_loop.step`` span per
        step (over its client span) and an ``execute_tool {name}`` span per tool run."""
        return traced(
            "promptkit.tool_loop",
            {
                "promptkit.strategy": self.label,
                "promptkit.tool_loop.tools": len(self.tools),
                "promptkit.tool_loop.max_steps": self.max_steps,
            },
            self._plan(llm, variables, params),
            lambda result: {
                "promptkit.tool_loop.steps": len(result.steps),
                "promptkit.tool_loop.tool_calls": len(result.runs),
                "promptkit.tool_loop.stopped_by": result.stopped_by,
            },
        )

    def _plan(
        self, llm: LLM, variables: Mapping[str, Any], params: SamplingParams | None
    ) -> Plan[ToolLoopResult]:
        if isinstance(self.source, PromptBase):
            messages = list((yield from rendered(self.source, variables)))
            call_params = prompt_params(self.source, self.params, params)
        else:
            from .._client import as_messages

            if variables:
                raise ParameterError(
                    f"ToolLoop over fixed messages takes no variables; got {sorted(variables)}."
                )
            messages = as_messages(self.source)
            call_params = merge_params(self.params, params)
        steps: list[ToolStep] = []
        usage = Usage()
        arg_errors = 0
        stopped_by: StopReason = "max_steps"
        capture = bool(llm.observers.capture_content)
        for number in range(1, self.max_steps + 1):
            started = time.perf_counter()
            traced_step = yield from enter(
                "promptkit.tool_loop.step", {"promptkit.tool_loop.step": number}
            )
            choice = self.tool_choice if number == 1 else ("auto" if self.tool_choice else None)
            done = yield from one(
                Call(
                    tuple(messages),
                    call_params,
                    tools=self._specs,
                    tool_choice=choice,
                    parallel_tool_calls=self.parallel_tool_calls,
                )
            )
            check_choices(done, llm.backend.name)
            usage = usage + done.usage
            reply = done.choices[0]
            messages.append(reply.message())
            calls = {"promptkit.tool_loop.tool_calls": len(reply.tool_calls)}
            if not reply.tool_calls:
                steps.append(ToolStep(number, done, (), time.perf_counter() - started))
                stopped_by = "answer"
                yield from leave(traced_step, calls)
                break
            if number == self.max_steps:  # no model call left to read the results
                steps.append(ToolStep(number, done, (), time.perf_counter() - started))
                yield from leave(traced_step, calls)
                break
            slots: list[ToolRun | _Pending] = []
            for call in reply.tool_calls:
                pending, failed = self._check(call, arg_errors)
                if failed is not None:
                    arg_errors += 1
                    slots.append(failed)
                elif pending is not None:
                    slots.append(pending)
            todo = [s for s in slots if isinstance(s, _Pending)]
            work = _RunTools(todo, self.concurrent, trace=traced_step is not None, capture=capture)
            outcomes = iter((yield work) if todo else [])
            runs: list[ToolRun] = []
            tool_errors = 0
            for slot in slots:
                if isinstance(slot, _Pending):
                    value, error, took = next(outcomes)
                    tool_errors += error is not None
                    if error is not None and self.on_tool_error == "raise":
                        raise ToolError(
                            f"Tool {slot.tool.name!r} raised {type(error).__name__}: {error} "
                            "(on_tool_error='raise'; use 'feed' to let the model see it).",
                            tool=slot.tool.name,
                            call_id=slot.call.id,
                            steps=tuple(steps),
                        ) from error
                    run = _outcome(slot, value, error, took)
                else:
                    run = slot
                run = self._fed_back(run)
                runs.append(run)
                messages.append(
                    Message.tool(run.text, tool_call_id=run.call.id, name=run.call.name)
                )
            steps.append(ToolStep(number, done, tuple(runs), time.perf_counter() - started))
            yield from leave(
                traced_step,
                {
                    **calls,
                    "promptkit.tool_loop.argument_errors": len(slots) - len(todo),
                    "promptkit.tool_loop.tool_errors": tool_errors,
                },
            )
        final = steps[-1].completion.text if steps else ""
        return ToolLoopResult(final, tuple(steps), stopped_by, tuple(messages), usage)
