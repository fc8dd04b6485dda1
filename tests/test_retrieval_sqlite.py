"""SqliteVecRetriever: documents in SQLite searched with sqlite-vec (skipped when the
extension cannot be loaded here: pip install sqlite-vec, plus sqlean.py on a Python whose
sqlite3 cannot load extensions)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import promptkit as pk

pytest.importorskip("numpy")
from promptkit.retrieval import Retriever, SqliteVecRetriever, VectorIndex
from promptkit.retrieval.sqlite_vec import connect

try:
    connect().close()
except pk.ConfigurationError as exc:
    pytest.skip(f"sqlite-vec cannot be loaded here: {exc}", allow_module_level=True)

DOCS = [
    pk.Document(id="returns", title="Returns", text="Refunds reach your card in 5 days."),
    pk.Document(id="shipping", text="Standard shipping takes 3-5 business days."),
    pk.Document(id="warranty", text="A two-year warranty covers manufacturing defects."),
]


@pytest.fixture
def llm() -> pk.LLM:
    return pk.LLM(pk.FakeBackend(["An answer."] * 5))


@pytest.fixture
def store(llm: pk.LLM) -> Iterator[SqliteVecRetriever]:
    s = SqliteVecRetriever.open(":memory:", llm)
    s.add(DOCS)
    yield s
    s.close()


def test_it_is_a_retriever_and_agrees_with_the_vector_index(
    store: SqliteVecRetriever, llm: pk.LLM
) -> None:
    assert isinstance(store, Retriever)
    index = VectorIndex.from_documents(DOCS, llm)
    for q in ["How long do refunds take?", "warranty defects", "shipping days"]:
        assert [d.id for d in store.retrieve(q, 2)] == [d.id for d in index.retrieve(q, 2)]
    assert store.retrieve("refunds", 1) == [DOCS[0]]  # title and text come back
    assert len(store) == 3 and store.dim == 256 and store.model == "fake-model"
    assert store.retrieve("x", 0) == []


def test_ties_go_to_the_document_added_first(llm: pk.LLM) -> None:
    s = SqliteVecRetriever.open(":memory:", llm)
    s.add([pk.Document(id=f"d{i}", text="same words") for i in range(4)])
    assert [d.id for d in s.retrieve("same words", 2)] == ["d0", "d1"]


def test_a_file_keeps_documents_and_model(llm: pk.LLM, tmp_path: Path) -> None:
    path = tmp_path / "kb.db"
    first = SqliteVecRetriever.open(path, llm, table="kb")
    first.add(DOCS)
    first.add(["Gift cards never expire."])
    first.close()
    again = SqliteVecRetriever.open(path, llm, table="kb")
    assert len(again) == 4 and again.dim == 256 and again.model == "fake-model"
    assert [d.id for d in again.retrieve("gift card expiry", 1)] == ["doc4"]
    with sqlite3.connect(path) as plain:  # ordinary tables beside the vec0 one
        rows = plain.execute("SELECT id, title FROM kb ORDER BY rowid").fetchall()
    assert rows[0] == ("returns", "Returns") and len(rows) == 4
    other = pk.LLM(pk.FakeBackend(model="other-model"))
    with pytest.raises(pk.ConfigurationError, match="embedded with 'fake-model'"):
        SqliteVecRetriever.open(path, other, table="kb").retrieve("x", 1)


def test_errors(store: SqliteVecRetriever, llm: pk.LLM) -> None:
    with pytest.raises(pk.PromptError, match="already has a document with id 'returns'"):
        store.add([pk.Document(id="new", text="fine"), pk.Document(id="returns", text="again")])
    assert len(store) == 3  # the failed batch left nothing behind
    with pytest.raises(pk.ConfigurationError, match="table="):
        SqliteVecRetriever(store.connection, llm, table="docs; DROP TABLE x")
    short = pk.LLM(pk.FakeBackend(embedding_dim=8))
    with pytest.raises(pk.ConfigurationError, match="8 dimensions, the store 256"):
        SqliteVecRetriever(store.connection, short).add(["x"])
    empty = SqliteVecRetriever.open(":memory:", llm)
    assert empty.retrieve("anything", 3) == [] and len(empty) == 0


def test_context_and_async(store: SqliteVecRetriever, llm: pk.LLM) -> None:
    rag = pk.Context(template="{{ q }}", retriever=store, k=1)
    assert rag.render(q="refunds")[-1].content.startswith("<<<DOCUMENT returns>>>")
    assert asyncio.run(rag.arender(q="refunds")) == rag.render(q="refunds")

    async def add_and_find() -> list[str]:
        s = SqliteVecRetriever.open(":memory:", llm)
        await s.aadd(DOCS)
        return [d.id for d in await s.aretrieve("warranty", 1)]

    assert asyncio.run(add_and_find()) == ["warranty"]
