"""VectorIndex (search, MMR, save/load), the Retriever protocol and Context's retriever,
with the fake backend's deterministic embeddings."""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

import promptkit as pk
from promptkit.retrieval import Hit, Retriever, VectorIndex, mmr

np = pytest.importorskip("numpy")

DOCS = [
    pk.Document(id="returns", title="Returns", text="Refunds reach your card in 5 days."),
    pk.Document(id="shipping", text="Standard shipping takes 3-5 business days."),
    pk.Document(id="warranty", text="A two-year warranty covers manufacturing defects."),
    pk.Document(id="payment", text="We accept cards and bank transfer; cards are charged."),
]


@pytest.fixture
def fake() -> pk.FakeBackend:
    return pk.FakeBackend(["An answer [returns]."] * 10)


@pytest.fixture
def index(fake: pk.FakeBackend) -> VectorIndex:
    return VectorIndex.from_documents(DOCS, pk.LLM(fake))


def test_search_ranks_by_cosine(index: VectorIndex) -> None:
    hits = index.search("How long do refunds take?", k=2)
    assert [h.item.id for h in hits] == ["returns", "shipping"]  # shipping "takes" 3-5 days
    assert all(isinstance(h, Hit) for h in hits)
    assert hits[0].score > hits[1].score and hits[0].index == 0
    assert [d.id for d in index.retrieve("warranty defects", k=1)] == ["warranty"]
    assert len(index.search("anything", k=10)) == 4 and index.search("x", k=0) == []
    assert len(index) == 4 and index.dim == 256 and index.kind == "documents"
    assert index.model == "fake-model"
    assert repr(index) == "<VectorIndex 4 documents dim=256 model='fake-model'>"


def test_ties_go_to_the_item_added_first(fake: pk.FakeBackend) -> None:
    same = [pk.Document(id=f"d{i}", text="identical words here") for i in range(5)]
    index = VectorIndex.from_documents(same, pk.LLM(fake))
    for _ in range(3):
        assert [d.id for d in index.retrieve("identical words", k=3)] == ["d0", "d1", "d2"]


def test_strings_become_documents_and_ids_stay_unique(index: VectorIndex) -> None:
    index.add(["Gift cards never expire."])
    assert index.items[-1] == pk.Document(id="doc5", text="Gift cards never expire.")
    with pytest.raises(pk.PromptError, match="already has a document with id 'returns'"):
        index.add([pk.Document(id="returns", text="again")])
    with pytest.raises(pk.PromptError, match="id 'x'"):
        index.add([pk.Document(id="x", text="a"), pk.Document(id="x", text="b")])
    with pytest.raises(pk.PromptError, match="cannot take examples"):
        index.add([pk.Example(input="q", output="a")])
    with pytest.raises(pk.PromptError, match="Documents or Examples"):
        index.add([42])  # type: ignore[list-item]
    assert len(index) == 5


def test_vectors_without_an_embedder() -> None:
    index = VectorIndex()
    index.add(["north", "east", "north-east"], vectors=[[0, 1], [1, 0], [1, 1]])
    assert [h.item.id for h in index.search([0.1, 1.0], k=2)] == ["doc1", "doc3"]
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0)
    with pytest.raises(ValueError, match="read-only"):
        index.vectors[0, 0] = 5
    with pytest.raises(pk.ConfigurationError, match="no embedder"):
        index.search("text query")
    with pytest.raises(pk.ConfigurationError, match="3 dimensions"):
        index.add(["up"], vectors=[[0, 0, 1]])
    with pytest.raises(pk.ConfigurationError, match="query vector has shape"):
        index.search([1.0, 0.0, 0.0])
    with pytest.raises(pk.ConfigurationError, match="2 items need 2 vectors"):
        index.add(["a", "b"], vectors=[[1, 0]])


def test_a_different_embedding_model_is_refused(index: VectorIndex) -> None:
    other = pk.LLM(pk.FakeBackend(model="other-model"))
    index.embedder = other
    with pytest.raises(pk.ConfigurationError, match="embedded with 'fake-model'"):
        index.search("refunds")


def test_a_function_as_embedder() -> None:
    calls: list[list[str]] = []

    def embedder(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return [[t.count("a"), t.count("b")] for t in texts]

    index = VectorIndex.from_documents(["aaa", "bbb", "ab"], embedder)
    assert [d.text for d in index.retrieve("aaaa", k=2)] == ["aaa", "ab"]
    assert calls == [["aaa", "bbb", "ab"], ["aaaa"]] and index.model is None


def test_mmr_prefers_diverse_results(fake: pk.FakeBackend) -> None:
    docs = [
        pk.Document(id="a", text="refund policy refund days"),
        pk.Document(id="b", text="refund policy refund days again"),
        pk.Document(id="c", text="refund by bank transfer"),
    ]
    index = VectorIndex.from_documents(docs, pk.LLM(fake))
    plain = [h.item.id for h in index.search("refund policy days", k=2)]
    diverse = [h.item.id for h in index.search("refund policy days", k=2, mmr=0.3)]
    assert plain == ["a", "b"] and diverse == ["a", "c"]
    assert [h.item.id for h in index.search("refund policy days", k=2, mmr=1.0)] == plain
    # fetch_k limits the pool to the most similar
    assert [h.item.id for h in index.search("refund policy days", k=2, mmr=0.0, fetch_k=2)] == [
        "a",
        "b",
    ]


def test_mmr_function() -> None:
    v = np.eye(3, dtype=np.float32)
    assert mmr(np.array([1, 0, 0], dtype=np.float32), v, 5) == [0, 1, 2]
    assert mmr(np.array([1, 0, 0], dtype=np.float32), v, 0) == []
    with pytest.raises(ValueError, match="lambda_"):
        mmr(v[0], v, 1, lambda_=2.0)


def test_async_search_and_add(fake: pk.FakeBackend) -> None:
    async def go() -> tuple[list[str], list[str]]:
        index = VectorIndex(pk.LLM(fake))
        await index.aadd(DOCS)
        hits = await index.asearch("refunds", k=1)
        docs = await index.aretrieve("shipping business days", k=1)
        return [h.item.id for h in hits], [d.id for d in docs]

    assert asyncio.run(go()) == (["returns"], ["shipping"])


def test_an_index_of_examples(fake: pk.FakeBackend) -> None:
    examples = [
        pk.Example(input="I loved it", output="positive"),
        pk.Example(input={"review": "It broke", "product": "lamp"}, output="negative"),
    ]
    index = VectorIndex.from_examples(examples, pk.LLM(fake))
    assert index.kind == "examples"
    assert index.search("lamp broke", k=1)[0].item == examples[1]
    with pytest.raises(pk.PromptError, match="holds examples"):
        index.retrieve("x", k=1)


# --------------------------------------------------------------------------- files


def test_save_and_load_round_trip(index: VectorIndex, fake: pk.FakeBackend, tmp_path: Path) -> None:
    path = index.save(tmp_path / "kb.npz")
    assert path == tmp_path / "kb.npz" and path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb.npz"]  # no temporary left
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["meta", "vectors"] and data["vectors"].dtype == np.float32
    loaded = VectorIndex.load(path, pk.LLM(fake))
    assert loaded.items == index.items and loaded.model == "fake-model"
    assert np.allclose(loaded.vectors, index.vectors)
    q = "How long do refunds take?"
    assert [h.item.id for h in loaded.search(q, 3)] == [h.item.id for h in index.search(q, 3)]
    # a name without .npz is kept as given
    assert index.save(tmp_path / "kb.index").name == "kb.index"
    assert VectorIndex.load(tmp_path / "kb.index").items == index.items


def test_save_and_load_examples_and_empty(fake: pk.FakeBackend, tmp_path: Path) -> None:
    ex = VectorIndex.from_examples(
        [pk.Example(input="a b", output="x", rationale="r")], pk.LLM(fake)
    )
    loaded = VectorIndex.load(ex.save(tmp_path / "ex.npz"))
    assert loaded.kind == "examples" and loaded.items == ex.items
    empty = VectorIndex.load(VectorIndex().save(tmp_path / "empty.npz"))
    assert len(empty) == 0 and empty.kind is None


def test_load_refuses_pickles_and_foreign_files(tmp_path: Path) -> None:
    evil = tmp_path / "evil.npz"
    np.savez(evil, vectors=np.zeros((1, 2)), meta=np.array([{"x": 1}], dtype=object))
    with pytest.raises(pk.ConfigurationError, match="pickle"):
        VectorIndex.load(evil)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"vectors": [1, 2]}))
    with pytest.raises(pk.ConfigurationError, match="pickle"):
        VectorIndex.load(raw)
    single = tmp_path / "one.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(pk.ConfigurationError, match="single array"):
        VectorIndex.load(single)
    other = tmp_path / "other.npz"
    meta = np.frombuffer(json.dumps({"format": "something else"}).encode(), dtype=np.uint8)
    np.savez(other, vectors=np.zeros((0, 0), dtype=np.float32), meta=meta)
    with pytest.raises(pk.ConfigurationError, match="not a promptkit VectorIndex"):
        VectorIndex.load(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(pk.ConfigurationError, match="Cannot load"):
        VectorIndex.load(text)
    with pytest.raises(pk.ConfigurationError, match="No index file"):
        VectorIndex.load(tmp_path / "missing.npz")


def test_load_checks_items_against_vectors(index: VectorIndex, tmp_path: Path) -> None:
    path = index.save(tmp_path / "kb.npz")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        vectors = data["vectors"]
    meta["items"] = meta["items"][:2]
    blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad.npz", vectors=vectors, meta=blob)
    with pytest.raises(pk.ConfigurationError, match="2 items but vectors"):
        VectorIndex.load(tmp_path / "bad.npz")
    meta["items"] = [{"id": "bad id!", "text": "x"}]
    blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "bad2.npz", vectors=vectors[:1], meta=blob)
    with pytest.raises(pk.ConfigurationError, match="Invalid Document"):
        VectorIndex.load(tmp_path / "bad2.npz")


# --------------------------------------------------------------------------- Context


class Recorder:
    """A retriever that records its calls (sync only)."""

    def __init__(self, docs: list[pk.Document]) -> None:
        self.docs = docs
        self.calls: list[tuple[str, int]] = []

    def retrieve(self, query: str, k: int) -> list[pk.Document]:
        self.calls.append((query, k))
        return self.docs


class AsyncRecorder(Recorder):
    def __init__(self, docs: list[pk.Document]) -> None:
        super().__init__(docs)
        self.async_calls: list[tuple[str, int]] = []

    async def aretrieve(self, query: str, k: int) -> list[pk.Document]:
        self.async_calls.append((query, k))
        return self.docs[:1]


def test_the_protocol() -> None:
    assert isinstance(Recorder([]), Retriever)
    assert isinstance(VectorIndex(), Retriever)
    assert not isinstance(object(), Retriever)


def test_context_retrieves_when_no_documents_are_given(index: VectorIndex) -> None:
    rag = pk.Context(instruction="Answer.", template="Q: {{ question }}", retriever=index, k=2)
    messages = rag.render(question="How long do refunds take?")
    user = messages[-1].content
    assert user.startswith("<<<DOCUMENT returns>>>\nTitle: Returns\nRefunds reach")
    assert user.count("<<<DOCUMENT ") == 2 and user.endswith("Q: How long do refunds take?")
    assert "[returns]" in messages[0].content  # the citation rule names the first document
    # deterministic: the same input renders the same messages
    assert rag.render(question="How long do refunds take?") == messages


def test_given_documents_win_over_the_retriever() -> None:
    rec = Recorder([pk.Document(id="r", text="retrieved")])
    rag = pk.Context(template="{{ q }}", retriever=rec)
    own = rag.render(q="x", documents=[pk.Document(id="given", text="given")])
    assert "DOCUMENT given" in own[-1].content and rec.calls == []
    fixed = pk.Context(template="{{ q }}", retriever=rec, documents=["on the prompt"])
    assert "DOCUMENT doc1" in fixed.render(q="x")[-1].content and rec.calls == []
    with pytest.raises(pk.PromptError, match="needs documents"):
        rag.render(q="x", documents=[])
    assert rec.calls == []


def test_the_query_variable() -> None:
    rec = Recorder([pk.Document(id="r", text="retrieved")])
    rag = pk.Context(
        instruction="Answer {{ name }}.", template="{{ q }}", retriever=rec, query_var="q", k=3
    )
    rag.render(q="what?", name="Ada")
    assert rec.calls == [("what?", 3)]
    with pytest.raises(pk.InvalidPromptError, match="query_var"):
        pk.Context(instruction="Answer {{ name }}.", template="{{ q }}", retriever=rec)
    with pytest.raises(pk.InvalidPromptError, match="query_var='nope'"):
        pk.Context(template="{{ q }}", retriever=rec, query_var="nope")
    with pytest.raises(pk.MissingVariablesError):
        pk.Context(template="{{ q }}", retriever=rec).render(qq="typo")
    pk.Context(template="{{ n }}", retriever=rec).render(n=42)
    assert rec.calls[-1] == ("42", 4)


def test_retrieved_documents_are_capped_and_checked() -> None:
    many = [pk.Document(id=f"d{i}", text=f"text {i}") for i in range(6)]
    rag = pk.Context(template="{{ q }}", retriever=Recorder(many), k=2)
    assert rag.render(q="x")[-1].content.count("<<<DOCUMENT ") == 2
    with pytest.raises(pk.PromptError, match="found no documents"):
        pk.Context(template="{{ q }}", retriever=Recorder([])).render(q="x")
    dup = [pk.Document(id="same", text="a"), pk.Document(id="same", text="b")]
    with pytest.raises(pk.PromptError, match="unique"):
        pk.Context(template="{{ q }}", retriever=Recorder(dup)).render(q="x")


def test_the_retriever_is_not_serialised(index: VectorIndex) -> None:
    rag = pk.Context(template="{{ q }}", retriever=index, k=3)
    data = rag.model_dump()
    assert "retriever" not in data and data["k"] == 3
    assert "retriever" not in rag.model_dump_json()
    assert "retriever" not in repr(rag)
    assert rag.model_copy(update={"k": 1}).retriever is index


def test_async_render_uses_aretrieve_or_a_thread(fake: pk.FakeBackend) -> None:
    docs = [pk.Document(id="a", text="A"), pk.Document(id="b", text="B")]
    arec = AsyncRecorder(docs)
    rag = pk.Context(template="{{ q }}", retriever=arec, k=2)
    messages = asyncio.run(rag.arender(q="x"))
    assert arec.async_calls == [("x", 2)] and arec.calls == []
    assert messages[-1].content.count("<<<DOCUMENT ") == 1
    rec = Recorder(docs)
    sync_only = pk.Context(template="{{ q }}", retriever=rec)
    assert asyncio.run(sync_only.arender(q="y")) == sync_only.render(q="y")
    assert rec.calls == [("y", 4), ("y", 4)]
    reply = asyncio.run(sync_only.arun(pk.LLM(fake), q="z"))
    assert reply.text == "An answer [returns]."
    assert "<<<DOCUMENT a>>>" in fake.requests[-1].messages[-1].content  # type: ignore[index]


def test_retrieval_and_example_selection_together(index: VectorIndex, fake: pk.FakeBackend) -> None:
    from promptkit.retrieval import SimilarExamples

    examples = [
        pk.Example(input="Is shipping free?", output="See [shipping]."),
        pk.Example(input="Do refunds take long?", output="See [returns]."),
    ]
    rag = pk.Context(
        template="{{ q }}",
        retriever=index,
        k=1,
        examples=examples,
        example_selector=SimilarExamples(1, pk.LLM(fake)),
    )
    assert rag.select_examples(q="refunds please") == [examples[1]]
    messages = rag.render(q="refunds please")
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2].content == "See [returns]."
    assert messages[-1].content.startswith("<<<DOCUMENT returns>>>")


def test_run_sends_what_render_shows(index: VectorIndex, fake: pk.FakeBackend) -> None:
    rag = pk.Context(template="{{ q }}", retriever=index, k=1)
    rag.run(pk.LLM(fake), q="warranty defects")
    assert list(fake.requests[-1].messages or []) == rag.render(q="warranty defects")


def test_the_retriever_can_be_a_vector_index_loaded_from_disk(
    index: VectorIndex, fake: pk.FakeBackend, tmp_path: Path
) -> None:
    loaded = VectorIndex.load(index.save(tmp_path / "kb.npz"), pk.LLM(fake))
    rag: Any = pk.Context(template="{{ q }}", retriever=loaded, k=1)
    assert rag.render(q="shipping days")[-1].content.startswith("<<<DOCUMENT shipping>>>")


def test_without_numpy_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit.retrieval import SimilarExamples

    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(pk.ConfigurationError, match=r"promptkit\[retrieval\]"):
        VectorIndex()
    with pytest.raises(pk.ConfigurationError, match="numpy"):
        SimilarExamples(2, pk.LLM(pk.FakeBackend()))
    with pytest.raises(pk.ConfigurationError, match="numpy"):
        pk.LLM(pk.FakeBackend()).embed(["x"]).array()
