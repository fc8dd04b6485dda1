"""LLM.embed/aembed over the fake backend: batching, order, usage, errors."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest

import promptkit as pk
from promptkit._types import Completion, Delta, Embeddings, Request, Usage
from promptkit.backends._base import Backend
from promptkit.backends.fake import hashed_embedding


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    return dot / (na * nb) if na and nb else 0.0


TEXTS = [f"text number {i} about topic {i % 3}" for i in range(7)]


def test_vectors_in_input_order_with_usage() -> None:
    fake = pk.FakeBackend(embedding_dim=16)
    e = pk.LLM(fake).embed(TEXTS)
    assert isinstance(e, Embeddings)
    assert len(e) == 7 and e.dim == 16
    assert e.vectors == [hashed_embedding(t, 16) for t in TEXTS]
    assert e.backend == "fake" and e.model == "fake-model"
    assert e.usage.prompt_tokens == sum(-(-len(t) // 4) for t in TEXTS)
    assert e.requests == 1 and e.latency_s >= 0
    assert list(e) == e.vectors and e[3] == e.vectors[3]


@pytest.mark.parametrize(("batch_size", "sizes"), [(2, [2, 2, 2, 1]), (3, [3, 3, 1]), (7, [7])])
def test_batches_keep_order_and_add_up(batch_size: int, sizes: list[int]) -> None:
    fake = pk.FakeBackend(embedding_dim=8, latency=0.001)
    llm = pk.LLM(fake, max_concurrency=3)
    e = llm.embed(TEXTS, batch_size=batch_size)
    assert sorted(len(b) for b in fake.embed_requests) == sorted(sizes)
    assert sorted(t for b in fake.embed_requests for t in b) == sorted(TEXTS)
    assert e.vectors == [hashed_embedding(t, 8) for t in TEXTS]
    assert e.requests == len(sizes)
    assert e.usage.prompt_tokens == sum(-(-len(t) // 4) for t in TEXTS)


def test_default_batch_size_is_the_backends() -> None:
    fake = pk.FakeBackend(embed_batch_size=4)
    pk.LLM(fake).embed(TEXTS)
    assert [len(b) for b in fake.embed_requests] in ([4, 3], [3, 4])


def test_a_str_is_one_text_and_empty_input_calls_nothing() -> None:
    fake = pk.FakeBackend()
    llm = pk.LLM(fake)
    assert len(llm.embed("one text")) == 1
    empty = llm.embed([])
    assert len(empty) == 0 and empty.dim == 0 and empty.requests == 0
    assert fake.embed_requests == [["one text"]]


def test_async_twin_gives_the_same_vectors() -> None:
    fake = pk.FakeBackend(embedding_dim=8)
    llm = pk.LLM(fake)
    e = asyncio.run(llm.aembed(TEXTS, batch_size=3))
    assert e.vectors == llm.embed(TEXTS).vectors
    assert e.requests == 3


def test_similarity_is_meaningful() -> None:
    e = pk.LLM(pk.FakeBackend()).embed(
        ["How long does a refund take?", "Refunds take five days.", "Shipping is free."]
    )
    assert cosine(e[0], e[1]) > cosine(e[0], e[2])
    assert cosine(e[0], e[2]) == 0.0


def test_hashed_embedding_is_stable_across_processes() -> None:
    # BLAKE2b, not hash(): these numbers never change with PYTHONHASHSEED
    assert hashed_embedding("refund", 8) == [0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    v = hashed_embedding("The refunds, the REFUND!", 32)
    assert v == hashed_embedding("refund refund", 32)
    assert hashed_embedding("the of and", 8) == [0.0] * 8
    assert math.isclose(sum(x * x for x in hashed_embedding("a b c d words here", 64)), 1.0)


def test_embeddings_as_a_numpy_array() -> None:
    np = pytest.importorskip("numpy")
    arr = pk.LLM(pk.FakeBackend(embedding_dim=4)).embed(["a x", "b y"]).array()
    assert arr.shape == (2, 4) and arr.dtype == np.float32
    assert Embeddings([]).array().shape == (0, 0)


# --------------------------------------------------------------------------- errors


def test_input_must_be_texts() -> None:
    llm = pk.LLM(pk.FakeBackend())
    with pytest.raises(pk.ParameterError, match="item 1 is a int"):
        llm.embed(["ok", 3])  # type: ignore[list-item]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(pk.ParameterError, match="batch_size"):
            llm.embed(["ok"], batch_size=bad)  # type: ignore[arg-type]


def test_embedder_errors_propagate() -> None:
    def broken(text: str) -> list[float]:
        raise pk.ServerError("boom", backend="fake")

    with pytest.raises(pk.ServerError, match="boom"):
        pk.LLM(pk.FakeBackend(embedder=broken)).embed(["x"])


def test_vectors_of_different_lengths_are_malformed() -> None:
    fake = pk.FakeBackend(embedder=lambda t: [1.0] * len(t))
    with pytest.raises(pk.MalformedResponseError, match="different lengths"):
        pk.LLM(fake).embed(["ab", "abc"])
    with pytest.raises(pk.MalformedResponseError, match="different lengths"):
        pk.LLM(pk.FakeBackend(embedder=lambda t: [])).embed(["x"])


class NoEmbeddings(Backend):
    name = "plain"

    def complete(self, request: Request) -> Completion:
        raise NotImplementedError

    async def acomplete(self, request: Request) -> Completion:
        raise NotImplementedError

    def stream(self, request: Request) -> Iterator[Delta]:
        raise NotImplementedError

    def astream(self, request: Request) -> AsyncIterator[Delta]:
        raise NotImplementedError


class ShortCount(NoEmbeddings):
    name = "short"
    supports_embeddings = True

    def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
        return Embeddings([[1.0, 0.0]] * (len(texts) - 1), usage=Usage(1, None, 1))


def test_a_backend_without_embeddings_says_so() -> None:
    llm = pk.LLM(NoEmbeddings())
    with pytest.raises(pk.ConfigurationError, match="The plain backend has no embeddings"):
        llm.embed(["x"])
    with pytest.raises(pk.ConfigurationError, match="has no embeddings"):
        asyncio.run(llm.aembed(["x"]))
    with pytest.raises(pk.ConfigurationError, match="has no embeddings"):
        asyncio.run(NoEmbeddings().aembed(["x"]))


def test_a_wrong_number_of_vectors_is_malformed() -> None:
    llm = pk.LLM(ShortCount())
    with pytest.raises(pk.MalformedResponseError, match="returned 1 embeddings for 2 texts"):
        llm.embed(["a", "b"])
    # the base aembed runs embed in a thread
    with pytest.raises(pk.MalformedResponseError):
        asyncio.run(llm.aembed(["a", "b"]))


def test_timeout_reaches_the_backend() -> None:
    seen: list[Any] = []

    class Recording(ShortCount):
        def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> Embeddings:
            seen.append(timeout)
            return Embeddings([[1.0]] * len(texts))

    pk.LLM(Recording()).embed(["a"], timeout=2.5)
    assert seen == [2.5]
