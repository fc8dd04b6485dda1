"""Ollama's native fields: generate-only keys on /api/chat, checked model options,
/api/embed options, and finish_reason when a reply has no done_reason (issue 12, part 4)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import respx
from respx_helpers import body_of

from promptkit._client import LLM
from promptkit._errors import ConfigurationError, ParameterError
from promptkit._types import Message, Request
from promptkit.backends.ollama import OPTIONS, OllamaBackend

BASE = "http://testserver:11434"


def chat_reply(text: str = "ok", **fields: Any) -> dict[str, Any]:
    return {
        "model": "llava",
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": "stop",
        **fields,
    }


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def ollama(**kw: Any) -> OllamaBackend:
    kw.setdefault("model", "llava")
    kw.setdefault("base_url", BASE)
    kw.setdefault("retry_base_delay", 0)
    return OllamaBackend(**kw)


def chat(extra: dict[str, Any], *messages: Message) -> Request:
    return Request(messages=list(messages) or [Message.user("What is this?")], extra=extra)


# --------------------------------------------------------------------------- generate-only keys


def test_images_go_with_the_last_user_message(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    ollama().complete(
        chat(
            {"images": ["aW1n"]},
            Message.user("first"),
            Message.assistant("ok"),
            Message.user("What is this?"),
        )
    )
    body = body_of(route)
    assert "images" not in body
    assert body["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "What is this?", "images": ["aW1n"]},
    ]


def test_system_becomes_a_system_message(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    done = ollama().complete(chat({"system": "Be terse."}))
    body = body_of(route)
    assert "system" not in body
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert done.params_sent["system"] == "Be terse."


def test_system_next_to_a_system_message_is_refused(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    with pytest.raises(ParameterError, match="system message already"):
        ollama().complete(chat({"system": "x"}, Message.system("y"), Message.user("z")))
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [("template", "{{ .Prompt }}"), ("suffix", "end"), ("context", [1, 2, 3]), ("raw", True)],
)
def test_generate_only_fields_on_chat_are_refused(
    mock: respx.MockRouter, key: str, value: Any
) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    with pytest.raises(ParameterError, match=rf"extra\['{key}'\] is an /api/generate field"):
        ollama().complete(chat({key: value}))
    assert route.call_count == 0


def test_images_without_a_user_message_are_refused(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    with pytest.raises(ParameterError, match="user message"):
        ollama().complete(chat({"images": ["aW1n"]}, Message.system("s")))
    assert route.call_count == 0


def test_generate_keeps_its_own_fields(mock: respx.MockRouter) -> None:
    reply = {"model": "llava", "response": "x", "done": True, "done_reason": "stop"}
    route = mock.post("/api/generate").respond(200, json=reply)
    b = ollama()
    b.complete(Request(prompt="def f(", extra={"suffix": "return x", "images": ["aW1n"]}))
    body = body_of(route)
    assert body["suffix"] == "return x" and body["images"] == ["aW1n"] and body["raw"] is True
    # raw mode applies no template: a system or template would be ignored
    for key in ("system", "template"):
        with pytest.raises(ParameterError, match="raw"):
            b.complete(Request(prompt="p", extra={key: "x"}))
    assert route.call_count == 1
    b.complete(Request(prompt="p", extra={"system": "Be terse.", "raw": False}))
    body = body_of(route)
    assert body["system"] == "Be terse." and body["raw"] is False
    with pytest.raises(ParameterError, match="raw='yes'"):
        b.complete(Request(prompt="p", extra={"raw": "yes"}))


def test_stream_cannot_be_set_through_extra(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    with pytest.raises(ParameterError, match="stream"):
        ollama().complete(chat({"stream": True}))
    assert route.call_count == 0


# --------------------------------------------------------------------------- model options


def test_documented_options_go_into_options(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    extra = {
        "num_ctx": 8192,
        "repeat_last_n": -1,
        "typical_p": 0.7,
        "num_keep": 5,
        "mirostat": 2,
        "mirostat_tau": 5.0,
        "mirostat_eta": 0.1,
        "num_thread": 2,
        "num_gpu": 0,
        "use_mmap": True,
        "keep_alive": "10m",
        "think": False,
        "options": {"num_batch": 64, "penalize_newline": False},
    }
    done = LLM(ollama()).complete("hi", temperature=0, extra=extra)
    body = body_of(route)
    assert body["keep_alive"] == "10m" and body["think"] is False
    assert body["options"] == {
        "temperature": 0,
        "num_ctx": 8192,
        "repeat_last_n": -1,
        "typical_p": 0.7,
        "num_keep": 5,
        "mirostat": 2,
        "mirostat_tau": 5.0,
        "mirostat_eta": 0.1,
        "num_thread": 2,
        "num_gpu": 0,
        "use_mmap": True,
        "num_batch": 64,
        "penalize_newline": False,
    }
    assert done.params_sent["num_ctx"] == 8192


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"num_ctx": "4096"}, r"num_ctx='4096': expected a whole number >= 1"),
        ({"num_ctx": 0}, r"num_ctx=0: expected a whole number >= 1"),
        ({"num_ctx": 4096.0}, r"num_ctx=4096.0: expected a whole number"),
        ({"typical_p": 1.5}, r"typical_p=1.5: expected a number between 0 and 1"),
        ({"mirostat": 3}, r"mirostat=3: expected a whole number between 0 and 2"),
        ({"repeat_last_n": -2}, r"repeat_last_n=-2: expected a whole number >= -1"),
        ({"use_mmap": 1}, r"use_mmap=1: expected true or false"),
        ({"mirostat_tau": float("nan")}, r"mirostat_tau=nan"),
        ({"stop": "\n"}, r"stop='\\n': expected a list of strings"),
        ({"options": {"num_thread": -1}}, r"num_thread=-1: expected a whole number >= 0"),
        ({"options": 4096}, r"extra\['options'\]=4096: expected a mapping"),
        ({"think": "maybe"}, r"think='maybe': expected true, false, 'low'"),
        ({"keep_alive": [5]}, r"keep_alive=\[5\]: expected a duration"),
        ({"top_logprobs": 50}, r"top_logprobs=50: expected a whole number between 0 and 20"),
        ({"images": "aW1n"}, r"images='aW1n': expected a list of base64"),
    ],
)
def test_bad_option_values_are_refused_by_name(
    mock: respx.MockRouter, extra: dict[str, Any], message: str
) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    with pytest.raises(ParameterError, match=message):
        ollama().complete(chat(extra))
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("key", "closest"),
    [("num_ctxx", "num_ctx"), ("typicalp", "typical_p"), ("keepalive", "keep_alive")],
)
def test_unknown_keys_name_the_closest_valid_one(
    mock: respx.MockRouter, key: str, closest: str
) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    with pytest.raises(ParameterError, match=rf"'{key}'\. Did you mean '{closest}'\?"):
        ollama().complete(chat({key: 1}))
    with pytest.raises(ParameterError, match=rf"'{key}'\. Did you mean '{closest}'\?"):
        ollama().complete(chat({"options": {key: 1}}))
    assert route.call_count == 0


@pytest.mark.parametrize("key", ["tfs_z", "num_gqa"])
def test_options_ollama_dropped_are_refused_with_the_reason(
    mock: respx.MockRouter, key: str
) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    with pytest.raises(ParameterError, match=rf"'{key}' is no longer supported \(Ollama"):
        ollama().complete(chat({key: 1.0}))
    assert route.call_count == 0


def test_every_documented_option_has_a_check() -> None:
    documented = {
        "num_keep", "seed", "num_predict", "top_k", "top_p", "min_p", "typical_p",
        "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty",
        "frequency_penalty", "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline",
        "stop", "numa", "num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram",
        "vocab_only", "use_mmap", "use_mlock", "num_thread",
    }  # fmt: skip
    assert documented == set(OPTIONS)


# --------------------------------------------------------------------------- /api/embed


def embed_reply(n: int) -> dict[str, Any]:
    return {"model": "all-minilm", "embeddings": [[0.1, 0.2]] * n, "prompt_eval_count": 3}


def test_embed_options_are_sent(mock: respx.MockRouter) -> None:
    route = mock.post("/api/embed").respond(200, json=embed_reply(2))
    b = ollama(
        embedding_model="all-minilm",
        embedding_dimensions=256,
        embedding_truncate=False,
        keep_alive="1h",
    )
    LLM(b).embed(["a", "b"])
    assert body_of(route) == {
        "model": "all-minilm",
        "input": ["a", "b"],
        "truncate": False,
        "dimensions": 256,
        "keep_alive": "1h",
    }
    asyncio.run(LLM(b).aembed(["c", "d"]))
    assert body_of(route)["dimensions"] == 256 and body_of(route)["input"] == ["c", "d"]


def test_embed_defaults_send_only_model_and_input(mock: respx.MockRouter) -> None:
    route = mock.post("/api/embed").respond(200, json=embed_reply(1))
    LLM(ollama(embedding_model="all-minilm")).embed(["a"])
    assert body_of(route) == {"model": "all-minilm", "input": ["a"]}


def test_keep_alive_goes_with_chat_and_extra_overrides_it(mock: respx.MockRouter) -> None:
    route = mock.post("/api/chat").respond(200, json=chat_reply())
    b = ollama(keep_alive=-1)
    b.complete(chat({}))
    assert body_of(route)["keep_alive"] == -1
    b.complete(chat({"keep_alive": 0}))
    assert body_of(route)["keep_alive"] == 0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("embedding_dimensions", 0, "embedding_dimensions=0"),
        ("embedding_dimensions", "256", "embedding_dimensions='256'"),
        ("embedding_truncate", "no", "embedding_truncate='no'"),
        ("keep_alive", [1], r"keep_alive=\[1\]"),
    ],
)
def test_bad_backend_options_are_refused(option: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ollama(**{option: value})


# --------------------------------------------------------------------------- finish_reason


def test_reply_without_done_reason_gives_stop_in_complete_and_stream(
    mock: respx.MockRouter,
) -> None:
    final = {"model": "llava", "message": {"role": "assistant", "content": "ok"}, "done": True}
    mock.post("/api/chat").respond(200, json=final)
    complete = LLM(ollama()).complete("hi")
    mock.post("/api/chat").respond(
        200, content=json.dumps(final) + "\n", headers={"content-type": "application/x-ndjson"}
    )
    stream = LLM(ollama()).stream("hi")
    assert list(stream) == ["ok"]
    assert stream.completion is not None
    assert complete.finish_reason == stream.completion.finish_reason == "stop"
