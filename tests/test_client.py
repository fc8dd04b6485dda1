"""The LLM client over the fake backend: params policy, n top-up, streaming, prompt.run."""

from __future__ import annotations

import asyncio
import warnings

import pytest

import promptkit as pk
from promptkit import LLM, FakeBackend, SamplingParams


def test_prompt_run_sends_exact_rendered_messages() -> None:
    fake = FakeBackend(["negative"])
    llm = LLM(fake)
    classify = pk.FewShot(
        instruction="Classify the sentiment.",
        examples=[pk.Example(input="I loved it", output="positive")],
    )
    done = classify.run(llm, input="It broke", params=pk.PRECISE)
    assert done.text == "negative"
    assert list(fake.requests[0].messages or []) == classify.render(input="It broke")
    assert fake.requests[0].params == {"temperature": 0.0, "top_p": 1.0}
    assert done.backend == "fake" and done.model == "fake-model"


def test_arun_and_astream() -> None:
    fake = FakeBackend(["one", "two words here"])
    llm = LLM(fake)
    p = pk.ZeroShot(instruction="Say.")

    async def go() -> tuple[str, str]:
        first = await p.arun(llm, input="x")
        pieces = [piece async for piece in p.astream(llm, input="y")]
        return first.text, "".join(pieces)

    assert asyncio.run(go()) == ("one", "two words here")


def test_prompt_params_merge_under_call_params() -> None:
    fake = FakeBackend(["a", "b"])
    llm = LLM(fake, params=SamplingParams(max_tokens=99))
    p = pk.ZeroShot(instruction="x", params=pk.CREATIVE)
    p.run(llm, input="q")
    p.run(llm, input="q", params=SamplingParams(temperature=0.1))
    assert fake.requests[0].params == {
        "max_tokens": 99,
        "temperature": 1.0,
        "top_p": 0.95,
        "presence_penalty": 0.3,
    }
    assert fake.requests[1].params["temperature"] == 0.1


def test_unsupported_params_policy() -> None:
    openai_like = ["temperature", "top_p", "max_tokens", "n", "seed"]
    # warn (default): dropped, warned, reported
    fake = FakeBackend(["x"], supports=openai_like)
    with pytest.warns(pk.UnsupportedParameterWarning, match="top_k=40 dropped"):
        done = LLM(fake).complete("hi", top_k=40, temperature=0.5)
    assert fake.requests[0].params == {"temperature": 0.5}
    assert "top_k" in done.dropped
    # drop: silent but reported
    fake = FakeBackend(["x"], supports=openai_like)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        done = LLM(fake, on_unsupported="drop").complete("hi", min_p=0.1)
    assert done.dropped == {"min_p": "the fake backend cannot honour min_p"}
    # error: nothing sent
    fake = FakeBackend(["x"], supports=openai_like)
    with pytest.raises(pk.ParameterError, match="cannot honour repetition_penalty"):
        LLM(fake, on_unsupported="error").complete("hi", repetition_penalty=1.1)
    assert fake.requests == []
    with pytest.raises(pk.ParameterError):
        LLM(fake, on_unsupported="ignore")  # type: ignore[arg-type]


def test_n_native_in_one_request() -> None:
    fake = FakeBackend(["a", "b", "c"])
    done = LLM(fake).complete("q", n=3)
    assert done.texts == ["a", "b", "c"]
    assert len(fake.requests) == 1 and fake.requests[0].params["n"] == 3
    assert [c.index for c in done.choices] == [0, 1, 2]


def test_n_topped_up_when_server_returns_fewer_choices() -> None:
    # like the llama.cpp server: takes n, returns one choice
    fake = FakeBackend(list("abcde"), max_choices=1)
    done = LLM(fake).complete("q", n=4, seed=10)
    assert done.texts[0] == "a" and sorted(done.texts) == ["a", "b", "c", "d"]
    assert done.requests == 4
    # the first request asked for n=4; the top-ups go out concurrently, one choice each,
    # with distinct seeds (or the samples would all be the same) and sample indexes
    assert fake.requests[0].params == {"n": 4, "seed": 10}
    top_ups = sorted(fake.requests[1:], key=lambda r: r.sample)
    assert [(r.params, r.sample) for r in top_ups] == [
        ({"seed": 11}, 1),
        ({"seed": 12}, 2),
        ({"seed": 13}, 3),
    ]


def test_n_emulated_with_distinct_seeds_async() -> None:
    fake = FakeBackend(list("abc"), native_n=False)
    done = asyncio.run(LLM(fake).acomplete("q", n=3, seed=7))
    assert sorted(done.texts) == ["a", "b", "c"]
    assert sorted(r.params["seed"] for r in fake.requests) == [7, 8, 9]
    assert all("n" not in r.params for r in fake.requests)


def test_usage_summed_over_requests() -> None:
    fake = FakeBackend(["aaaa", "bbbb"], max_choices=1)
    done = LLM(fake).complete("12345678", n=2)
    assert done.usage.completion_tokens == 2
    assert done.usage.prompt_tokens == 4


def test_no_choices_is_malformed() -> None:
    fake = FakeBackend(lambda req: [])
    with pytest.raises(pk.MalformedResponseError, match="no choices"):
        LLM(fake).complete("q")


def test_truncation_visible_and_optionally_an_error() -> None:
    cut = pk.Choice("The answer is", finish_reason="length")
    done = LLM(FakeBackend([cut])).complete("q", max_tokens=3)
    assert done.truncated and done.finish_reason == "length"
    with pytest.raises(pk.TruncatedError) as info:
        LLM(FakeBackend([cut]), on_truncation="error").complete("q", max_tokens=3)
    assert info.value.completion.text == "The answer is"


def test_content_filter_is_an_error() -> None:
    blocked = pk.Choice("", finish_reason="content_filter")
    with pytest.raises(pk.ContentFilteredError):
        LLM(FakeBackend([blocked])).complete("q")


def test_stream_collects_completion() -> None:
    s = LLM(FakeBackend(["streamed reply text"])).stream("q")
    assert s.completion is None
    assert "".join(s) == "streamed reply text"
    assert s.completion is not None and s.completion.text == "streamed reply text"
    with pytest.raises(pk.ParameterError, match="cannot be streamed"):
        LLM(FakeBackend(["x"])).stream("q", n=2)


def test_scripted_exception_and_running_out() -> None:
    fake = FakeBackend([pk.RateLimitError("slow down", status=429)])
    with pytest.raises(pk.RateLimitError):
        LLM(fake).complete("q")
    with pytest.raises(pk.ConfigurationError, match="ran out of scripted replies"):
        LLM(FakeBackend([])).complete("q")


def test_messages_as_dicts_validated() -> None:
    fake = FakeBackend(["ok"])
    LLM(fake).complete([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    assert [m.role for m in fake.requests[0].messages or []] == ["system", "user"]
    with pytest.raises(pk.InvalidPromptError, match="role"):
        LLM(fake).complete([{"role": "robot", "content": "x"}])


def test_complete_prompt_uses_completion_endpoint() -> None:
    fake = FakeBackend(["continued"])
    p = pk.ZeroShot(instruction="Continue.")
    done = LLM(fake).complete_prompt(p.render_text(input="Once"))
    assert done.text == "continued"
    assert fake.requests[0].messages is None
    assert (fake.requests[0].prompt or "").endswith("### Assistant:\n")


def test_prepare_request_is_the_request_complete_sends() -> None:
    fake = FakeBackend(["a", "b"], supports=["temperature", "max_tokens"])
    llm = LLM(fake, params=SamplingParams(max_tokens=7), on_unsupported="drop")
    rf = {"name": "r", "schema": {"type": "object"}, "strict": True}
    request, dropped = llm.prepare_request(
        "Hi", temperature=0.5, top_k=3, response_format=rf, timeout=3
    )
    done = llm.complete("Hi", temperature=0.5, top_k=3, response_format=rf, timeout=3)
    assert fake.requests == [request]
    assert request.params == {"max_tokens": 7, "temperature": 0.5}
    assert dropped == done.dropped == {"top_k": "the fake backend cannot honour top_k"}
    text_request, none = llm.prepare_request(prompt="Once upon", temperature=0.1)
    llm.complete_prompt("Once upon", temperature=0.1)
    assert fake.requests[1] == text_request and text_request.messages is None and none == {}
    for wrong in ({}, {"messages": "x", "prompt": "y"}):
        with pytest.raises(pk.ParameterError, match="exactly one"):
            llm.prepare_request(**wrong)
