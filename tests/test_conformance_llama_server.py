"""llama.cpp's server as its source describes it (issue 20), against respx mocks.

Reply shapes follow llama.cpp's ``tools/server`` code: ``/v1/completions`` logprobs in the
``{"content": [{token, logprob, top_logprobs}]}`` form (``prob``/``top_probs`` with
``post_sampling_probs``), older servers' ``error: {...}`` SSE line, usage in streams only
with ``stream_options.include_usage``. Also the seeds of emulated ``n``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from respx_helpers import body_of

import promptkit as pk
from promptkit._client import LLM
from promptkit._errors import ServerError
from promptkit.backends._http import SSEDecoder
from promptkit.backends.llama_server import LlamaServerBackend
from promptkit.backends.openai import OpenAIBackend

BASE = "http://testserver/v1"
SSE = {"content-type": "text/event-stream"}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def llama(**kw: Any) -> LlamaServerBackend:
    kw.setdefault("base_url", BASE)
    kw.setdefault("retry_base_delay", 0)
    return LlamaServerBackend(**kw)


def token(text: str, value: float, top: list[tuple[str, float]], *, probs: bool = False) -> dict:
    """One ``completion_token_output`` as llama.cpp's server writes it (``logprob`` and
    ``top_logprobs``, or ``prob`` and ``top_probs`` with ``post_sampling_probs``)."""
    key, tops = ("prob", "top_probs") if probs else ("logprob", "top_logprobs")
    return {
        "id": 1,
        "token": text,
        "bytes": list(text.encode()),
        key: value,
        tops: [{"id": 2, "token": t, "bytes": list(t.encode()), key: v} for t, v in top],
    }


def text_reply(text: str, logprobs: Any = None) -> dict[str, Any]:
    return {
        "choices": [{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": "stop"}],
        "created": 1,
        "model": "gpt-3.5-turbo",
        "system_fingerprint": "b5000-abc",
        "object": "text_completion",
        "usage": {"completion_tokens": 2, "prompt_tokens": 3, "total_tokens": 5},
        "id": "chatcmpl-1",
    }


def chat_reply(text: str, logprobs: Any = None) -> dict[str, Any]:
    return {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": logprobs,
                "finish_reason": "stop",
            }
        ],
        "model": "m",
        "object": "chat.completion",
        "usage": {"completion_tokens": 2, "prompt_tokens": 3, "total_tokens": 5},
    }


# --------------------------------------------------------------------------- logprobs


def test_completions_logprobs_in_content_form(mock: respx.MockRouter) -> None:
    content = [
        token(" Paris", -0.1, [(" Paris", -0.1), (" Lyon", -2.5)]),
        token(".", -0.3, [(".", -0.3)]),
    ]
    mock.post("/completions").respond(200, json=text_reply(" Paris.", {"content": content}))
    done = LLM(llama()).complete_prompt("Capital of France:", logprobs=True, top_logprobs=2)
    lps = done.choices[0].logprobs
    assert lps is not None
    assert [t.token for t in lps] == [" Paris", "."]
    assert [t.logprob for t in lps] == [-0.1, -0.3]
    assert lps[0].top == ((" Paris", -0.1), (" Lyon", -2.5))


def test_openai_completions_logprobs_form_still_read(mock: respx.MockRouter) -> None:
    legacy = {"tokens": [" a"], "token_logprobs": [-0.5], "top_logprobs": [{" a": -0.5}]}
    mock.post("/completions").respond(200, json=text_reply(" a", legacy))
    lps = LLM(llama()).complete_prompt("x", logprobs=True).choices[0].logprobs
    assert lps is not None and lps[0].token == " a" and lps[0].top == ((" a", -0.5),)


@pytest.mark.parametrize("chat", [False, True])
def test_post_sampling_probs_are_read_as_logprobs(mock: respx.MockRouter, chat: bool) -> None:
    content = [
        token("yes", 0.75, [("yes", 0.75), ("no", 0.25)], probs=True),
        token("!", 0.0, [], probs=True),
    ]
    if chat:
        mock.post("/chat/completions").respond(200, json=chat_reply("yes!", {"content": content}))
        done = LLM(llama()).complete(
            "?", logprobs=True, top_logprobs=2, extra={"post_sampling_probs": True}
        )
    else:
        mock.post("/completions").respond(200, json=text_reply("yes!", {"content": content}))
        done = LLM(llama()).complete_prompt(
            "?", logprobs=True, top_logprobs=2, extra={"post_sampling_probs": True}
        )
    lps = done.choices[0].logprobs
    assert lps is not None
    assert lps[0].token == "yes" and lps[0].logprob == pytest.approx(math.log(0.75))
    assert lps[0].top == (
        ("yes", pytest.approx(math.log(0.75))),
        ("no", pytest.approx(math.log(0.25))),
    )
    assert lps[1].logprob == -math.inf  # probability 0


def test_logprobs_without_top_asks_llama_server_for_one(mock: respx.MockRouter) -> None:
    route = mock.post("/completions").respond(200, json=text_reply("x"))
    LLM(llama()).complete_prompt("p", logprobs=True)
    assert body_of(route)["logprobs"] == 1  # llama.cpp reads 0 as "no probabilities"
    LLM(llama()).complete_prompt("p", logprobs=True, top_logprobs=3)
    assert body_of(route)["logprobs"] == 3
    # OpenAI's legacy endpoint reads 0 as "the chosen tokens": unchanged there
    LLM(OpenAIBackend(model="m", base_url=BASE)).complete_prompt("p", logprobs=True)
    assert body_of(route)["logprobs"] == 0


# --------------------------------------------------------------------------- streams


def _old_server_error_stream() -> bytes:
    first = {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
    error = {
        "code": 500,
        "message": "llama_decode failed: KV cache is full",
        "type": "server_error",
    }
    return (f"data: {json.dumps(first)}\n\nerror: {json.dumps(error)}\n\ndata: [DONE]\n\n").encode()


def test_sse_error_line_raises(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(200, content=_old_server_error_stream(), headers=SSE)
    stream = LLM(llama()).stream("hi")
    with pytest.raises(ServerError, match="KV cache is full"):
        list(stream)


def test_sse_error_line_raises_async(mock: respx.MockRouter) -> None:
    mock.post("/chat/completions").respond(200, content=_old_server_error_stream(), headers=SSE)

    async def run() -> None:
        async for _ in LLM(llama()).astream("hi"):
            pass

    with pytest.raises(ServerError, match="KV cache is full"):
        asyncio.run(run())


def test_sse_decoder_error_forms() -> None:
    sse = SSEDecoder()
    assert sse.feed('error: {"message": "boom"}') is None
    assert json.loads(sse.feed("") or "") == {"error": {"message": "boom"}}
    assert sse.feed("error: not json") is None
    assert json.loads(sse.flush() or "") == {"error": {"message": "not json"}}
    assert sse.feed("event: error") is None and sse.feed('data: {"message": "x"}') is None
    assert json.loads(sse.feed("") or "") == {"error": {"message": "x"}}
    # an ordinary event afterwards is not an error
    assert sse.feed('data: {"a": 1}') is None and sse.feed("") == '{"a": 1}'


def test_stream_asks_for_usage(mock: respx.MockRouter) -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}},
    ]
    content = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    route = mock.post("/chat/completions").respond(200, content=content.encode(), headers=SSE)
    stream = LLM(llama()).stream("hi")
    assert "".join(stream) == "Hi"
    assert body_of(route)["stream_options"] == {"include_usage": True}
    assert stream.completion is not None
    assert stream.completion.usage == pk.Usage(4, 1, 5)


# --------------------------------------------------------------------------- emulated n seeds


def _echo_seed(route_body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=chat_reply(f"sample with seed {route_body.get('seed')}"))


def _seeds(route: respx.Route) -> list[Any]:
    return [body_of(route, i).get("seed", "absent") for i in range(route.call_count)]


def test_emulated_n_without_seed_sends_distinct_valid_seeds(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=lambda request: _echo_seed(json.loads(request.content))
    )
    done = LLM(llama()).complete("pick", n=4, temperature=0.8)
    seeds = _seeds(route)
    assert all(isinstance(s, int) for s in seeds), seeds
    assert len(set(seeds)) == 4
    assert sorted(seeds) == list(range(min(seeds), min(seeds) + 4))
    assert all(0 <= s < 2**31 for s in seeds)  # valid on llama.cpp (uint32, not 0xFFFFFFFF)
    assert len(set(done.texts)) == 4
    # a second call draws another base
    LLM(llama()).complete("pick", n=4, temperature=0.8)
    assert set(_seeds(route)[4:]) != set(seeds)


@pytest.mark.parametrize("seed", [-1, -7])
def test_emulated_n_with_negative_seed_gets_a_random_base(
    mock: respx.MockRouter, seed: int
) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=lambda request: _echo_seed(json.loads(request.content))
    )
    asyncio.run(LLM(llama()).acomplete("pick", n=3, seed=seed))
    seeds = _seeds(route)
    assert len(set(seeds)) == 3 and all(0 <= s < 2**31 for s in seeds), seeds
    assert sorted(seeds) != [seed, seed + 1, seed + 2]  # not counted up from the marker


def test_emulated_n_with_user_seed_counts_up(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=lambda request: _echo_seed(json.loads(request.content))
    )
    LLM(llama()).complete("pick", n=3, seed=100)
    assert sorted(_seeds(route)) == [100, 101, 102]


def test_top_up_requests_get_distinct_seeds(mock: respx.MockRouter) -> None:
    # a compatible server that takes n but returns one choice: the top-ups carry seeds
    route = mock.post("/chat/completions").mock(
        side_effect=lambda request: _echo_seed(json.loads(request.content))
    )
    done = LLM(OpenAIBackend(model="m", base_url=BASE)).complete("pick", n=3)
    assert route.call_count == 3 and len(done.choices) == 3
    first, *top_ups = _seeds(route)
    assert first == "absent" and body_of(route, 0)["n"] == 3
    assert len(set(top_ups)) == 2 and all(isinstance(s, int) and s >= 0 for s in top_ups)


def test_random_seeds_keep_the_cache_working(mock: respx.MockRouter, tmp_path: Path) -> None:
    route = mock.post("/chat/completions").mock(
        side_effect=lambda request: _echo_seed(json.loads(request.content))
    )
    llm = LLM(llama(), cache=pk.Cache(tmp_path / "c.sqlite"))
    first = llm.complete("pick", n=3, temperature=0.8)
    again = llm.complete("pick", n=3, temperature=0.8)
    assert route.call_count == 3
    assert again.cached and again.texts == first.texts
