"""The protocols retrieval and example selection plug into, and the embedding helpers.

Kept free of numpy and of the prompt objects at import time: :mod:`promptkit.prompts`
imports it for its field types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

from .._errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np

    from .._client import LLM
    from ..prompts import Document, Example

__all__ = [
    "Embedder",
    "ExampleCandidates",
    "ExampleSelector",
    "Retriever",
    "example_text",
    "variables_text",
]

#: What turns texts into vectors: an :class:`~promptkit.LLM` (its ``embed``), or a
#: function from a list of texts to one vector per text.
Embedder = Union["LLM", Callable[[list[str]], Sequence[Sequence[float]]]]


@runtime_checkable
class Retriever(Protocol):
    """Anything that finds the ``k`` documents most relevant to a query.

    :class:`~promptkit.retrieval.VectorIndex` and
    :class:`~promptkit.retrieval.SqliteVecRetriever` are retrievers; so is any object with
    this one method, which is how an existing vector store plugs in::

        class ChromaRetriever:                     # a sketch for a Chroma collection
            def __init__(self, collection):
                self.collection = collection

            def retrieve(self, query: str, k: int) -> list[pk.Document]:
                found = self.collection.query(query_texts=[query], n_results=k)
                return [pk.Document(id=i, text=t)
                        for i, t in zip(found["ids"][0], found["documents"][0])]

    A retriever may also have ``async def aretrieve(query, k)``, which
    :meth:`Context.arender <promptkit.Context.arender>` (and so ``arun``) then uses;
    otherwise ``retrieve`` runs in a worker thread there. Retrieval is I/O (it embeds the
    query, reads a store), so a :class:`~promptkit.Context` with a retriever renders
    what the retriever returns: pure given the retriever, not on its own.

    >>> class Keyword:
    ...     def retrieve(self, query, k):
    ...         return []
    >>> isinstance(Keyword(), Retriever)
    True
    """

    def retrieve(self, query: str, k: int) -> list[Document]:
        """The ``k`` (or fewer) documents most relevant to ``query``, best first."""
        ...


@dataclass(frozen=True)
class ExampleCandidates:
    """What an :class:`ExampleSelector` chooses from, for one render.

    - ``query``: the input being answered, as text (see :func:`variables_text`).
    - ``examples``: the prompt's examples; ``texts``: each one's input, as text in the
      same form as ``query``.
    - :meth:`example_messages`: example ``i`` as the (user, assistant) message contents
      it renders to; :meth:`other_messages`: the contents of every other message of the
      prompt (system, history, the final user message), for token budgets.
    """

    query: str
    examples: Sequence[Example]
    texts: Sequence[str]
    _example_messages: Callable[[int], tuple[str, str]] = field(repr=False)
    _other_messages: Callable[[], tuple[str | tuple[Any, ...], ...]] = field(repr=False)

    def example_messages(self, i: int) -> tuple[str, str]:
        """The user and assistant message contents example ``i`` renders to."""
        return self._example_messages(i)

    def other_messages(self) -> tuple[str | tuple[Any, ...], ...]:
        """The contents of the prompt's other messages (system, history, final user)."""
        return self._other_messages()


@runtime_checkable
class ExampleSelector(Protocol):
    """Chooses the few-shot examples rendered for one input.

    ``select`` returns indices into ``candidates.examples``, in the order they are to be
    rendered; it must be deterministic for a given input. It may also have
    ``async def aselect(candidates)``, used by ``arender``/``arun``. Built-in:
    :class:`~promptkit.retrieval.SimilarExamples`,
    :class:`~promptkit.retrieval.MMRExamples`,
    :class:`~promptkit.retrieval.LengthBudgetExamples`.

    >>> class FirstTwo:
    ...     def select(self, candidates):
    ...         return [0, 1][: len(candidates.examples)]
    >>> isinstance(FirstTwo(), ExampleSelector)
    True
    """

    def select(self, candidates: ExampleCandidates) -> Sequence[int]:
        """Indices of the examples to render, in render order."""
        ...


# --------------------------------------------------------------------------- text forms


def variables_text(values: Mapping[str, Any]) -> str:
    """The text form of an input for similarity: a single value as it is, several as
    ``name: value`` lines in name order.

    >>> variables_text({"input": "I loved it"})
    'I loved it'
    >>> variables_text({"review": "Great", "product": "Lamp"})
    'product: Lamp\\nreview: Great'
    """
    if len(values) == 1:
        return str(next(iter(values.values())))
    return "\n".join(f"{k}: {values[k]}" for k in sorted(values))


def example_text(example: Example) -> str:
    """An example's input in the form of :func:`variables_text`.

    >>> from promptkit import Example
    >>> example_text(Example(input={"a": "1", "b": "2"}, output="x"))
    'a: 1\\nb: 2'
    """
    if isinstance(example.input, str):
        return example.input
    return variables_text(example.input)


# --------------------------------------------------------------------------- embedding


def require_numpy() -> Any:
    """The numpy module, or a :class:`~promptkit.ConfigurationError` saying how to get it."""
    try:
        import numpy
    except ImportError:
        raise ConfigurationError(
            'Vector search and example selection need numpy: pip install "promptkit[retrieval]" '
            "(or pip install numpy)."
        ) from None
    return numpy


def _from_result(result: Any, n: int) -> tuple[list[list[float]], str | None]:
    from .._types import Embeddings

    if isinstance(result, Embeddings):
        vectors, model = result.vectors, result.model
    else:
        vectors, model = [list(v) for v in result], None
    if len(vectors) != n:
        raise ConfigurationError(f"The embedder returned {len(vectors)} vectors for {n} texts.")
    return vectors, model


def embed(embedder: Embedder, texts: Sequence[str]) -> tuple[np.ndarray[Any, Any], str | None]:
    """(float32 array of shape ``(len(texts), dim)``, embedding model name or None)."""
    items = list(texts)
    method = getattr(embedder, "embed", None)
    if method is not None:
        vectors, model = _from_result(method(items), len(items))
    elif callable(embedder):
        vectors, model = _from_result(embedder(items), len(items))
    else:
        raise ConfigurationError(
            "An embedder is an LLM or a function of a list of texts; got "
            f"{type(embedder).__name__}."
        )
    return _matrix(vectors, len(items)), model


async def aembed(
    embedder: Embedder, texts: Sequence[str]
) -> tuple[np.ndarray[Any, Any], str | None]:
    """Async twin of :func:`embed` (a plain function runs in a worker thread)."""
    items = list(texts)
    method = getattr(embedder, "aembed", None)
    if method is not None:
        vectors, model = _from_result(await method(items), len(items))
        return _matrix(vectors, len(items)), model
    import asyncio

    return await asyncio.to_thread(embed, embedder, items)


def _matrix(vectors: list[list[float]], n: int) -> np.ndarray[Any, Any]:
    import numpy as np

    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    try:
        array: np.ndarray[Any, Any] = np.asarray(vectors, dtype=np.float32)
    except ValueError:
        raise ConfigurationError("The embedder returned vectors of different lengths.") from None
    if array.ndim != 2 or array.shape[1] == 0:
        raise ConfigurationError(f"The embedder returned an array of shape {array.shape}.")
    return array


def normalize(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Rows scaled to length 1 (zero rows stay zero), as float32."""
    import numpy as np

    m = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)  # type: ignore[no-any-return]
