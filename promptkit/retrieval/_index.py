"""An in-memory vector index (numpy, cosine similarity) for documents or examples."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from .._errors import ConfigurationError, PromptError
from ..prompts import Document, Example
from ._protocols import Embedder, aembed, embed, example_text, normalize, require_numpy

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Hit", "VectorIndex", "mmr"]

_FORMAT = "promptkit.VectorIndex"
_VERSION = 1


@dataclass(frozen=True)
class Hit:
    """One search result: the item, its cosine similarity to the query, its position in
    the index."""

    item: Document | Example
    score: float
    index: int


def item_text(item: Document | Example) -> str:
    """The text embedded for an item: a document's title and text, an example's input."""
    if isinstance(item, Document):
        return f"{item.title}\n{item.text}" if item.title else item.text
    return example_text(item)


def top_k(scores: np.ndarray[Any, Any], k: int) -> list[int]:
    """Indices of the ``k`` highest scores, best first; ties go to the lower index."""
    import numpy as np

    neg = -np.asarray(scores)
    if 0 < k < len(neg):
        # the candidates: every score at least the k-th best (ties included), in index order
        kth = np.partition(neg, k - 1)[k - 1]
        pool = np.flatnonzero(neg <= kth)
        order = pool[np.argsort(neg[pool], kind="stable")]
    else:
        order = np.argsort(neg, kind="stable")
    return [int(i) for i in order[:k]]


def mmr(
    query: np.ndarray[Any, Any],
    vectors: np.ndarray[Any, Any],
    k: int,
    lambda_: float = 0.5,
    candidates: Sequence[int] | None = None,
) -> list[int]:
    """Maximal marginal relevance: ``k`` indices chosen one at a time, each maximising
    ``lambda_ * sim(query, v) - (1 - lambda_) * max(sim(v, chosen))``. ``lambda_=1`` is
    plain similarity, ``0`` pure diversity. Vectors and query must be unit length; ties
    go to the lower index.

    >>> import numpy as np
    >>> v = np.array([[1, 0], [0.99, 0.141], [0.6, 0.8]], dtype=np.float32)
    >>> mmr(np.array([1, 0], dtype=np.float32), v, 2, lambda_=1.0)
    [0, 1]
    >>> mmr(np.array([1, 0], dtype=np.float32), v, 2, lambda_=0.3)
    [0, 2]
    """
    import numpy as np

    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_={lambda_}: expected a number from 0 to 1")
    pool = np.asarray(list(range(len(vectors))) if candidates is None else list(candidates))
    if len(pool) == 0 or k <= 0:
        return []
    sub = vectors[pool]
    relevance = sub @ query
    redundancy = np.full(len(pool), -np.inf, dtype=np.float64)
    chosen: list[int] = []
    taken = np.zeros(len(pool), dtype=bool)
    for _ in range(min(k, len(pool))):
        if chosen:
            scores = lambda_ * relevance - (1.0 - lambda_) * redundancy
        else:
            scores = relevance.astype(np.float64)
        scores = np.where(taken, -np.inf, scores)
        best = int(np.argmax(scores))  # the first maximum: the lower index on ties
        chosen.append(best)
        taken[best] = True
        redundancy = np.maximum(redundancy, sub @ sub[best])
    return [int(pool[i]) for i in chosen]


class VectorIndex:
    """Documents (or few-shot examples) and their embeddings, searched by cosine similarity.

    >>> import promptkit as pk
    >>> from promptkit.retrieval import VectorIndex
    >>> llm = pk.LLM(pk.FakeBackend())
    >>> index = VectorIndex.from_documents(
    ...     [pk.Document(id="returns", text="Refunds reach you within 5 business days."),
    ...      pk.Document(id="shipping", text="Standard shipping takes 3-5 business days.")],
    ...     llm)
    >>> [d.id for d in index.retrieve("How long does a refund take?", k=1)]
    ['returns']

    ``embedder`` is an :class:`~promptkit.LLM` (its :meth:`~promptkit.LLM.embed`) or a
    function from a list of texts to vectors; it embeds what is added and every query.
    An index holds documents or examples, not both. Search ties go to the item added
    first, so results are deterministic. The index is a :class:`Retriever` (for
    :class:`~promptkit.Context`), and :meth:`save`/:meth:`load` keep it in one ``.npz``
    file (no pickle). Adding is not thread-safe; searching is.

    The whole index is one matrix multiplication per query: fine for some hundred
    thousand items; past that, use a vector store through the :class:`Retriever`
    protocol.
    """

    def __init__(self, embedder: Embedder | None = None) -> None:
        numpy = require_numpy()
        self.embedder = embedder
        self.items: list[Document | Example] = []
        self.kind: Literal["documents", "examples"] | None = None
        #: The embedding model's name, as the embedder reported it (None if unknown).
        self.model: str | None = None
        self._vectors: np.ndarray[Any, Any] = numpy.zeros((0, 0), dtype=numpy.float32)
        self._ids: set[str] = set()

    @classmethod
    def from_documents(cls, documents: Iterable[Document | str], embedder: Embedder) -> VectorIndex:
        """An index of ``documents`` (strings become documents ``doc1``, ``doc2``, ...)."""
        index = cls(embedder)
        index.add(documents)
        return index

    @classmethod
    def from_examples(cls, examples: Iterable[Example], embedder: Embedder) -> VectorIndex:
        """An index of few-shot examples, embedded by their input."""
        index = cls(embedder)
        index.add(examples)
        return index

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        what = f"{len(self)} {self.kind or 'items'}"
        return f"<VectorIndex {what} dim={self.dim} model={self.model!r}>"

    @property
    def dim(self) -> int:
        """The vectors' length (0 while empty)."""
        return int(self._vectors.shape[1]) if len(self.items) else 0

    @property
    def vectors(self) -> np.ndarray[Any, Any]:
        """The unit-length vectors, one row per item (a read-only view)."""
        view: np.ndarray[Any, Any] = self._vectors.view()
        view.flags.writeable = False
        return view

    # ------------------------------------------------------------------ adding

    def _items(self, items: Iterable[Document | Example | str]) -> list[Document | Example]:
        out: list[Document | Example] = []
        for item in items:
            if isinstance(item, str):
                item = Document(id=f"doc{len(self.items) + len(out) + 1}", text=item)
            if not isinstance(item, (Document, Example)):
                raise PromptError(
                    f"A VectorIndex holds Documents or Examples, not {type(item).__name__}."
                )
            kind: Literal["documents", "examples"] = (
                "documents" if isinstance(item, Document) else "examples"
            )
            if self.kind is None:
                self.kind = kind
            elif kind != self.kind:
                raise PromptError(f"This index holds {self.kind}; it cannot take {kind} too.")
            out.append(item)
        ids = [d.id for d in out if isinstance(d, Document)]
        seen = set(self._ids)
        for i in ids:
            if i in seen:
                raise PromptError(f"The index already has a document with id {i!r}.")
            seen.add(i)
        return out

    def _require_embedder(self) -> Embedder:
        if self.embedder is None:
            raise ConfigurationError(
                "This VectorIndex has no embedder: build it with VectorIndex(llm) (or "
                "VectorIndex.load(path, llm)), or pass vectors= / a query vector."
            )
        return self.embedder

    def add(
        self,
        items: Iterable[Document | Example | str],
        *,
        vectors: Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Add documents (or strings, made documents) or examples, embedding them with the
        index's embedder unless their ``vectors`` are given."""
        new = self._items(items)
        if not new:
            return
        if vectors is None:
            matrix, model = embed(self._require_embedder(), [item_text(i) for i in new])
        else:
            import numpy as np

            matrix, model = np.asarray(vectors, dtype=np.float32), None
        self._append(new, matrix, model)

    async def aadd(self, items: Iterable[Document | Example | str]) -> None:
        """Async twin of :meth:`add` (embedding through ``aembed``)."""
        new = self._items(items)
        if new:
            matrix, model = await aembed(self._require_embedder(), [item_text(i) for i in new])
            self._append(new, matrix, model)

    def _append(
        self, new: list[Document | Example], matrix: np.ndarray[Any, Any], model: str | None
    ) -> None:
        import numpy as np

        if matrix.ndim != 2 or matrix.shape[0] != len(new):
            raise ConfigurationError(
                f"{len(new)} items need {len(new)} vectors; got an array of shape {matrix.shape}."
            )
        if self.items and matrix.shape[1] != self.dim:
            raise ConfigurationError(
                f"The new vectors have {matrix.shape[1]} dimensions, the index {self.dim}: "
                "embed everything with the same model."
            )
        self._check_model(model)
        self.model = self.model or model
        unit = normalize(matrix)
        self._vectors = unit if not self.items else np.concatenate([self._vectors, unit])
        self.items.extend(new)
        self._ids.update(d.id for d in new if isinstance(d, Document))

    def _check_model(self, model: str | None) -> None:
        if model and self.model and model != self.model:
            raise ConfigurationError(
                f"This index was embedded with {self.model!r}, but the embedder now reports "
                f"{model!r}: vectors from different models cannot be compared. Rebuild the "
                "index, or search with the model that built it."
            )

    # ------------------------------------------------------------------ searching

    def _query_vector(
        self, query: str | Sequence[float], vector: np.ndarray[Any, Any] | None, model: str | None
    ) -> np.ndarray[Any, Any]:
        import numpy as np

        if vector is None:
            vector = np.asarray(query, dtype=np.float32)
        self._check_model(model)
        if vector.ndim != 1 or vector.shape[0] != self.dim:
            raise ConfigurationError(
                f"The query vector has shape {vector.shape}; the index has {self.dim} dimensions."
            )
        return normalize(vector)

    def _rank(
        self, q: np.ndarray[Any, Any], k: int, mmr_lambda: float | None, fetch_k: int | None
    ) -> list[Hit]:
        if k < 0:
            raise ValueError(f"k={k}: expected 0 or more")
        scores = self._vectors @ q
        if mmr_lambda is None:
            order = top_k(scores, k)
        else:
            pool = top_k(scores, fetch_k) if fetch_k is not None else None
            order = mmr(q, self._vectors, k, mmr_lambda, pool)
        return [Hit(self.items[i], float(scores[i]), i) for i in order]

    def search(
        self,
        query: str | Sequence[float],
        k: int = 4,
        *,
        mmr: float | None = None,
        fetch_k: int | None = None,
    ) -> list[Hit]:
        """The ``k`` items most similar to ``query`` (a text, or a vector), best first.

        With ``mmr=lambda_`` (0-1) the results are chosen by maximal marginal relevance
        (see :func:`mmr`) among the ``fetch_k`` most similar (default: all), trading
        similarity for diversity.
        """
        if not self.items or k == 0:
            return []
        if isinstance(query, str):
            matrix, model = embed(self._require_embedder(), [query])
            return self._rank(self._query_vector(query, matrix[0], model), k, mmr, fetch_k)
        return self._rank(self._query_vector(query, None, None), k, mmr, fetch_k)

    async def asearch(
        self,
        query: str | Sequence[float],
        k: int = 4,
        *,
        mmr: float | None = None,
        fetch_k: int | None = None,
    ) -> list[Hit]:
        """Async twin of :meth:`search`."""
        if not self.items or k == 0:
            return []
        if isinstance(query, str):
            matrix, model = await aembed(self._require_embedder(), [query])
            return self._rank(self._query_vector(query, matrix[0], model), k, mmr, fetch_k)
        return self._rank(self._query_vector(query, None, None), k, mmr, fetch_k)

    def _documents(self, hits: list[Hit]) -> list[Document]:
        if self.kind == "examples":
            raise PromptError("This index holds examples; retrieve() returns documents.")
        return [h.item for h in hits if isinstance(h.item, Document)]

    def retrieve(self, query: str, k: int) -> list[Document]:
        """The :class:`Retriever` method: the ``k`` most similar documents."""
        return self._documents(self.search(query, k))

    async def aretrieve(self, query: str, k: int) -> list[Document]:
        """Async twin of :meth:`retrieve`."""
        return self._documents(await self.asearch(query, k))

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to ``path``: one ``.npz`` file holding the float32 vectors and
        the items and model name as JSON (no pickle). Returns the path written.

        The file is replaced atomically, so a reader never sees half of it.
        """
        import numpy as np

        target = Path(path)
        meta = {
            "format": _FORMAT,
            "version": _VERSION,
            "kind": self.kind,
            "model": self.model,
            "items": [item.model_dump(mode="json") for item in self.items],
        }
        blob = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        vectors = self._vectors if self.items else np.zeros((0, 0), dtype=np.float32)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, vectors=vectors.astype(np.float32), meta=blob)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], embedder: Embedder | None = None) -> VectorIndex:
        """An index read from a file written by :meth:`save`. Files holding pickled
        objects are refused. ``embedder`` embeds queries (and later additions); it should
        be the model that built the index (checked when both name their model)."""
        import numpy as np

        problem = ""
        try:
            data = np.load(Path(path), allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("it is a single array, not an index")
            with data:
                if set(data.files) != {"vectors", "meta"}:
                    raise ValueError(f"it holds {sorted(data.files)}, not vectors and meta")
                vectors = np.asarray(data["vectors"], dtype=np.float32)
                meta = json.loads(bytes(data["meta"].astype(np.uint8)).decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
                raise ValueError("it is not a promptkit VectorIndex file")
            if meta.get("version") != _VERSION:
                raise ValueError(f"format version {meta.get('version')!r} is not {_VERSION}")
            kind = meta.get("kind")
            raw = meta.get("items")
            if not isinstance(raw, list):
                raise ValueError("its items are not a list")
            model_cls = Example if kind == "examples" else Document
            items: list[Document | Example] = [model_cls.model_validate(r) for r in raw]
            if items and (vectors.ndim != 2 or vectors.shape[0] != len(items)):
                raise ValueError(f"{len(items)} items but vectors of shape {vectors.shape}")
        except FileNotFoundError:
            raise ConfigurationError(f"No index file at {os.fspath(path)!r}.") from None
        except (ValueError, OSError, KeyError, zipfile.BadZipFile, ValidationError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            raise ConfigurationError(
                f"Cannot load a VectorIndex from {os.fspath(path)!r}: {problem}"
            )
        index = cls(embedder)
        model = meta.get("model")
        index.model = model if isinstance(model, str) else None
        if items:
            index._append(items, vectors, None)
            index.kind = "examples" if kind == "examples" else "documents"
        return index
