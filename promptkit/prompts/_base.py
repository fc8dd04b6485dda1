"""The base of every prompt: ``render()`` plus running, streaming and batching.

Running a prompt is a thin call: plain runs go straight to the client
(``llm.complete(self.render(...))``); structured output and batch runs belong to layers
above the prompts (:mod:`promptkit.strategies`, the batch runner), which are reached
through :func:`_upper` by their public names, resolved on first use. So this package
imports nothing from those layers, at import time or inside functions, and they import
the prompts freely: there is no import cycle.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast, overload

from pydantic import BaseModel, ConfigDict

from .._media import check_parts
from .._params import SamplingParams, merge_params
from .._types import Message, StrictModel

if TYPE_CHECKING:
    from .._client import LLM, TextStream
    from .._tools import ToolLike
    from .._types import Completion
    from ..batch import BatchResult

T = TypeVar("T", bound=BaseModel)
#: ``tools=`` of run()/stream(): Tool objects, typed functions or spec dicts.
ToolsArg: TypeAlias = "Sequence[ToolLike | Mapping[str, Any]] | None"

__all__ = ["PromptBase", "arender_prompt"]


def _no_tools(tools: object, tool_choice: object) -> None:
    if tools or tool_choice is not None:
        from .._errors import ParameterError

        raise ParameterError(
            "run(output=...) with tools: structured output does not offer tools; call "
            "run() without output= for tool calls, or promptkit.ToolLoop to run them."
        )


def _upper(name: str) -> Any:
    """A function of a layer above the prompts (``structured``, ``run_batch``, ...), by its
    public name on the ``promptkit`` package, which imports it on first use."""
    return getattr(sys.modules["promptkit"], name)


async def arender_prompt(prompt: Any, variables: Mapping[str, Any]) -> list[Message]:
    """``await prompt.arender(**variables)``: a retriever's or example selector's I/O off
    the event loop. A prompt-like object with only ``render()`` is rendered with it."""
    arender = getattr(prompt, "arender", None)
    messages: list[Message] = (
        prompt.render(**variables) if arender is None else await arender(**variables)
    )
    return messages


class PromptBase(StrictModel):
    """What every prompt can do once it can ``render()``: flatten, run, stream.

    Subclasses implement :meth:`render`. ``params`` are the prompt's default sampling
    parameters; a call's own ``params`` override them field by field.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, defer_build=True
    )

    name: str | None = None
    params: SamplingParams | None = None

    @property
    def label(self) -> str:
        """The name used in error messages: ``name`` or the class name."""
        return self.name or type(self).__name__

    def render(self, **variables: Any) -> list[Message]:
        """The exact chat messages this prompt sends."""
        raise NotImplementedError

    async def arender(self, **variables: Any) -> list[Message]:
        """Async twin of :meth:`render`: what ``arun``/``astream`` send. It differs only for
        prompts that do I/O to render (a retriever, an embedding example selector), which
        then use their async methods."""
        return self.render(**variables)

    def render_text(self, **variables: Any) -> str:
        """The messages flattened for completion (non-chat) endpoints.

        Format: each message as ``### System:`` / ``### User:`` / ``### Assistant:`` on
        its own line, then its content, messages separated by a blank line, ending with
        ``### Assistant:`` and a newline for the model to continue.
        """
        messages = self.render(**variables)
        for m in messages:
            check_parts(m.content, frozenset({"text"}), "A completion (non-chat) prompt",
                        "flattened text has no place for images, audio or files; send the "
                        "messages to a chat endpoint (render() instead of render_text()).")
        parts = [f"### {m.role.capitalize()}:\n{m.text}" for m in messages]
        parts.append("### Assistant:\n")
        return "\n\n".join(parts)

    # ------------------------------------------------------------------ running

    def _params(self, params: SamplingParams | None) -> SamplingParams | None:
        return merge_params(self.params, params)

    @overload
    def run(
        self,
        llm: LLM,
        *,
        params: SamplingParams | None = None,
        output: None = None,
        tools: ToolsArg = None,
        tool_choice: str | None = None,
        **variables: Any,
    ) -> Completion: ...

    @overload
    def run(
        self,
        llm: LLM,
        *,
        params: SamplingParams | None = None,
        output: type[T],
        tools: ToolsArg = None,
        tool_choice: str | None = None,
        **variables: Any,
    ) -> T: ...

    def run(
        self,
        llm: LLM,
        *,
        params: SamplingParams | None = None,
        output: type[T] | None = None,
        tools: ToolsArg = None,
        tool_choice: str | None = None,
        **variables: Any,
    ) -> Completion | T:
        """Render with ``variables`` and send to ``llm``; returns the Completion.

        ``params`` override the prompt's own ``params``. With ``output=MyModel`` (a pydantic
        model) the reply is parsed and validated into ``MyModel`` (see
        :func:`promptkit.structured`), retrying with the validation errors fed back.
        ``tools`` and ``tool_choice`` go to :meth:`promptkit.LLM.complete` as they are (to
        run the tools the model calls, use :class:`promptkit.ToolLoop`).
        """
        if output is not None:
            _no_tools(tools, tool_choice)
            return cast("T", _upper("structured")(self, llm, output, params=params, **variables))
        return llm.complete(
            self.render(**variables),
            params=self._params(params),
            tools=tools,
            tool_choice=tool_choice,
        )

    @overload
    async def arun(
        self,
        llm: LLM,
        *,
        params: SamplingParams | None = None,
        output: None = None,
        tools: ToolsArg = None,
        tool_choice: str | None = None,
        **variables: Any,
    ) -> Completion: ...

    @overload
    async def arun(
        self,
        llm: LLM,
        *,
        params: SamplingParams | None = None,
        output: type[T],
        tools: ToolsArg = None,
        tool_choice: str | None = None,
        **variables: Any,
    ) -> T: ...

    async def arun(
        self,
        llm: LLM,
        *,
        params: SamplingParams | None = None,
        output: type[T] | None = None,
        tools: ToolsArg = None,
        tool_choice: str | None = None,
        **variables: Any,
    ) -> Completion | T:
        """Async twin of :meth:`run`."""
        if output is not None:
            _no_tools(tools, tool_choice)
            astructured = _upper("astructured")
            return cast("T", await astructured(self, llm, output, params=params, **variables))
        return await llm.acomplete(
            await self.arender(**variables),
            params=self._params(params),
            tools=tools,
            tool_choice=tool_choice,
        )

    def batch(self, llm: LLM, inputs: Iterable[Mapping[str, Any]], **options: Any) -> BatchResult:
        """Run this prompt over many inputs (dicts of variables); results in input order.

        Options (see :func:`promptkit.run_batch`): ``params``, ``concurrency``,
        ``rpm``, ``tpm``, ``out`` (a JSONL file for durable, resumable runs), ``progress``.
        A failure on one input is recorded on that input and does not stop the rest.
        """
        return cast("BatchResult", _upper("run_batch")(self, llm, inputs, **options))

    async def abatch(
        self, llm: LLM, inputs: Iterable[Mapping[str, Any]], **options: Any
    ) -> BatchResult:
        """Async twin of :meth:`batch`."""
        return cast("BatchResult", await _upper("arun_batch")(self, llm, inputs, **options))

    def stream(
        self,
        llm: LLM,
        *,
        params: SamplingParams | None = None,
        tools: ToolsArg = None,
        tool_choice: str | None = None,
        **variables: Any,
    ) -> TextStream:
        """Render and stream the reply: iterate for text, then read ``.completion``."""
        return llm.stream(
            self.render(**variables),
            params=self._params(params),
            tools=tools,
            tool_choice=tool_choice,
        )

    async def astream(
        self,
        llm: LLM,
        *,
        params: SamplingParams | None = None,
        tools: ToolsArg = None,
        tool_choice: str | None = None,
        **variables: Any,
    ) -> AsyncIterator[str]:
        """Async twin of :meth:`stream`."""
        messages = await self.arender(**variables)
        stream = llm.astream(
            messages, params=self._params(params), tools=tools, tool_choice=tool_choice
        )
        async for piece in stream:
            yield piece
