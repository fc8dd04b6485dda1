"""Embeddings and tokenize over the HTTP backends' wire formats (respx; nothing leaves the
process): request bodies, reply parsing, batching, retries and typed errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from respx_helpers import body_of

import promptkit as pk
from promptkit._client import LLM
from promptkit._tokens import APPROX, ServerTokenCounter, TiktokenCounter
from promptkit.backends.ollama import OllamaBackend
from promptkit.backends.openai import LlamaServerBackend, OpenAIBackend
from promptkit.backends.vllm import VLLMBackend

BASE = "http://testserver/v1"
ROOT = "http://testserver"
OPENAI = "https://api.openai.com/v1"
KEY = "sk-test-0123456789abcdefghij"


def oai_reply(
    vectors: list[Any], *, model: str = "emb-model", order: list[int] | None = None
) -> dict[str, Any]:
    idx = order or list(range(len(vectors)))
    return {
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "index": i, "embedding": vectors[i]} for i in idx],
        "usage": {"prompt_tokens": 3 * len(vectors), "total_tokens": 3 * len(vectors)},
    }


def echo_vectors(request: httpx.Request) -> httpx.Response:
    """One vector per input, [len(text), position in the batch]."""
    texts = json.loads(request.content)["input"]
    return httpx.Response(
        200, json=oai_reply([[float(len(t)), float(i)] for i, t in enumerate(texts)])
    )


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def openai(**kw: Any) -> OpenAIBackend:
    kw.setdefault("model", "chat-model")
    kw.setdefault("base_url", BASE)
    kw.setdefault("retry_base_delay", 0)
    return OpenAIBackend(**kw)


# --------------------------------------------------------------------------- OpenAI-compatible


def test_openai_body_and_reply(mock: respx.MockRouter) -> None:
    route = mock.post(f"{BASE}/embeddings").respond(json=oai_reply([[1, 0], [0, 1]]))
    e = LLM(openai(embedding_model="emb-model")).embed(["first", "second"])
    assert body_of(route) == {"input": ["first", "second"], "model": "emb-model"}
    assert e.vectors == [[1.0, 0.0], [0.0, 1.0]]
    assert e.model == "emb-model" and e.backend == "openai"
    assert e.usage.prompt_tokens == 6 and e.usage.total_tokens == 6


def test_openai_defaults_to_the_chat_model_on_other_servers(mock: respx.MockRouter) -> None:
    route = mock.post(f"{BASE}/embeddings").respond(json=oai_reply([[1.0]]))
    LLM(openai()).embed(["x"])
    assert body_of(route)["model"] == "chat-model"
    route2 = mock.post(f"{BASE}/embeddings").respond(json=oai_reply([[1.0]]))
    LLM(openai(model=None)).embed(["x"])
    assert "model" not in body_of(route2)


def test_the_openai_api_needs_an_embedding_model(mock: respx.MockRouter) -> None:
    llm = LLM(OpenAIBackend(model="gpt-4o-mini", api_key=KEY))
    with pytest.raises(pk.ConfigurationError, match=r"embedding_model=.*text-embedding-3-small"):
        llm.embed(["x"])
    route = mock.post(f"{OPENAI}/embeddings").respond(json=oai_reply([[0.5, 0.5]]))
    llm = LLM(
        OpenAIBackend(model="gpt-4o-mini", api_key=KEY, embedding_model="text-embedding-3-small")
    )
    assert llm.embed(["x"]).vectors == [[0.5, 0.5]]
    assert route.calls[0].request.headers["authorization"] == f"Bearer {KEY}"
    assert body_of(route)["model"] == "text-embedding-3-small"


def test_openai_reply_order_follows_index(mock: respx.MockRouter) -> None:
    mock.post(f"{BASE}/embeddings").respond(json=oai_reply([[1.0], [2.0], [3.0]], order=[2, 0, 1]))
    assert LLM(openai()).embed(["a", "b", "c"]).vectors == [[1.0], [2.0], [3.0]]


def test_openai_batches_keep_input_order(mock: respx.MockRouter) -> None:
    route = mock.post(f"{BASE}/embeddings").mock(side_effect=echo_vectors)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    e = LLM(openai()).embed(texts, batch_size=2)
    assert route.call_count == 3
    assert sorted(len(body_of(route, i)["input"]) for i in range(3)) == [1, 2, 2]
    assert [v[0] for v in e.vectors] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert e.requests == 3 and e.usage.prompt_tokens == 15
    ae = asyncio.run(LLM(openai()).aembed(texts, batch_size=2))
    assert ae.vectors == e.vectors


def test_openai_retries_5xx_then_succeeds(mock: respx.MockRouter) -> None:
    route = mock.post(f"{BASE}/embeddings").mock(
        side_effect=[
            httpx.Response(503, json={"error": {"message": "overloaded"}}),
            httpx.Response(502, text="bad gateway"),
            httpx.Response(200, json=oai_reply([[1.0, 2.0]])),
        ]
    )
    assert LLM(openai()).embed(["x"]).vectors == [[1.0, 2.0]]
    assert route.call_count == 3


def test_openai_async_retries(mock: respx.MockRouter) -> None:
    route = mock.post(f"{BASE}/embeddings").mock(
        side_effect=[httpx.Response(500), httpx.Response(200, json=oai_reply([[1.0]]))]
    )
    assert asyncio.run(LLM(openai()).aembed(["x"])).vectors == [[1.0]]
    assert route.call_count == 2


def test_openai_5xx_after_every_retry_is_a_server_error(mock: respx.MockRouter) -> None:
    route = mock.post(f"{BASE}/embeddings").respond(503)
    with pytest.raises(pk.ServerError) as info:
        LLM(openai(max_retries=2)).embed(["x"])
    assert route.call_count == 3 and info.value.attempts == 3 and info.value.status == 503


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        (401, {"error": {"message": "bad key"}}, pk.AuthenticationError),
        (404, {"error": {"message": "model not found"}}, pk.BadRequestError),
        (
            400,
            {"error": {"message": "input too long", "code": "context_length_exceeded"}},
            pk.ContextLengthError,
        ),
        (429, {"error": {"message": "quota", "code": "insufficient_quota"}}, pk.RateLimitError),
    ],
)
def test_openai_typed_errors(
    mock: respx.MockRouter, status: int, payload: dict[str, Any], error: type[Exception]
) -> None:
    route = mock.post(f"{BASE}/embeddings").respond(status, json=payload)
    with pytest.raises(error):
        LLM(openai(api_key=KEY)).embed(["x"])
    assert route.call_count == 1  # none of these is retried


def test_a_server_not_started_for_embeddings_is_not_retried(mock: respx.MockRouter) -> None:
    # what llama-cpp-python's server answers when started without --embedding true
    route = mock.post(f"{BASE}/embeddings").respond(
        500,
        json={"error": {"message": "Llama model must be created with embedding=True to call this"}},
    )
    with pytest.raises(pk.ServerError, match="--embedding true") as info:
        LLM(LlamaServerBackend(base_url=BASE)).embed(["x"])
    assert route.call_count == 1 and info.value.attempts == 1
    # and llama.cpp's llama-server
    mock.post(f"{BASE}/embeddings").respond(
        501,
        json={
            "error": {
                "code": 501,
                "message": "This server does not support embeddings. Start it with `--embeddings`",
            }
        },
    )
    with pytest.raises(pk.ServerError, match="does not serve embeddings"):
        LLM(LlamaServerBackend(base_url=BASE)).embed(["x"])


@pytest.mark.parametrize(
    "reply",
    [
        {"object": "list"},
        {"data": [{"index": 0, "embedding": "AAAA"}]},
        {"data": [{"index": 0, "embedding": []}]},
        {"data": [{"index": 0}]},
        {"data": [{"index": 0, "embedding": [[1.0, 2.0], [3.0, 4.0]]}]},
    ],
)
def test_openai_malformed_replies(mock: respx.MockRouter, reply: dict[str, Any]) -> None:
    mock.post(f"{BASE}/embeddings").respond(json=reply)
    with pytest.raises(pk.MalformedResponseError, match="not an embeddings reply"):
        LLM(openai()).embed(["x"])


def test_openai_wrong_count_and_error_in_200(mock: respx.MockRouter) -> None:
    mock.post(f"{BASE}/embeddings").respond(json=oai_reply([[1.0]]))
    with pytest.raises(pk.MalformedResponseError, match="2 embeddings asked, 1 returned"):
        LLM(openai()).embed(["a", "b"])
    mock.post(f"{BASE}/embeddings").respond(json={"error": {"message": "kaput"}})
    with pytest.raises(pk.ServerError, match="kaput"):
        LLM(openai()).embed(["a"])


def test_llama_server_mean_pools_per_token_vectors(mock: respx.MockRouter) -> None:
    per_token = {"ab": [[1.0, 2.0], [3.0, 6.0]], "c": [[2.0, 2.0]]}

    def reply(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        return httpx.Response(200, json=oai_reply([per_token[t] for t in texts]))

    mock.post(f"{BASE}/embeddings").mock(side_effect=reply)
    e = LLM(LlamaServerBackend(base_url=BASE)).embed(["ab", "c"])
    assert e.vectors == [[2.0, 4.0], [2.0, 2.0]]
    mock.post(f"{BASE}/embeddings").respond(json=oai_reply([[[1.0, 2.0], [3.0]]]))
    with pytest.raises(pk.MalformedResponseError, match="differ in length"):
        LLM(LlamaServerBackend(base_url=BASE)).embed(["ab"])


def test_llama_server_sends_one_text_per_request_after_token_vectors(
    mock: respx.MockRouter,
) -> None:
    # llama-cpp-python's server garbles the token vectors of all but a request's first text
    def per_token(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        return httpx.Response(
            200, json=oai_reply([[[float(len(t)), 0.0], [float(len(t)), 2.0]] for t in texts])
        )

    route = mock.post(f"{BASE}/embeddings").mock(side_effect=per_token)
    backend = LlamaServerBackend(base_url=BASE)
    e = LLM(backend).embed(["a", "bb", "ccc"])
    assert e.vectors == [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]
    assert [body_of(route, i)["input"] for i in range(route.call_count)] == [
        ["a", "bb", "ccc"],
        ["a"],
        ["bb"],
        ["ccc"],
    ]
    assert e.requests == 3 and e.usage.prompt_tokens == 9
    ae = asyncio.run(LLM(backend).aembed(["a", "bb"]))
    assert ae.vectors == e.vectors[:2] and route.call_count == 6
    fresh = LlamaServerBackend(base_url=BASE)
    assert asyncio.run(LLM(fresh).aembed(["a", "bb"])).vectors == e.vectors[:2]
    assert route.call_count == 9  # one batch, then one text per request


def test_vllm_embeds_through_the_openai_format(mock: respx.MockRouter) -> None:
    route = mock.post("http://127.0.0.1:8000/v1/embeddings").respond(json=oai_reply([[0.1, 0.2]]))
    e = LLM(VLLMBackend(model="intfloat/e5-small")).embed(["q"])
    assert e.vectors == [[0.1, 0.2]] and body_of(route)["model"] == "intfloat/e5-small"


def test_nan_in_a_vector_is_malformed(mock: respx.MockRouter) -> None:
    mock.post(f"{BASE}/embeddings").respond(
        content=b'{"data":[{"index":0,"embedding":[NaN, 1.0]}]}',
        headers={"content-type": "application/json"},
    )
    with pytest.raises(pk.MalformedResponseError):
        LLM(openai()).embed(["x"])


# --------------------------------------------------------------------------- Ollama


def ollama(**kw: Any) -> OllamaBackend:
    kw.setdefault("model", "llama3.2")
    kw.setdefault("base_url", "http://ollama:11434")
    kw.setdefault("retry_base_delay", 0)
    return OllamaBackend(**kw)


def test_ollama_body_and_reply(mock: respx.MockRouter) -> None:
    route = mock.post("http://ollama:11434/api/embed").respond(
        json={
            "model": "nomic-embed-text",
            "embeddings": [[0.1, 0.2], [0.3, 0.4]],
            "prompt_eval_count": 9,
        }
    )
    e = LLM(ollama(embedding_model="nomic-embed-text")).embed(["a", "b"])
    assert body_of(route) == {"model": "nomic-embed-text", "input": ["a", "b"]}
    assert e.vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert e.model == "nomic-embed-text" and e.usage.prompt_tokens == 9 and e.backend == "ollama"


def test_ollama_batches_retries_and_async(mock: respx.MockRouter) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        return httpx.Response(200, json={"embeddings": [[float(len(t))] for t in texts]})

    route = mock.post("http://ollama:11434/api/embed")
    calls: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503) if len(calls) == 1 else reply(request)

    route.mock(side_effect=flaky)
    e = LLM(ollama()).embed(["a", "bb", "ccc"], batch_size=2)
    assert [v[0] for v in e.vectors] == [1.0, 2.0, 3.0]
    assert len(calls) == 3  # one 503 retried, two batches
    assert body_of(route)["model"] == "llama3.2"
    ae = asyncio.run(LLM(ollama()).aembed(["a", "bb", "ccc"], batch_size=2))
    assert ae.vectors == e.vectors


def test_ollama_missing_embedding_model_names_it(mock: respx.MockRouter) -> None:
    mock.post("http://ollama:11434/api/embed").respond(
        404, json={"error": 'model "nomic-embed-text" not found, try pulling it first'}
    )
    with pytest.raises(pk.BadRequestError, match="ollama pull nomic-embed-text"):
        LLM(ollama(embedding_model="nomic-embed-text")).embed(["a"])


@pytest.mark.parametrize(
    "reply",
    [
        {"embeddings": "x"},
        {"embeddings": [[]]},
        {"embeddings": [["a"]]},
        {},
        {"embeddings": [[1.0], [2.0]]},
    ],
)
def test_ollama_malformed_replies(mock: respx.MockRouter, reply: dict[str, Any]) -> None:
    mock.post("http://ollama:11434/api/embed").respond(json=reply)
    with pytest.raises(pk.MalformedResponseError, match="not an embeddings reply"):
        LLM(ollama()).embed(["a"])


def test_ollama_error_in_200(mock: respx.MockRouter) -> None:
    mock.post("http://ollama:11434/api/embed").respond(json={"error": "input too long"})
    with pytest.raises(pk.ServerError, match="input too long"):
        LLM(ollama()).embed(["a"])


# --------------------------------------------------------------------------- tokenize


def test_llama_server_tokenize_finds_its_route(mock: respx.MockRouter) -> None:
    native = mock.post(f"{ROOT}/tokenize").respond(404, json={"detail": "Not Found"})
    extras = mock.post(f"{ROOT}/extras/tokenize").respond(json={"tokens": [5, 6, 7]})
    backend = LlamaServerBackend(base_url=BASE)
    assert backend.tokenize("Hello world") == [5, 6, 7]
    assert body_of(extras) == {"input": "Hello world"}
    assert backend.tokenize("again") == [5, 6, 7]
    assert native.call_count == 1 and extras.call_count == 2  # the route is remembered


def test_llama_server_native_tokenize(mock: respx.MockRouter) -> None:
    route = mock.post(f"{ROOT}/tokenize").respond(json={"tokens": [{"id": 9, "piece": "Hi"}, 10]})
    assert LlamaServerBackend(base_url=BASE).tokenize("Hi there") == [9, 10]
    assert body_of(route) == {"content": "Hi there"}


def test_tokenize_errors(mock: respx.MockRouter) -> None:
    mock.post(f"{ROOT}/tokenize").respond(404)
    mock.post(f"{ROOT}/extras/tokenize").respond(404)
    with pytest.raises(pk.BadRequestError):
        LlamaServerBackend(base_url=BASE).tokenize("x")
    mock.post(f"{ROOT}/tokenize").respond(json={"nope": 1})
    with pytest.raises(pk.MalformedResponseError, match="no tokens"):
        LlamaServerBackend(base_url=BASE).tokenize("x")


def test_server_token_counter_counts_and_caches(mock: respx.MockRouter) -> None:
    route = mock.post(f"{ROOT}/tokenize").respond(json={"tokens": [1, 2, 3, 4]})
    counter = ServerTokenCounter(BASE)
    assert counter.count("some text") == 4 and counter.count("some text") == 4
    assert route.call_count == 1
    assert repr(counter) == f"ServerTokenCounter({BASE!r})"
    backend = LlamaServerBackend(base_url=BASE)
    via_llm = LLM(backend).token_counter()
    assert isinstance(via_llm, ServerTokenCounter) and via_llm.backend is backend


def test_token_counter_choice_per_backend() -> None:
    assert LLM(openai()).token_counter() is APPROX
    official = LLM(OpenAIBackend(model="gpt-4o-mini", api_key=KEY)).token_counter()
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        assert official is APPROX
    else:
        assert isinstance(official, TiktokenCounter) and official.model == "gpt-4o-mini"
    assert LLM(ollama()).token_counter() is APPROX
    assert LLM(pk.FakeBackend()).token_counter() is APPROX
