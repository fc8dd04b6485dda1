"""Retrieval and few-shot example selection.

- :class:`Retriever`: the protocol (``retrieve(query, k) -> list[Document]``) that
  :class:`~promptkit.Context` takes as ``retriever=``; any vector store plugs in through
  it with a few lines (see the protocol's docstring).
- :class:`VectorIndex`: a small in-memory index (numpy, cosine similarity) of documents
  or examples, saved to and loaded from one ``.npz`` file.
- :class:`SqliteVecRetriever`: documents in SQLite with the ``sqlite-vec`` extension.
- Example selectors for ``example_selector=`` on any prompt: :class:`SimilarExamples`,
  :class:`MMRExamples` (diverse), :class:`LengthBudgetExamples` (fits a token budget).

Embeddings come from any backend that has them (:meth:`promptkit.LLM.embed`) or from a
plain function of a list of texts. numpy is needed by the index and the selectors and is
imported when they are first used, so ``import promptkit`` stays light.

>>> import promptkit as pk
>>> from promptkit.retrieval import VectorIndex
>>> llm = pk.LLM(pk.FakeBackend(["Refunds take 5 days [returns]."]))
>>> index = VectorIndex.from_documents(
...     [pk.Document(id="returns", text="Refunds reach you within 5 business days."),
...      pk.Document(id="shipping", text="Standard shipping takes 3-5 business days.")], llm)
>>> rag = pk.Context(instruction="Answer from the documents.", retriever=index, k=1)
>>> rag.render(input="How long do refunds take?")[-1].content.splitlines()[0]
'<<<DOCUMENT returns>>>'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._protocols import (
    Embedder,
    ExampleCandidates,
    ExampleSelector,
    Retriever,
    example_text,
    variables_text,
)

if TYPE_CHECKING:
    from ._index import Hit, VectorIndex, mmr
    from ._selectors import LengthBudgetExamples, MMRExamples, SimilarExamples
    from .sqlite_vec import SqliteVecRetriever

__all__ = [
    "Embedder",
    "ExampleCandidates",
    "ExampleSelector",
    "Hit",
    "LengthBudgetExamples",
    "MMRExamples",
    "Retriever",
    "SimilarExamples",
    "SqliteVecRetriever",
    "VectorIndex",
    "example_text",
    "mmr",
    "variables_text",
]

_LAZY = {
    "Hit": "._index",
    "VectorIndex": "._index",
    "mmr": "._index",
    "LengthBudgetExamples": "._selectors",
    "MMRExamples": "._selectors",
    "SimilarExamples": "._selectors",
    "SqliteVecRetriever": ".sqlite_vec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
