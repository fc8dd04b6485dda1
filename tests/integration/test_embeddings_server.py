"""Embeddings and token counts on real llama.cpp: llama-cpp-python's server in embedding
mode (SmolLM2 has no pooling layer, so the server returns per-token vectors that the
llama-server backend mean-pools), the embedded backend's own embedding instance, and
retrieval and example selection on top of them. Quality is not asserted beyond sanity: a
135M chat model is a weak embedder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest

import promptkit as pk
from promptkit._tokens import LlamaCppTokenCounter, ServerTokenCounter
from promptkit.backends.llama_server import LlamaServerBackend
from promptkit.backends.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.integration

TEXTS = [
    "Refunds reach the original payment method within 5 business days.",
    "Standard shipping takes 3-5 business days.",
    "Electronics carry a two-year warranty.",
]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(x * x for x in b)))


@pytest.fixture(scope="module")
def embedded(gguf_path: Path) -> pk.LLM:
    return pk.LLM(LlamaCppBackend())  # gguf_path: skipped when the model is not installed


def test_server_embeddings_in_order(llama_embedding_server: str) -> None:
    llm = pk.LLM(LlamaServerBackend(base_url=llama_embedding_server))
    e = llm.embed([*TEXTS, TEXTS[0]], batch_size=2)
    # token vectors come back, so after the first batch texts go one per request
    assert len(e) == 4 and e.dim == 576 and e.requests == 4
    assert all(math.isfinite(x) for v in e for x in v)
    assert cosine(e[0], e[3]) > 0.9999  # the same text, in another batch
    single = llm.embed(TEXTS[1])
    assert cosine(single[0], e[1]) > 0.9999  # batching does not change a vector
    assert e.backend == "llama-server" and e.usage.prompt_tokens


def test_server_and_embedded_vectors_agree(llama_embedding_server: str, embedded: pk.LLM) -> None:
    server = pk.LLM(LlamaServerBackend(base_url=llama_embedding_server)).embed(TEXTS)
    local = embedded.embed(TEXTS)
    for a, b in zip(server, local, strict=True):
        assert cosine(a, b) > 0.99  # both are the mean of the same token vectors


def test_a_server_without_embeddings_says_how_to_start_it(llama_server: str) -> None:
    llm = pk.LLM(LlamaServerBackend(base_url=llama_server))
    with pytest.raises(pk.ServerError, match="--embedding true") as info:
        llm.embed(["x"])
    assert info.value.attempts == 1  # not retried


def test_server_token_counts_match_the_model(llama_server: str, gguf_path: Path) -> None:
    server = ServerTokenCounter(llama_server)
    local = LlamaCppTokenCounter(str(gguf_path))
    for text in [*TEXTS, "Hello world", "ünïcödé and emoji 🎉"]:
        assert server.count(text) == local.count(text) > 0
    assert isinstance(
        pk.LLM(LlamaServerBackend(base_url=llama_server)).token_counter(), ServerTokenCounter
    )


def test_embedded_embeddings(embedded: pk.LLM) -> None:
    e = embedded.embed(TEXTS)
    assert len(e) == 3 and e.dim == 576 and e.backend == "llamacpp"
    assert e.model == "SmolLM2-135M-Instruct" and (e.usage.prompt_tokens or 0) > 10
    assert embedded.embed(TEXTS).vectors == e.vectors  # deterministic
    one = embedded.embed(TEXTS[2])
    assert cosine(one[0], e[2]) > 0.9999


def test_embedded_text_longer_than_the_context(gguf_path: Path) -> None:
    small = pk.LLM(LlamaCppBackend(model=str(gguf_path), embedding_n_ctx=64))
    with pytest.raises(pk.ContextLengthError, match=r"more than the 64 .* embedding_n_ctx"):
        small.embed(["word " * 200])
    assert len(small.embed(["word " * 40])) == 1


def test_embedded_token_counter(embedded: pk.LLM) -> None:
    counter = embedded.token_counter()
    assert isinstance(counter, LlamaCppTokenCounter)
    assert counter.count("Hello world") == 2
    c = pk.Conversation(role="bot", max_history_tokens=40, token_counter=counter)
    for i in range(5):
        c = c.with_turn(f"question {i} about the weather", f"answer {i}: it is sunny")
    history = c.render(input="and tomorrow?")[1:-1]
    assert 0 < len(history) < 10
    assert sum(counter.count(m.content) + 4 for m in history) <= 40


def test_retrieval_and_selection_on_real_embeddings(embedded: pk.LLM, tmp_path: Path) -> None:
    from promptkit.retrieval import SimilarExamples, VectorIndex

    docs = [pk.Document(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)]
    index = VectorIndex.from_documents(docs, embedded)
    for doc in docs:  # a document's own text finds it first
        assert index.retrieve(doc.text, k=1) == [doc]
    loaded = VectorIndex.load(index.save(tmp_path / "kb.npz"), embedded)
    rag = pk.Context(template="{{ q }}", retriever=loaded, k=1)
    assert rag.render(q=TEXTS[1])[-1].content.startswith("<<<DOCUMENT d1>>>")
    examples = [pk.Example(input=t, output=f"label {i}") for i, t in enumerate(TEXTS)]
    p = pk.FewShot(examples=examples, example_selector=SimilarExamples(1, embedded))
    assert [m.content for m in p.render(input=TEXTS[2]) if m.role == "assistant"] == ["label 2"]
