"""The openai-sdk backend against a real llama.cpp server (llama-cpp-python,
SmolLM2-135M-Instruct): a user's ``openai.OpenAI`` / ``AsyncOpenAI`` client carries the
requests, and the replies read the same as the built-in httpx backend's."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

import promptkit as pk
from promptkit._client import LLM
from promptkit._errors import BadRequestError
from promptkit.backends.openai import OpenAIBackend
from promptkit.strategies import SelfConsistency, structured_result

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.integration

GREEDY = {"max_tokens": 12, "temperature": 0.0, "seed": 1}


def clients(base_url: str) -> tuple[object, object]:
    return (
        openai.OpenAI(base_url=base_url, api_key="none"),
        openai.AsyncOpenAI(base_url=base_url, api_key="none"),
    )


def test_same_completion_as_the_httpx_backend(llama_server: str) -> None:
    sync, aio = clients(llama_server)
    sdk = pk.connect(client=sync, async_client=aio)
    raw = LLM(OpenAIBackend(base_url=llama_server))
    got = sdk.complete("Name a colour.", **GREEDY)
    want = raw.complete("Name a colour.", **GREEDY)
    assert got.text and got.text == want.text
    assert got.usage == want.usage and got.finish_reason == want.finish_reason
    assert got.params_sent == want.params_sent and got.backend == "openai-sdk"
    assert asyncio.run(sdk.acomplete("Name a colour.", **GREEDY)).text == want.text


def test_streaming_sync_and_async(llama_server: str) -> None:
    sync, aio = clients(llama_server)
    llm = pk.connect(client=sync, async_client=aio)
    whole = llm.complete("Count: one, two,", **GREEDY).text
    stream = llm.stream("Count: one, two,", **GREEDY)
    assert "".join(stream) == whole
    assert stream.completion is not None and stream.completion.finish_reason in ("stop", "length")

    async def go() -> str:
        return "".join([p async for p in llm.astream("Count: one, two,", **GREEDY)])

    assert asyncio.run(go()) == whole


def test_completions_endpoint_with_logprobs(llama_server: str) -> None:
    llm = pk.connect(client=clients(llama_server)[0])
    done = llm.complete_prompt("The capital of France is", max_tokens=3, top_logprobs=2)
    assert done.text
    logprobs = done.choices[0].logprobs
    assert logprobs is not None and len(logprobs) >= 1
    assert all(lp.logprob <= 0 for lp in logprobs)


def test_n_is_topped_up_and_strategies_run(llama_server: str) -> None:
    llm = pk.connect(client=clients(llama_server)[0])
    done = llm.complete("Say a word.", n=2, max_tokens=4, temperature=0.9, seed=5)
    assert len(done.choices) == 2 and done.requests >= 1
    cot = pk.ChainOfThought(
        instruction="Answer the arithmetic question.",
        params=pk.SamplingParams(max_tokens=16, temperature=0.9),
    )
    vote = SelfConsistency(cot, k=3, seed=2).run(llm, input="What is 1 + 1?")
    assert len(vote.samples) == 3


class Colour(BaseModel):
    name: str
    warm: bool


def test_json_schema_output_is_sent_as_the_httpx_backend_sends_it(llama_server: str) -> None:
    """llama-cpp-python's server takes only ``{"type": "json_object", "schema": ...}`` (the
    llama-server backend sends that); to the OpenAI-style ``json_schema`` it answers 500 by
    name, so both OpenAI backends fall back alike: one refused request, then json_object with
    the schema, remembered by the backend and reported in ``dropped``."""
    prompt = pk.ZeroShot(
        instruction="Name a colour and say whether it is warm.",
        params=pk.SamplingParams(max_tokens=40, temperature=0),
    )
    outcomes = []
    for llm in (
        pk.connect(client=clients(llama_server)[0], max_retries=0),
        LLM(OpenAIBackend(base_url=llama_server, max_retries=0)),
    ):
        result = structured_result(prompt, llm, Colour, output_mode="json_schema", input="red")
        first = result.completions[0]
        assert "json_schema" in llm.backend.refused
        assert "response_format" in first.dropped and first.requests == 2
        outcomes.append(result.value)
    assert outcomes[0] == outcomes[1]


def test_a_wrong_path_is_a_typed_error_after_one_request(llama_server: str) -> None:
    llm = pk.connect(client=openai.OpenAI(base_url=llama_server + "/nope", api_key="none"))
    with pytest.raises(BadRequestError) as info:
        llm.complete("Hi", max_tokens=2)
    assert info.value.status == 404 and info.value.attempts == 1
