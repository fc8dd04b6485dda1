"""Emulated ``n`` against a real llama-cpp-python server started with a fixed seed.

Each of the ``k`` requests must reach the server with its own valid seed, and that seed
must decide the sample: asking again with one of them (``n=1``) gives the same text.

llama-cpp-python's server (unlike ggml's llama-server) keeps its random state between
requests, so even without seeds its samples would differ; what is checked here is that
the ``k`` requests carry distinct seeds that the server honours.
"""

from __future__ import annotations

from typing import Any

import pytest

from promptkit._client import LLM
from promptkit._types import Request
from promptkit.backends.llama_server import LlamaServerBackend

pytestmark = pytest.mark.integration

K = 4
PARAMS: dict[str, Any] = {"temperature": 1.5, "max_tokens": 12}


class Recording(LlamaServerBackend):
    """The llama-server backend, keeping the requests it sends."""

    sent: list[Request]

    def complete(self, request: Request) -> Any:
        self.sent.append(request)
        return super().complete(request)


def _backend(url: str) -> Recording:
    backend = Recording(base_url=url)
    backend.sent = []
    return backend


@pytest.mark.parametrize("seed", [None, -1])
def test_emulated_samples_carry_distinct_seeds_the_server_honours(
    llama_seeded_server: str, seed: int | None
) -> None:
    backend = _backend(llama_seeded_server)
    with LLM(backend, max_concurrency=1) as llm:
        overrides = dict(PARAMS) if seed is None else {**PARAMS, "seed": seed}
        done = llm.complete("Write one short sentence about the sea.", n=K, **overrides)
        seeds = [r.params.get("seed") for r in backend.sent]
        assert len(done.choices) == K and done.requests == K
        assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds), seeds
        assert len(set(seeds)) == K, seeds
        texts = done.texts
        assert len(set(texts)) > 1, texts  # not one sample repeated
        # the seeds reach the server and decide the sample: the same seed twice gives the
        # same text, two of the seeds sent give two texts (the first reply after a prompt
        # change can differ in late tokens, as llama-cpp-python then evaluates the prompt
        # without its prefix cache, so the k samples themselves are not compared)
        prompt = "Write one short sentence about the sea."
        first, second = sorted(set(seeds))[:2]
        a1, a2 = (llm.complete(prompt, seed=first, **PARAMS).text for _ in range(2))
        b1, b2 = (llm.complete(prompt, seed=second, **PARAMS).text for _ in range(2))
        assert a1 == a2 and b1 == b2, (a1, a2, b1, b2)
        assert a1 != b1


def test_stream_with_usage_request_and_prompt_logprobs(llama_seeded_server: str) -> None:
    """llama-cpp-python's server takes what the backend now sends to every llama.cpp
    server: ``stream_options.include_usage`` and ``logprobs: 1`` on ``/completions``."""
    with LLM(LlamaServerBackend(base_url=llama_seeded_server)) as llm:
        stream = llm.stream("Say hi.", max_tokens=6, temperature=0)
        assert "".join(stream).strip()
        assert stream.completion is not None and stream.completion.finish_reason
        done = llm.complete_prompt("The capital of France is", max_tokens=3, logprobs=True)
        lps = done.choices[0].logprobs
        assert lps is not None and len(lps) >= 1
        assert all(t.logprob <= 0 for t in lps)
