"""A retriever over documents stored in SQLite, searched with the sqlite-vec extension.

Needs ``pip install sqlite-vec`` (the extension, a few hundred kB). Python's own
``sqlite3`` must be able to load extensions; builds without that (pyenv's default, some
distributions') are detected, and ``sqlean.py`` (``pip install sqlean.py``, a drop-in
``sqlite3`` that can) is used instead when it is installed. Both are in promptkit's
``retrieval`` extra.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, PromptError
from ..prompts import Document
from ._index import item_text
from ._protocols import Embedder, aembed, embed, normalize

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SqliteVecRetriever", "connect"]

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: Extra neighbours fetched so that ties at the k-th place go to the earlier document.
_TIE_MARGIN = 16


def connect(path: str | os.PathLike[str] = ":memory:") -> Any:
    """A SQLite connection with sqlite-vec loaded (``check_same_thread=False``; the
    retriever serialises its use with a lock).

    >>> conn = connect()                                                  # doctest: +SKIP
    >>> conn.execute("select vec_version()").fetchone()                   # doctest: +SKIP
    ('v0.1.9',)
    """
    try:
        sqlite_vec = importlib.import_module("sqlite_vec")
    except ImportError:
        raise ConfigurationError(
            "SqliteVecRetriever needs the sqlite-vec package: pip install sqlite-vec (or "
            'pip install "promptkit[retrieval]").'
        ) from None
    conn: Any = sqlite3.connect(os.fspath(path), check_same_thread=False)
    if not hasattr(conn, "enable_load_extension"):
        conn.close()
        try:
            sqlean = importlib.import_module("sqlean")
        except ImportError:
            raise ConfigurationError(
                "This Python's sqlite3 cannot load extensions (it was built without "
                "--enable-loadable-sqlite-extensions, as pyenv builds are by default). "
                "pip install sqlean.py, a sqlite3 that can, which promptkit then uses."
            ) from None
        conn = sqlean.connect(os.fspath(path), check_same_thread=False)
    try:
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
    except Exception as exc:
        conn.close()
        raise ConfigurationError(f"Cannot load the sqlite-vec extension: {exc}") from None
    return conn


class SqliteVecRetriever:
    """Documents and their embeddings in a SQLite database, searched by cosine distance
    with sqlite-vec. A :class:`~promptkit.retrieval.Retriever`, so
    ``pk.Context(retriever=...)`` takes it.

    >>> import promptkit as pk                                            # doctest: +SKIP
    >>> store = SqliteVecRetriever.open("kb.db", llm)                     # doctest: +SKIP
    >>> store.add([pk.Document(id="returns", text="Refunds take 5 days.")])  # doctest: +SKIP
    >>> [d.id for d in store.retrieve("refund delay", k=1)]               # doctest: +SKIP
    ['returns']

    ``connection`` is a connection with sqlite-vec loaded (see :func:`connect`), or use
    :meth:`open` with a file path. Documents live in the table ``table`` (``id``,
    ``title``, ``text``), their unit-length float32 vectors in the ``vec0`` table
    ``{table}_vec`` with the same rowid, and the embedding model's name and dimensions in
    ``{table}_meta``; re-opening the file finds everything again. Ties in distance go to
    the document added first (among the ``k + 16`` nearest that sqlite-vec returns).

    The same few lines adapt any other store (LanceDB, Chroma, pgvector, ...): embed the
    query, ask the store for the nearest ``k``, return :class:`~promptkit.Document`\\ s.
    """

    def __init__(self, connection: Any, embedder: Embedder, *, table: str = "documents") -> None:
        if not _TABLE.match(table):
            raise ConfigurationError(
                f"table={table!r}: use a plain name (letters, digits, _; up to 64)."
            )
        self.connection = connection
        self.embedder = embedder
        self.table = table
        self._lock = threading.Lock()
        with self._lock, connection:
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (rowid INTEGER PRIMARY KEY, "
                "id TEXT NOT NULL UNIQUE, title TEXT, text TEXT NOT NULL)"
            )
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {table}_meta (key TEXT PRIMARY KEY, value TEXT)"
            )
        self.dim, self.model = self._meta()

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], embedder: Embedder, *, table: str = "documents"
    ) -> SqliteVecRetriever:
        """A retriever on the database file ``path`` (created if missing; ``":memory:"``
        for a database that lives as long as the retriever)."""
        return cls(connect(path), embedder, table=table)

    def __repr__(self) -> str:
        return f"<SqliteVecRetriever table={self.table!r} documents={len(self)}>"

    def _meta(self) -> tuple[int | None, str | None]:
        rows = dict(self.connection.execute(f"SELECT key, value FROM {self.table}_meta"))
        dim = json.loads(rows["dim"]) if "dim" in rows else None
        model = json.loads(rows["model"]) if "model" in rows else None
        return dim, model

    def __len__(self) -> int:
        with self._lock:
            row = self.connection.execute(f"SELECT count(*) FROM {self.table}").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database connection."""
        self.connection.close()

    # ------------------------------------------------------------------ adding

    def _documents(self, documents: Iterable[Document | str], start: int) -> list[Document]:
        out = []
        for i, d in enumerate(documents):
            if isinstance(d, str):
                d = Document(id=f"doc{start + i + 1}", text=d)
            if not isinstance(d, Document):
                raise PromptError(f"SqliteVecRetriever stores Documents, not {type(d).__name__}.")
            out.append(d)
        return out

    def add(self, documents: Iterable[Document | str]) -> None:
        """Embed and store documents (strings become documents ``doc1``, ``doc2``, ...)."""
        docs = self._documents(documents, len(self))
        if docs:
            vectors, model = embed(self.embedder, [item_text(d) for d in docs])
            self._insert(docs, vectors, model)

    async def aadd(self, documents: Iterable[Document | str]) -> None:
        """Async twin of :meth:`add`."""
        docs = self._documents(documents, len(self))
        if docs:
            vectors, model = await aembed(self.embedder, [item_text(d) for d in docs])
            self._insert(docs, vectors, model)

    def _insert(
        self, docs: list[Document], vectors: np.ndarray[Any, Any], model: str | None
    ) -> None:
        dim = int(vectors.shape[1])
        self._check(dim, model)
        unit = normalize(vectors)
        t = self.table
        with self._lock, self.connection as conn:
            if self.dim is None:
                conn.execute(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS {t}_vec USING "
                    f"vec0(embedding float[{dim}] distance_metric=cosine)"
                )
                conn.execute(f"INSERT INTO {t}_meta VALUES ('dim', ?)", (json.dumps(dim),))
            if model and self.model is None:
                conn.execute(
                    f"INSERT OR REPLACE INTO {t}_meta VALUES ('model', ?)", (json.dumps(model),)
                )
            for doc, vector in zip(docs, unit, strict=True):
                try:
                    cur = conn.execute(
                        f"INSERT INTO {t}(id, title, text) VALUES (?, ?, ?)",
                        (doc.id, doc.title, doc.text),
                    )
                except Exception as exc:  # sqlite3's IntegrityError, or sqlean's own class
                    if type(exc).__name__ != "IntegrityError":
                        raise
                    raise PromptError(
                        f"The store already has a document with id {doc.id!r}."
                    ) from None
                conn.execute(
                    f"INSERT INTO {t}_vec(rowid, embedding) VALUES (?, ?)",
                    (cur.lastrowid, vector.astype("float32").tobytes()),
                )
        self.dim = dim
        self.model = self.model or model

    def _check(self, dim: int, model: str | None) -> None:
        if self.dim is not None and dim != self.dim:
            raise ConfigurationError(
                f"The vectors have {dim} dimensions, the store {self.dim}: embed everything "
                "with the same model."
            )
        if model and self.model and model != self.model:
            raise ConfigurationError(
                f"This store was embedded with {self.model!r}, but the embedder now reports "
                f"{model!r}: rebuild the store, or use the model that built it."
            )

    # ------------------------------------------------------------------ searching

    def _search(self, q: np.ndarray[Any, Any], model: str | None, k: int) -> list[Document]:
        if self.dim is None or k <= 0:
            return []
        self._check(int(q.shape[0]), model)
        t = self.table
        # sqlite-vec breaks ties in no set order: fetch a few more, order by (distance, rowid)
        sql = (
            f"WITH knn AS (SELECT rowid, distance FROM {t}_vec "
            "WHERE embedding MATCH ? AND k = ?) "
            f"SELECT d.id, d.title, d.text FROM knn JOIN {t} d ON d.rowid = knn.rowid "
            "ORDER BY knn.distance, d.rowid LIMIT ?"
        )
        blob = normalize(q).astype("float32").tobytes()
        with self._lock:
            rows = self.connection.execute(sql, (blob, k + _TIE_MARGIN, k)).fetchall()
        return [Document(id=i, title=title, text=text) for i, title, text in rows]

    def retrieve(self, query: str, k: int) -> list[Document]:
        """The ``k`` documents nearest to ``query``, nearest first."""
        if self.dim is None:
            return []
        vectors, model = embed(self.embedder, [query])
        return self._search(vectors[0], model, k)

    async def aretrieve(self, query: str, k: int) -> list[Document]:
        """Async twin of :meth:`retrieve` (the query is embedded through ``aembed``)."""
        if self.dim is None:
            return []
        vectors, model = await aembed(self.embedder, [query])
        return self._search(vectors[0], model, k)
