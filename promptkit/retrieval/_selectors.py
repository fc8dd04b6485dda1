"""Few-shot example selectors: by similarity, by maximal marginal relevance, by length.

Give one to a prompt as ``example_selector=``; without one, the prompt renders its fixed
examples (the first ``max_examples``), as always. A selector returns indices into the
prompt's examples, deterministically for a given input (ties go to the example listed
first), and the rendered messages show exactly the examples chosen.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._tokens import TokenCounter, message_cost
from ._index import mmr, top_k
from ._protocols import (
    Embedder,
    ExampleCandidates,
    ExampleSelector,
    aembed,
    embed,
    normalize,
    require_numpy,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["LengthBudgetExamples", "MMRExamples", "SimilarExamples"]

_EXAMPLE_SETS = 16
_QUERIES = 256


def _check_k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError(f"k={k!r}: expected a whole number >= 0")
    return k


class _EmbeddingSelector:
    """Embeds a prompt's examples once (per set of examples) and queries through an LRU."""

    def __init__(self, k: int, embedder: Embedder) -> None:
        require_numpy()
        self.k = _check_k(k)
        self.embedder = embedder
        self._sets: OrderedDict[tuple[str, ...], np.ndarray[Any, Any]] = OrderedDict()
        self._queries: OrderedDict[str, np.ndarray[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)

    def _cached(self, texts: tuple[str, ...], query: str) -> tuple[Any, Any]:
        with self._lock:
            vectors = self._sets.get(texts)
            q = self._queries.get(query)
            if vectors is not None:
                self._sets.move_to_end(texts)
            if q is not None:
                self._queries.move_to_end(query)
        return vectors, q

    def _store(
        self,
        texts: tuple[str, ...],
        vectors: np.ndarray[Any, Any],
        query: str,
        q: np.ndarray[Any, Any],
    ) -> None:
        with self._lock:
            self._remember(self._sets, texts, vectors, _EXAMPLE_SETS)
            self._remember(self._queries, query, q, _QUERIES)

    def _vectors(self, c: ExampleCandidates) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        texts = tuple(c.texts)
        vectors, q = self._cached(texts, c.query)
        if vectors is None:
            vectors = normalize(embed(self.embedder, texts)[0])
        if q is None:
            q = normalize(embed(self.embedder, [c.query])[0][0])
        self._store(texts, vectors, c.query, q)
        return vectors, q

    async def _avectors(
        self, c: ExampleCandidates
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        texts = tuple(c.texts)
        vectors, q = self._cached(texts, c.query)
        if vectors is None:
            vectors = normalize((await aembed(self.embedder, texts))[0])
        if q is None:
            q = normalize((await aembed(self.embedder, [c.query]))[0][0])
        self._store(texts, vectors, c.query, q)
        return vectors, q

    def _choose(self, vectors: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> list[int]:
        raise NotImplementedError

    def select(self, candidates: ExampleCandidates) -> list[int]:
        """Indices of the chosen examples, in render order."""
        if not candidates.examples or self.k == 0:
            return []
        return self._choose(*self._vectors(candidates))

    async def aselect(self, candidates: ExampleCandidates) -> list[int]:
        """Async twin of :meth:`select` (embedding through ``aembed``)."""
        if not candidates.examples or self.k == 0:
            return []
        return self._choose(*await self._avectors(candidates))


class SimilarExamples(_EmbeddingSelector):
    """The ``k`` examples whose inputs are most similar (cosine) to the input.

    >>> import promptkit as pk
    >>> from promptkit.retrieval import SimilarExamples
    >>> llm = pk.LLM(pk.FakeBackend())
    >>> p = pk.FewShot(
    ...     instruction="Answer the customer.",
    ...     examples=[pk.Example(input="Where is my parcel?", output="Tracking: ..."),
    ...               pk.Example(input="I want a refund", output="Refunds: ..."),
    ...               pk.Example(input="Refund for a broken lamp", output="Sorry: ...")],
    ...     example_selector=SimilarExamples(k=2, embedder=llm))
    >>> [m.content for m in p.render(input="How do refunds work?") if m.role == "user"]
    ['I want a refund', 'Refund for a broken lamp', 'How do refunds work?']

    ``embedder`` is an :class:`~promptkit.LLM` or a function of a list of texts. The
    examples are embedded once (per set of examples), the input at each render (the last
    256 inputs are remembered). Rendered most similar first; ``most_similar_last=True``
    puts the closest example next to the input instead.
    """

    def __init__(self, k: int, embedder: Embedder, *, most_similar_last: bool = False) -> None:
        super().__init__(k, embedder)
        self.most_similar_last = most_similar_last

    def __repr__(self) -> str:
        return f"SimilarExamples(k={self.k})"

    def _choose(self, vectors: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> list[int]:
        order = top_k(vectors @ q, self.k)
        return order[::-1] if self.most_similar_last else order


class MMRExamples(_EmbeddingSelector):
    """``k`` examples relevant to the input yet unlike each other (maximal marginal
    relevance): each next example maximises ``lambda_ * similarity to the input -
    (1 - lambda_) * similarity to the examples already chosen``.

    >>> import promptkit as pk
    >>> from promptkit.retrieval import MMRExamples
    >>> llm = pk.LLM(pk.FakeBackend())
    >>> examples = [pk.Example(input="refund for a lamp", output="a"),
    ...             pk.Example(input="refund for a lamp please", output="b"),
    ...             pk.Example(input="refund after shipping delay", output="c")]
    >>> p = pk.FewShot(examples=examples, example_selector=MMRExamples(2, llm, lambda_=0.3))
    >>> [m.content for m in p.render(input="lamp refund") if m.role == "assistant"]
    ['a', 'c']

    ``lambda_=1`` is :class:`SimilarExamples`; lower values favour diversity. ``fetch_k``
    limits the choice to the ``fetch_k`` most similar examples (default: all).
    """

    def __init__(
        self,
        k: int,
        embedder: Embedder,
        *,
        lambda_: float = 0.5,
        fetch_k: int | None = None,
    ) -> None:
        super().__init__(k, embedder)
        if not 0.0 <= lambda_ <= 1.0:
            raise ValueError(f"lambda_={lambda_!r}: expected a number from 0 to 1")
        self.lambda_ = float(lambda_)
        self.fetch_k = None if fetch_k is None else _check_k(fetch_k)

    def __repr__(self) -> str:
        return f"MMRExamples(k={self.k}, lambda_={self.lambda_})"

    def _choose(self, vectors: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> list[int]:
        pool = top_k(vectors @ q, self.fetch_k) if self.fetch_k is not None else None
        return mmr(q, vectors, self.k, self.lambda_, pool)


class LengthBudgetExamples:
    """As many examples as fit, so that the whole prompt stays within ``max_tokens``.

    The other messages (system, history, the final user message) are counted first;
    then the examples are taken in order (the prompt's order, or the order
    ``ranked_by`` gives, e.g. a :class:`SimilarExamples`), each one that still fits, the
    others skipped. A message costs ``counter.count(content) + 4`` (see
    :func:`promptkit._tokens.message_cost`); the default counter is the documented
    approximation, :data:`promptkit.APPROX`. Use the model's own tokenizer for exact
    budgets: ``counter=llm.token_counter()``.

    >>> import promptkit as pk
    >>> from promptkit.retrieval import LengthBudgetExamples
    >>> examples = [pk.Example(input="x" * 400, output="long"),
    ...             pk.Example(input="short one", output="short")]
    >>> p = pk.FewShot(examples=examples, example_selector=LengthBudgetExamples(60))
    >>> [m.content for m in p.render(input="hello") if m.role == "assistant"]
    ['short']
    """

    def __init__(
        self,
        max_tokens: int,
        *,
        counter: TokenCounter | Callable[[str], int] | None = None,
        ranked_by: ExampleSelector | None = None,
    ) -> None:
        if not isinstance(max_tokens, int) or max_tokens < 0:
            raise ValueError(f"max_tokens={max_tokens!r}: expected a whole number >= 0")
        self.max_tokens = max_tokens
        self.counter = counter
        self._cost = message_cost(counter)
        self.ranked_by = ranked_by

    def __repr__(self) -> str:
        return f"LengthBudgetExamples(max_tokens={self.max_tokens})"

    def _fit(self, c: ExampleCandidates, order: Sequence[int]) -> list[int]:
        cost = self._cost
        left = self.max_tokens - sum(cost(m) for m in c.other_messages())
        chosen = []
        for i in order:
            user, assistant = c.example_messages(i)
            need = cost(user) + cost(assistant)
            if need <= left:
                chosen.append(i)
                left -= need
        return chosen

    def select(self, candidates: ExampleCandidates) -> list[int]:
        """Indices of the examples that fit, in order."""
        if self.ranked_by is None:
            order: Sequence[int] = range(len(candidates.examples))
        else:
            order = list(self.ranked_by.select(candidates))
        return self._fit(candidates, order)

    async def aselect(self, candidates: ExampleCandidates) -> list[int]:
        """Async twin of :meth:`select`."""
        ranked = self.ranked_by
        if ranked is None:
            return self._fit(candidates, range(len(candidates.examples)))
        aselect = getattr(ranked, "aselect", None)
        order = await aselect(candidates) if aselect is not None else ranked.select(candidates)
        return self._fit(candidates, list(order))
