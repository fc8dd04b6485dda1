"""Strategies against a real llama.cpp server (llama-cpp-python, SmolLM2-135M-Instruct).

The server returns one choice per request whatever ``n`` says, so self-consistency must
top up (or send one request per sample) to vote on k samples. Generations are kept tiny.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from pydantic import BaseModel

import promptkit as pk
from promptkit._client import LLM
from promptkit.backends.openai import OpenAIBackend
from promptkit.strategies import SelfConsistency, extract, structured_result

pytestmark = pytest.mark.integration

SMALL = pk.SamplingParams(max_tokens=24, temperature=0.9)
COT = pk.ChainOfThought(instruction="Answer the arithmetic question.", params=SMALL)


def test_self_consistency_k_samples_from_a_server_without_n(llama_server: str) -> None:
    llm = pk.connect("llama-server", base_url=llama_server)
    vote = SelfConsistency(COT, k=4, seed=11).run(llm, input="What is 2 + 3?")
    assert len(vote.samples) == 4 and vote.k == 4
    assert vote.requests == 4  # one request per sample, concurrently
    assert sum(vote.counts.values()) == 4
    assert vote.usage.completion_tokens is not None and vote.usage.completion_tokens > 0
    assert 0.0 <= vote.agreement <= 1.0
    # seeds were distinct, so the samples are not all the same text
    assert len({s.text for s in vote.samples}) > 1


def test_self_consistency_tops_up_when_n_is_ignored(llama_server: str) -> None:
    """An OpenAI-style client sends n=k; the server answers with one choice; the client
    tops up until k samples are there."""
    llm = LLM(OpenAIBackend(base_url=llama_server))
    sc = SelfConsistency(COT, k=3, extract=extract.number(), seed=3)
    vote = asyncio.run(sc.arun(llm, input="What is 4 + 4?"))
    assert len(vote.samples) == 3
    assert vote.requests >= 2  # the first request gave fewer than 3 choices
    assert sum(vote.counts.values()) == 3


class Sentiment(BaseModel):
    label: Literal["positive", "negative"]
    stars: int


def test_structured_output_with_a_json_schema(llama_server: str) -> None:
    llm = pk.connect("llama-server", base_url=llama_server)
    prompt = pk.ZeroShot(
        instruction="Classify the review's sentiment and give it 1 to 5 stars.",
        params=pk.SamplingParams(max_tokens=48, temperature=0),
    )
    result = structured_result(
        prompt, llm, Sentiment, output_mode="json_schema", input="Wonderful, I love it!"
    )
    assert isinstance(result.value, Sentiment)
    assert result.value.label in ("positive", "negative")
    assert result.usage.total_tokens is not None and result.usage.total_tokens > 0
    # the schema constrained the reply: it is the JSON object itself
    assert result.text.strip().startswith("{")
