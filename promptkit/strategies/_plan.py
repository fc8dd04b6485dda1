"""What every strategy shares: a *plan* of model calls, run sync or async.

A strategy does not call the model itself. Its :meth:`Strategy.plan` is a generator that
yields batches of :class:`Call` and receives, for each batch, the Completions in the same
order; it returns the strategy's result. It does not render its prompts itself either: it
yields a :class:`Render` (``messages = yield from rendered(prompt, variables)``) and
receives the messages. Two drivers run plans:

- :func:`drive` (sync): the requests of a batch run on a shared thread pool, at most
  ``llm.max_concurrency`` at once. ``n`` samples on a backend without native ``n`` become
  ``n`` concurrent single-choice requests with distinct seeds, topped up when short,
  exactly as :class:`LLM` builds them for ``acomplete``. Prompts are rendered with
  ``render()``;
- :func:`adrive` (async): a batch runs concurrently on the event loop through
  :meth:`LLM.acomplete <promptkit.LLM.acomplete>`, which sends ``n`` natively or as
  concurrent requests (bounded) with distinct seeds, and tops up short replies. Prompts
  are rendered with ``await arender()``, so a retriever's or example selector's I/O does
  not block the event loop.

So the same strategy code gets the same concurrency in both worlds, works from inside a
running event loop (sync calls block their thread, as sync calls do), and composes: a
chain step runs a sub-strategy's plan with ``yield from``.

A plan marks the parts worth a tracing span (a vote, a chain step, a refinement round) with
:func:`traced` (or :func:`enter`/:func:`leave`); when an OpenTelemetry SDK is configured the
driver opens the span, makes it current for the calls inside, and closes it. Without one
the plan yields no markers at all.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .._errors import MalformedResponseError
from .._params import SamplingParams, merge_params
from .._sync import run_jobs
from .._telemetry import carry_context, start_span, tracer
from .._types import Completion, Message, Usage
from ..prompts import arender_prompt

if TYPE_CHECKING:
    from .._client import LLM
    from ..prompts import PromptBase

__all__ = [
    "Call",
    "Enter",
    "Leave",
    "Plan",
    "Render",
    "Strategy",
    "Work",
    "adrive",
    "drive",
    "enter",
    "leave",
    "rendered",
    "traced",
]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: Names a Prompt accepts besides its template variables (documents, history).
PASS_THROUGH = frozenset({"documents", "history"})


@dataclass(frozen=True)
class Call:
    """One logical model call: ``n`` choices for ``messages``."""

    messages: Sequence[Message]
    params: SamplingParams | None = None
    n: int = 1
    response_format: dict[str, Any] | None = None
    #: Tools offered (request form, see :func:`promptkit._tools.tool_specs`) and the choice.
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None


class Work(ABC):
    """A plan's request to run local work (a tool loop's tool calls); the driver sends
    back the result of :meth:`run` (sync driver) or :meth:`arun` (async driver)."""

    @abstractmethod
    def run(self, limit: int) -> Any:
        """Do the work in this thread (fanning out on at most ``limit`` threads)."""

    @abstractmethod
    async def arun(self, limit: int) -> Any:
        """Do the work on the event loop."""


@dataclass(frozen=True)
class Render:
    """A plan's request for ``prompt``'s messages with ``variables``; the driver sends
    them back (:func:`drive` calls ``render()``, :func:`adrive` awaits ``arender()``)."""

    prompt: PromptBase
    variables: Mapping[str, Any]


@dataclass(frozen=True)
class Enter:
    """A plan's request to open a tracing span; the driver sends back its depth."""

    name: str
    attrs: Mapping[str, Any]


@dataclass(frozen=True)
class Leave:
    """A plan's request to close the span opened at ``depth`` (and any left open inside)."""

    depth: int
    error: BaseException | None = None
    attrs: Mapping[str, Any] | None = None


#: A strategy's plan: yields batches of calls (and is sent their Completions) or a
#: :class:`Render` (and is sent the messages); returns ``R``.
Plan = Generator[list[Call] | Render | Enter | Leave | Work, Any, R]


def enter(name: str, attrs: Mapping[str, Any]) -> Plan[int | None]:
    """Open a span ``name`` for what follows (None, and nothing yielded, when not tracing)."""
    if tracer() is None:
        return None
    depth: int = yield Enter(name, attrs)
    return depth


def leave(
    depth: int | None,
    attrs: Mapping[str, Any] | None = None,
    error: BaseException | None = None,
) -> Plan[None]:
    """Close the span :func:`enter` opened (a no-op for ``None``)."""
    if depth is not None:
        yield Leave(depth, error, attrs)


def traced(
    name: str,
    attrs: Mapping[str, Any],
    plan: Plan[R],
    result_attrs: Callable[[R], Mapping[str, Any]] | None = None,
) -> Plan[R]:
    """``plan`` inside a span ``name``; ``result_attrs(result)`` is added when it ends."""
    depth = yield from enter(name, attrs)
    if depth is None:
        return (yield from plan)
    try:
        result = yield from plan
    except GeneratorExit:
        raise
    except BaseException as exc:
        yield Leave(depth, exc)
        raise
    yield Leave(depth, None, result_attrs(result) if result_attrs is not None else None)
    return result


class _Spans:
    """The spans a driver holds open for its plan, innermost last."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open: list[Any] = []

    def handle(self, step: Enter | Leave) -> int | None:
        if isinstance(step, Enter):
            self.open.append(start_span(step.name, step.attrs))
            return len(self.open) - 1
        if step.depth >= len(self.open):  # already closed (an inner failure closed it)
            return None
        for key, value in (step.attrs or {}).items():
            if self.open[step.depth] is not None:
                self.open[step.depth].set(key, value)
        self.close(step.error, step.depth)
        return None

    def close(self, error: BaseException | None, depth: int = 0) -> None:
        while len(self.open) > depth:
            span = self.open.pop()
            if span is not None:
                span.__exit__(type(error) if error else None, error, None)


def one(call: Call) -> Plan[Completion]:
    """A plan of a single call."""
    (done,) = yield [call]
    return cast(Completion, done)


def rendered(prompt: PromptBase, variables: Mapping[str, Any]) -> Plan[list[Message]]:
    """A plan of rendering ``prompt`` with ``variables``: its messages."""
    messages: list[Message] = yield Render(prompt, variables)
    return messages


def prompt_params(prompt: PromptBase, *layers: SamplingParams | None) -> SamplingParams | None:
    """The prompt's own params, then each layer on top."""
    params: SamplingParams | None = None
    for layer in layers:
        params = merge_params(params, layer)
    return prompt._params(params)


def prompt_variables(prompt: object) -> frozenset[str] | None:
    """The variables a prompt's render() needs, or None when the prompt does not say."""
    names = getattr(prompt, "variables", None)
    if isinstance(names, (frozenset, set)):
        return frozenset(names)
    return None


def select(prompt: object, available: Mapping[str, Any]) -> dict[str, Any]:
    """The variables to render ``prompt`` with: those it uses (plus ``documents`` and
    ``history`` when given), or all of ``available`` when the prompt does not say."""
    names = prompt_variables(prompt)
    if names is None:
        return dict(available)
    return {k: v for k, v in available.items() if k in names or k in PASS_THROUGH}


def total_usage(completions: Sequence[Completion]) -> Usage:
    """The usage of several completions, summed."""
    usage = Usage()
    for c in completions:
        usage = usage + c.usage
    return usage


# --------------------------------------------------------------------------- sync


def _complete(llm: LLM, call: Call) -> Completion:
    return llm.complete(
        call.messages,
        params=call.params,
        response_format=call.response_format,
        n=call.n,
        **_tooling(call),
    )


def _tooling(call: Call) -> dict[str, Any]:
    if not call.tools:
        return {}
    return {
        "tools": call.tools,
        "tool_choice": call.tool_choice,
        "parallel_tool_calls": call.parallel_tool_calls,
    }


def run_calls(llm: LLM, calls: Sequence[Call]) -> list[Completion]:
    """Run a batch of calls concurrently (threads, at most ``llm.max_concurrency`` at once);
    results in order. A call for ``n > 1`` choices is one :meth:`LLM.complete
    <promptkit.LLM.complete>`, which sends its own requests concurrently and tops them up."""
    jobs = [carry_context(functools.partial(_complete, llm, call)) for call in calls]
    return run_jobs(jobs, llm.max_concurrency)  # carry_context: the current span, when tracing


def drive(plan: Plan[R], llm: LLM) -> R:
    """Run ``plan`` to its result, sending its calls to ``llm`` (sync)."""
    spans = _Spans()
    try:
        step = next(plan)
        while True:
            error: Exception | None = None
            try:
                if isinstance(step, Render):
                    answer: Any = step.prompt.render(**step.variables)
                elif isinstance(step, (Enter, Leave)):
                    answer = spans.handle(step)
                elif isinstance(step, Work):
                    answer = step.run(llm.max_concurrency)
                else:
                    answer = run_calls(llm, step)
            except Exception as exc:
                error = exc
            step = plan.send(answer) if error is None else plan.throw(error)
    except StopIteration as stop:
        spans.close(None)
        return cast(R, stop.value)
    except BaseException as exc:
        spans.close(exc)
        raise


# --------------------------------------------------------------------------- async


async def _acomplete(llm: LLM, call: Call) -> Completion:
    return await llm.acomplete(
        call.messages,
        params=call.params,
        response_format=call.response_format,
        n=call.n,
        **_tooling(call),
    )


async def arun_calls(llm: LLM, calls: Sequence[Call]) -> list[Completion]:
    """Run a batch of calls concurrently; results in order. On a failure the other calls
    of the batch are cancelled."""
    if len(calls) == 1:
        return [await _acomplete(llm, calls[0])]
    sem = asyncio.Semaphore(max(1, llm.max_concurrency))

    async def bounded(call: Call) -> Completion:
        async with sem:
            return await _acomplete(llm, call)

    tasks = [asyncio.ensure_future(bounded(call)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def adrive(
    plan: Plan[R], llm: LLM, *, observe: Callable[[list[Completion]], None] | None = None
) -> R:
    """Async twin of :func:`drive`. ``observe``, when given, is called with each batch's
    Completions before the plan gets them (the evaluation counts requests with it)."""
    spans = _Spans()
    try:
        step = next(plan)
        while True:
            error: Exception | None = None
            try:
                if isinstance(step, Render):
                    answer: Any = await arender_prompt(step.prompt, step.variables)
                elif isinstance(step, (Enter, Leave)):
                    answer = spans.handle(step)
                elif isinstance(step, Work):
                    answer = await step.arun(llm.max_concurrency)
                else:
                    answer = await arun_calls(llm, step)
            except Exception as exc:
                error = exc
            else:
                if observe is not None and isinstance(step, list):
                    observe(answer)
            step = plan.send(answer) if error is None else plan.throw(error)
    except StopIteration as stop:
        spans.close(None)
        return cast(R, stop.value)
    except BaseException as exc:
        spans.close(exc)
        raise


def check_choices(done: Completion, backend: str | None = None) -> None:
    """A completion must hold at least one choice."""
    if not done.choices:
        raise MalformedResponseError(
            "The server returned no choices. Check that the model is loaded and the request "
            "is valid for it.",
            backend=backend,
        )


# --------------------------------------------------------------------------- base class


class Strategy(ABC, Generic[R_co]):
    """Base of every strategy: something that runs a plan of model calls to a result.

    Subclasses implement :meth:`plan`; :meth:`run` and :meth:`arun` drive it. A strategy can
    be a :class:`~promptkit.Step` of a :class:`~promptkit.Chain`: :attr:`variables` says
    what it needs and :meth:`value` which part of its result the step passes on.
    """

    #: A name for error messages and chain steps.
    name: str | None = None
    #: Default sampling parameters; a call's own ``params`` override them field by field.
    params: SamplingParams | None = None

    @property
    def label(self) -> str:
        """The name used in error messages: ``name`` or the class name."""
        return self.name or type(self).__name__

    @property
    def variables(self) -> frozenset[str] | None:
        """The variables :meth:`run` needs (None when not known in advance)."""
        return None

    @abstractmethod
    def plan(
        self, llm: LLM, variables: Mapping[str, Any], params: SamplingParams | None = None
    ) -> Plan[R_co]:
        """The calls this strategy makes for ``variables``, as a generator (see module doc)."""

    def value(self, result: Any) -> Any:
        """What a chain step passes on from a result of this strategy (its ``output``)."""
        return getattr(result, "output", result)

    def run(self, llm: LLM, *, params: SamplingParams | None = None, **variables: Any) -> R_co:
        """Run with ``variables`` against ``llm``; several calls of one step run concurrently
        (threads). Works inside a running event loop too (it blocks, as sync calls do)."""
        return drive(self.plan(llm, variables, params), llm)

    async def arun(
        self, llm: LLM, *, params: SamplingParams | None = None, **variables: Any
    ) -> R_co:
        """Async twin of :meth:`run`."""
        return await adrive(self.plan(llm, variables, params), llm)
