"""The embedded default, for real: connect() with no configuration runs SmolLM2-135M-Instruct
in-process through llama-cpp-python. Every generation is short (max_tokens <= 32)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptkit._client import LLM
from promptkit._config import connect, resolve_config
from promptkit._errors import ContextLengthError, ParameterError

pytestmark = pytest.mark.integration

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def llm(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLM]:
    """connect() with no arguments, no PROMPTKIT_*/OPENAI_* variables and no config file."""
    from promptkit.backends.llamacpp import DEFAULT_MODEL_NAME, LlamaCppBackend

    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("PROMPTKIT_", "OPENAI_")):
                mp.delenv(name)
        mp.chdir(tmp_path_factory.mktemp("no-config"))
        assert resolve_config().sources["backend"] == "default"
        llm = connect()
    assert isinstance(llm.backend, LlamaCppBackend)
    assert llm.model == DEFAULT_MODEL_NAME
    assert llm.backend.model_path == gguf_path
    llm.backend.load()
    yield llm


@pytest.fixture(scope="module")
def small(gguf_path: Path) -> LLM:
    """The same model with a 256-token window (cheap to load with logits for logprobs)."""
    from promptkit.backends.llamacpp import LlamaCppBackend

    return LLM(LlamaCppBackend(model=str(gguf_path), n_ctx=256))


def greedy(llm: LLM, prompt: str = QUESTION, max_tokens: int = 16) -> str:
    return llm.complete(prompt, temperature=0, max_tokens=max_tokens).text


def test_model_loaded_once(llm: LLM) -> None:
    from promptkit.backends.llamacpp import LlamaCppBackend, loaded_models

    again = connect("llamacpp")
    assert isinstance(again.backend, LlamaCppBackend)
    assert again.backend.load() == 0.0  # already loaded by this process
    paths = [m["path"] for m in loaded_models() if m["options"].get("n_ctx") == 2048]
    assert paths.count(str(llm.backend.model_path)) == 1  # type: ignore[attr-defined]


def test_chat(llm: LLM) -> None:
    done = llm.complete(QUESTION, temperature=0, max_tokens=16)
    assert done.text.strip()
    assert done.backend == "llamacpp"
    assert done.model == "SmolLM2-135M-Instruct"
    assert done.usage.prompt_tokens and done.usage.prompt_tokens > 5
    assert done.usage.completion_tokens is not None and 0 < done.usage.completion_tokens <= 16
    assert done.params_sent["temperature"] == 0.0
    assert done.params_sent["max_tokens"] == 16
    assert done.finish_reason in ("stop", "length")


def test_chat_with_system_message(llm: LLM) -> None:
    done = llm.complete(
        [
            {"role": "system", "content": "You answer in one word."},
            {"role": "user", "content": QUESTION},
        ],
        temperature=0,
        max_tokens=8,
    )
    assert done.text.strip()


def test_completion_endpoint(llm: LLM) -> None:
    done = llm.complete_prompt("The capital of France is", temperature=0, max_tokens=8)
    assert done.text.strip()
    assert done.usage.completion_tokens is not None and done.usage.completion_tokens <= 8


def test_streaming(llm: LLM) -> None:
    stream = llm.stream("Count from 1 to 5.", temperature=0, max_tokens=16)
    pieces = list(stream)
    assert len(pieces) > 1
    assert stream.completion is not None
    assert "".join(pieces) == stream.completion.text
    assert stream.completion.finish_reason in ("stop", "length")
    # the same greedy text as a plain call
    assert stream.completion.text == greedy(llm, "Count from 1 to 5.")


def test_async_streaming_and_calls(llm: LLM) -> None:
    async def main() -> tuple[str, list[str]]:
        pieces = [p async for p in llm.astream(QUESTION, temperature=0, max_tokens=16)]
        results = await asyncio.gather(
            *(llm.acomplete(QUESTION, temperature=0, max_tokens=16) for _ in range(2))
        )
        return "".join(pieces), [r.text for r in results]

    streamed, texts = asyncio.run(main())
    expected = greedy(llm)
    assert streamed == expected
    assert texts == [expected, expected]


def test_stop_sequences(llm: LLM) -> None:
    prompt = "Count from 1 to 10, separated by commas."
    full = greedy(llm, prompt, max_tokens=32)
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]
    cut = llm.complete(prompt, temperature=0, max_tokens=32, stop=[stop])
    assert stop not in cut.text
    assert full.startswith(cut.text)
    assert cut.finish_reason == "stop"
    assert cut.params_sent["stop"] == [stop]


def test_temperature_zero_is_deterministic(llm: LLM) -> None:
    assert greedy(llm) == greedy(llm)


def test_seed_reproducible(llm: LLM) -> None:
    def sample(seed: int) -> str:
        return llm.complete("Write a word.", temperature=1.0, max_tokens=16, seed=seed).text

    first = sample(1234)
    assert sample(1234) == first
    assert any(sample(s) != first for s in (1, 2, 3))


def test_unseeded_sampling_varies(llm: LLM) -> None:
    texts = {llm.complete("Write a word.", temperature=1.0, max_tokens=16).text for _ in range(3)}
    assert len(texts) > 1


def test_max_tokens_truncates(llm: LLM) -> None:
    done = llm.complete("Write a long story about a dragon.", temperature=0, max_tokens=5)
    assert done.finish_reason == "length"
    assert done.truncated
    assert done.usage.completion_tokens == 5


def test_n_is_emulated(llm: LLM) -> None:
    done = llm.complete("Write a word.", temperature=1.0, max_tokens=8, n=3, seed=7)
    assert len(done.choices) == 3
    assert done.requests == 3
    assert [c.index for c in done.choices] == [0, 1, 2]
    again = llm.complete("Write a word.", temperature=1.0, max_tokens=8, n=3, seed=7)
    assert again.texts == done.texts  # seeds 7, 8, 9 both times


def test_top_k(llm: LLM) -> None:
    # top_k=1 leaves one candidate: sampling at any temperature is greedy
    done = llm.complete(QUESTION, temperature=1.5, top_k=1, max_tokens=16)
    assert done.params_sent["top_k"] == 1
    assert done.text == greedy(llm)


def test_other_sampling_parameters(llm: LLM) -> None:
    done = llm.complete(
        QUESTION,
        temperature=0.7,
        top_p=0.9,
        min_p=0.05,
        repetition_penalty=1.1,
        frequency_penalty=0.5,
        presence_penalty=0.5,
        max_tokens=8,
        seed=3,
    )
    assert done.text
    assert done.params_sent["repeat_penalty"] == 1.1
    assert done.renamed["repetition_penalty"] == "repeat_penalty"
    assert not done.dropped


def test_extra_parameters(llm: LLM) -> None:
    done = llm.complete(QUESTION, max_tokens=4, extra={"typical_p": 0.9}, seed=1)
    assert done.params_sent["typical_p"] == 0.9
    with pytest.raises(ParameterError, match="mirostat_mode"):
        llm.complete(QUESTION, max_tokens=4, extra={"mirostat": 2})


def test_threads(llm: LLM) -> None:
    prompts = [f"Say the number {i}." for i in range(4)]
    expected = [greedy(llm, p, max_tokens=8) for p in prompts]
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = greedy(llm, prompts[i], max_tokens=8)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert [results[i] for i in range(4)] == expected


def test_json_schema_response_format(llm: LLM) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    done = llm.complete(
        "Invent a person.",
        response_format={"name": "person", "schema": schema, "strict": True},
        temperature=0,
        max_tokens=32,
    )
    data = json.loads(done.text)
    assert isinstance(data["name"], str)
    assert isinstance(data["age"], int)


def test_logprobs(small: LLM) -> None:
    done = small.complete("Say hello.", temperature=0, max_tokens=4, top_logprobs=2)
    logprobs = done.choices[0].logprobs
    assert logprobs is not None and len(logprobs) == done.usage.completion_tokens
    first = logprobs[0]
    assert first.logprob <= 0.0
    assert len(first.top) == 2
    assert first.top[0][1] >= first.top[1][1]
    assert first.token == first.top[0][0]  # greedy: the chosen token is the most likely
    plain = small.complete_prompt("Hello", temperature=0, max_tokens=3, logprobs=True)
    assert plain.choices[0].logprobs is not None
    assert plain.renamed.get("top_logprobs") == "logprobs"


def test_context_length_error(small: LLM) -> None:
    with pytest.raises(ContextLengthError, match="context window of 256"):
        small.complete("hello " * 400, max_tokens=4)


def test_reentrant_call_fails_fast(llm: LLM) -> None:
    from promptkit._errors import BackendError

    pieces = iter(llm.stream("Count from 1 to 20.", temperature=0, max_tokens=16))
    next(pieces)
    started = time.perf_counter()
    with pytest.raises(BackendError, match="Finish or close the stream"):
        llm.complete(QUESTION, max_tokens=2)
    assert time.perf_counter() - started < 1.0
    pieces.close()  # type: ignore[attr-defined]
    assert llm.complete(QUESTION, temperature=0, max_tokens=2).text


def test_cache_prompt_option(gguf_path: Path) -> None:
    from promptkit.backends.llamacpp import LlamaCppBackend

    cached = LLM(LlamaCppBackend(model=str(gguf_path), n_ctx=256, cache_prompt=True))
    first = cached.complete(QUESTION, temperature=0, max_tokens=4)
    second = cached.complete(QUESTION + " Answer briefly.", temperature=0, max_tokens=4)
    assert first.text and second.text
