"""A scripted backend that records every request: for tests, yours and ours."""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, TypeGuard

from .._errors import ConfigurationError
from .._params import SAMPLING_FIELDS
from .._types import Choice, Completion, Delta, Embeddings, Request, ToolCall, Usage
from ._base import Backend

__all__ = ["FakeBackend", "hashed_embedding"]

ALL_PARAMS = frozenset(SAMPLING_FIELDS)

#: A scripted reply: text, a whole Choice, an exception to raise, or the tool calls the
#: model makes (a list or tuple of ToolCall; a ToolCall without an id gets ``call_<request>_<i>``).
Reply = str | Choice | BaseException | tuple[ToolCall, ...] | list[ToolCall]
Script = Iterable[Reply] | Callable[[Request], "Reply | list[Reply]"]

_WORD = re.compile(r"[^\W_]+")
#: Words too common to tell texts apart; the fake embeddings leave them out.
_STOP_TEXT = (
    "a an and are as at be by can do does for from has have how i if in is it its me my no "
    "not of on or our so that the their there this to was we what when where which who why "
    "will with you your"
)
_STOP_WORDS = frozenset(_STOP_TEXT.split())


def hashed_embedding(text: str, dim: int = 256) -> list[float]:
    """The fake backend's deterministic embedding: a hashed bag of words.

    The text's words (lowercased, without a few English stop words, a plural ``s``
    dropped) are hashed (BLAKE2b, so the same in every process) into ``dim`` signed
    buckets, and the vector is scaled to length 1. Texts sharing words are similar; a text
    with no words gives the zero vector.

    >>> a, b, c = (hashed_embedding(t, 64) for t in ("refunds", "Refund policy", "shipping"))
    >>> round(sum(x * y for x, y in zip(a, b)), 3), sum(x * y for x, y in zip(a, c))
    (0.707, 0.0)
    """
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        if word in _STOP_WORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vector[h % dim] += -1.0 if h >> 63 else 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


class FakeBackend(Backend):
    """Replies from a script, and keeps every :class:`Request` in ``requests``.

    ``replies`` is a list (each choice takes the next item; an exception item is raised) or
    a function of the request returning a reply or a list of replies. Set ``supports`` to
    imitate a server's parameter support, ``native_n=False`` to imitate one that takes no
    ``n``, and ``max_choices`` to imitate one that returns fewer choices than asked (the
    llama.cpp server returns one).

    Embeddings are deterministic: :func:`hashed_embedding` of each text in
    ``embedding_dim`` (256) dimensions, or ``embedder(text)`` when given (a function that
    may also raise, to test failures). Each batch is kept in ``embed_requests``;
    ``embed_batch_size`` sets the batch size :meth:`~promptkit.LLM.embed` uses.

    >>> from promptkit import LLM
    >>> fake = FakeBackend(["positive", "negative"])
    >>> llm = LLM(fake)
    >>> llm.complete("I loved it").text, llm.complete("It broke").text
    ('positive', 'negative')
    >>> fake.requests[0].messages[0].content
    'I loved it'
    """

    name: ClassVar[str] = "fake"
    supports_embeddings: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True

    def __init__(
        self,
        replies: Script = (),
        *,
        model: str = "fake-model",
        supports: Iterable[str] | None = None,
        native_n: bool = True,
        max_choices: int | None = None,
        latency: float = 0.0,
        embedding_dim: int = 256,
        embedder: Callable[[str], Sequence[float]] | None = None,
        embed_batch_size: int = 32,
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
        if embedding_dim < 1:
            raise ConfigurationError(f"embedding_dim={embedding_dim}: expected at least 1.")
        self.embedding_dim = embedding_dim
        self.embedder = embedder
        self.embed_batch_size = embed_batch_size  # type: ignore[misc]
        self.embed_requests: list[list[str]] = []

    def _next(self, request: Request) -> list[Choice]:
        n = int(request.params.get("n", 1))
        if self.max_choices is not None:
            n = min(n, self.max_choices)
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
            if self._fn is not None:
                got = self._fn(request)
                items = got if isinstance(got, list) and not _calls(got) else [got]
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
            if _calls(item):
                calls = tuple(
                    c if c.id else c.model_copy(update={"id": f"call_{number}_{j}"})
                    for j, c in enumerate(item)
                )
                choices.append(Choice("", i, "tool_calls", tool_calls=calls))
            elif isinstance(item, Choice):
                choices.append(item)
            else:
                choices.append(Choice(str(item), i, "stop"))
        return choices

    def _completion(self, request: Request) -> Completion:
        choices = self._next(request)
        prompt_chars = sum(len(m.text) for m in request.messages or ()) + len(
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

    def _embeddings(self, texts: Sequence[str]) -> Embeddings:
        with self._lock:
            self.embed_requests.append(list(texts))
        fn = self.embedder
        vectors = [
            [float(x) for x in fn(t)] if fn is not None else hashed_embedding(t, self.embedding_dim)
            for t in texts
        ]
        tokens = sum(-(-len(t) // 4) for t in texts)
        return Embeddings(vectors, self.model, self.name, Usage(tokens, None, tokens))

    def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        """Deterministic embeddings of one batch (see the class docstring)."""
        if self.latency:
            time.sleep(self.latency)
        return self._embeddings(texts)

    async def aembed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        if self.latency:
            import asyncio

            await asyncio.sleep(self.latency)
        return self._embeddings(texts)

    def complete(self, request: Request) -> Completion:
        if self.latency:
            time.sleep(self.latency)
        return self._completion(request)

    async def acomplete(self, request: Request) -> Completion:
        if self.latency:
            import asyncio

            await asyncio.sleep(self.latency)
        return self._completion(request)

    def stream(self, request: Request) -> Iterator[Delta]:
        yield from self._deltas(self.complete(request))

    async def astream(self, request: Request) -> AsyncIterator[Delta]:
        for delta in self._deltas(await self.acomplete(request)):
            yield delta

    def _deltas(self, done: Completion) -> Iterator[Delta]:
        """A scripted reply as a stream: its text in small pieces, then a last delta with
        the finish reason, usage, model and tool calls."""
        for piece in iter_chunks(done.text):
            yield Delta(piece)
        yield Delta(
            "",
            finish_reason=done.finish_reason,
            usage=done.usage,
            model=self.model,
            tool_calls=done.tool_calls,
        )


def _calls(item: object) -> TypeGuard[Sequence[ToolCall]]:
    """Whether a scripted reply is a list/tuple of tool calls."""
    return (
        isinstance(item, list | tuple) and bool(item) and all(isinstance(x, ToolCall) for x in item)
    )


def iter_chunks(text: str, size: int = 8) -> Iterable[str]:
    """Split text into pieces (the fake backend's streaming)."""
    for i in range(0, len(text), size):
        yield text[i : i + size]
