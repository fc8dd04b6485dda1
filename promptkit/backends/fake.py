"""A scripted backend that records every request: for tests, yours and ours."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, ClassVar

from .._completion import Choice, Completion, Usage
from .._errors import ConfigurationError
from ._base import Backend, Delta, Request, iter_chunks

__all__ = ["FakeBackend"]

ALL_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repetition_penalty",
        "max_tokens",
        "frequency_penalty",
        "presence_penalty",
        "stop",
        "logprobs",
        "top_logprobs",
        "seed",
        "n",
    }
)

Reply = str | Choice | BaseException
Script = Iterable[Reply] | Callable[[Request], "Reply | list[Reply]"]


class FakeBackend(Backend):
    """Replies from a script, and keeps every :class:`Request` in ``requests``.

    ``replies`` is a list (each choice takes the next item; an exception item is raised) or
    a function of the request returning a reply or a list of replies. Set ``supports`` to
    imitate a server's parameter support, ``native_n=False`` to imitate one that takes no
    ``n``, and ``max_choices`` to imitate one that returns fewer choices than asked (the
    llama.cpp server returns one).

    >>> from promptkit import LLM
    >>> fake = FakeBackend(["positive", "negative"])
    >>> llm = LLM(fake)
    >>> llm.complete("I loved it").text, llm.complete("It broke").text
    ('positive', 'negative')
    >>> fake.requests[0].messages[0].content
    'I loved it'
    """

    name: ClassVar[str] = "fake"

    def __init__(
        self,
        replies: Script = (),
        *,
        model: str = "fake-model",
        supports: Iterable[str] | None = None,
        native_n: bool = True,
        max_choices: int | None = None,
        latency: float = 0.0,
        **_: Any,
    ) -> None:
        self.model = model
        self._fn: Callable[[Request], Reply | list[Reply]] | None = None
        self._items: list[Reply] = []
        if callable(replies):
            self._fn = replies
        else:
            self._items = list(replies)
        self._pos = 0
        self._lock = threading.Lock()
        self.supports = frozenset(supports) if supports is not None else ALL_PARAMS  # type: ignore[misc]
        self.native_n = native_n  # type: ignore[misc]
        self.max_choices = max_choices
        self.latency = latency
        self.requests: list[Request] = []

    def _next(self, request: Request) -> list[Choice]:
        n = int(request.params.get("n", 1))
        if self.max_choices is not None:
            n = min(n, self.max_choices)
        with self._lock:
            self.requests.append(request)
            if self._fn is not None:
                got = self._fn(request)
                items = got if isinstance(got, list) else [got]
            else:
                if self._pos + n > len(self._items):
                    raise ConfigurationError(
                        f"FakeBackend ran out of scripted replies after {self._pos}: give it "
                        "more replies, or a function of the request."
                    )
                items = self._items[self._pos : self._pos + n]
                self._pos += n
        choices = []
        for i, item in enumerate(items):
            if isinstance(item, BaseException):
                raise item
            choices.append(item if isinstance(item, Choice) else Choice(item, i, "stop"))
        return choices

    def _completion(self, request: Request) -> Completion:
        choices = self._next(request)
        prompt_chars = sum(len(m.content) for m in request.messages or ()) + len(
            request.prompt or ""
        )
        out_chars = sum(len(c.text) for c in choices)
        usage = Usage(prompt_chars // 4, out_chars // 4, prompt_chars // 4 + out_chars // 4)
        return Completion(
            choices=choices,
            model=self.model,
            backend=self.name,
            usage=usage,
            params_sent=dict(request.params),
            raw={"fake": True},
        )

    def complete(self, request: Request) -> Completion:
        if self.latency:
            time.sleep(self.latency)
        return self._completion(request)

    async def acomplete(self, request: Request) -> Completion:
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._completion(request)

    def stream(self, request: Request) -> Iterator[Delta]:
        done = self.complete(request)
        for piece in iter_chunks(done.text):
            yield Delta(piece)
        yield Delta("", finish_reason=done.finish_reason, usage=done.usage, model=self.model)

    async def astream(self, request: Request) -> AsyncIterator[Delta]:
        done = await self.acomplete(request)
        for piece in iter_chunks(done.text):
            yield Delta(piece)
        yield Delta("", finish_reason=done.finish_reason, usage=done.usage, model=self.model)
