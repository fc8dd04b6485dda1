"""A server that refuses a feature costs one failed request, then a fallback, remembered.

Reply bodies are the servers' own: llama-cpp-python's 500 for ``response_format``
``json_schema`` (a pydantic ``literal_error`` turned into a 500), llama-server's "Only one
completion choice is allowed" for ``n``, a pydantic ``extra_forbidden`` 422, an OpenAI-style
400. Every test counts the requests and checks what the later calls send.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from pydantic import BaseModel

import promptkit as pk
from promptkit._client import LLM, UnsupportedParameterWarning
from promptkit._errors import FeatureRefusedError, ParameterError, ServerError
from promptkit.backends.openai import LlamaServerBackend, OpenAIBackend

BASE = "http://testserver/v1"

#: llama-cpp-python 0.3's server, asked for response_format {"type": "json_schema"}
LLAMA_CPP_PYTHON_JSON_SCHEMA = {
    "error": {
        "message": "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', "
        "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", "
        "'input': 'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File "
        '"llama_cpp/server/app.py", line 376, in create_chat_completion\n    POST '
        "/v1/chat/completions",
        "type": "internal_server_error",
        "param": None,
        "code": None,
    }
}
#: llama.cpp's llama-server (before it honoured n)
LLAMA_SERVER_N = {
    "error": {
        "code": 500,
        "message": "Only one completion choice is allowed",
        "type": "server_error",
    }
}


class City(BaseModel):
    name: str


def reply(text: str = '{"name": "Paris"}', n: int = 1) -> dict[str, Any]:
    return {
        "model": "m",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            for i in range(n)
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


class Server:
    """A fake server: refuses requests per ``refuse(body)`` (a Response or None), records
    every body it gets."""

    def __init__(self, refuse: Any) -> None:
        self.refuse = refuse
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        refusal = self.refuse(body)
        return refusal if refusal is not None else httpx.Response(200, json=reply())


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE) as router:
        yield router


def backend(cls: type[OpenAIBackend] = OpenAIBackend, **kw: Any) -> OpenAIBackend:
    b = cls(model="m", base_url=BASE, **kw)
    b.retry.sleep = lambda s: pytest.fail(f"a refusal was retried (slept {s}s)")

    async def asleep(s: float) -> None:
        pytest.fail(f"a refusal was retried (slept {s}s)")

    b.retry.asleep = asleep
    return b


def rf_type(body: dict[str, Any]) -> str | None:
    rf = body.get("response_format")
    return rf.get("type") if isinstance(rf, dict) else None


# --------------------------------------------------------------------------- response_format


def no_json_schema(body: dict[str, Any]) -> httpx.Response | None:
    if rf_type(body) == "json_schema":
        return httpx.Response(500, json=LLAMA_CPP_PYTHON_JSON_SCHEMA)
    return None


def test_json_schema_refused_falls_back_to_json_object_once(mock: respx.MockRouter) -> None:
    server = Server(no_json_schema)
    route = mock.post("/chat/completions").mock(side_effect=server)
    llm = LLM(backend())
    prompt = pk.ZeroShot(instruction="Name the city.")
    with pytest.warns(UnsupportedParameterWarning, match="json_object"):
        result = pk.structured_result(prompt, llm, City, input="the French capital")
    assert result.value == City(name="Paris")
    assert route.call_count == 2  # one refused, one fallback; no retry
    assert [rf_type(b) for b in server.bodies] == ["json_schema", "json_object"]
    assert server.bodies[1]["response_format"]["schema"] == City.model_json_schema()
    done = result.completions[0]
    assert "response_format" in done.dropped and "json_object" in done.dropped["response_format"]
    assert "500" in done.dropped["response_format"] and done.requests == 2
    # remembered: the next call goes straight to the fallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsupportedParameterWarning)
        again = pk.structured_result(prompt, llm, City, input="the French capital")
    assert route.call_count == 3 and rf_type(server.bodies[2]) == "json_object"
    assert "response_format" in again.completions[0].dropped
    assert llm.backend.refused.keys() == {"json_schema"}
    # per backend instance: a new one tries json_schema again
    fresh = LLM(backend())
    with pytest.warns(UnsupportedParameterWarning):
        prompt.run(fresh, output=City, input="x")
    assert [rf_type(b) for b in server.bodies[3:]] == ["json_schema", "json_object"]


def test_response_format_refused_whole_falls_back_to_instructions(
    mock: respx.MockRouter,
) -> None:
    def none_at_all(body: dict[str, Any]) -> httpx.Response | None:
        if "response_format" in body:
            return httpx.Response(
                400,
                json={"error": {"message": "response_format is not supported by this server"}},
            )
        return None

    server = Server(none_at_all)
    route = mock.post("/chat/completions").mock(side_effect=server)
    llm = LLM(backend(), on_unsupported="drop")
    prompt = pk.ZeroShot(instruction="Name the city.")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "drop": no warning
        result = pk.structured_result(prompt, llm, City, input="x")
    assert result.value.name == "Paris"
    assert [rf_type(b) for b in server.bodies] == ["json_schema", "json_object", None]
    assert route.call_count == 3 and result.completions[0].requests == 3
    # the schema still reaches the model as an instruction
    assert "JSON schema" in server.bodies[2]["messages"][0]["content"]
    prompt.run(llm, output=City, input="x")
    assert route.call_count == 4 and "response_format" not in server.bodies[3]


def test_llama_server_backend_json_object_refused(mock: respx.MockRouter) -> None:
    server = Server(
        lambda body: (
            httpx.Response(
                422,
                json={
                    "detail": [
                        {
                            "type": "extra_forbidden",
                            "loc": ["body", "response_format"],
                            "msg": "Extra inputs are not permitted",
                        }
                    ]
                },
            )
            if "response_format" in body
            else None
        )
    )
    mock.post("/chat/completions").mock(side_effect=server)
    llm = LLM(backend(LlamaServerBackend))
    with pytest.warns(UnsupportedParameterWarning, match="refused response_format"):
        assert pk.ZeroShot(instruction="x").run(llm, output=City, input="y").name == "Paris"
    assert [rf_type(b) for b in server.bodies] == ["json_object", None]


def test_on_unsupported_error_raises_after_one_request_and_remembers(
    mock: respx.MockRouter,
) -> None:
    def none_at_all(body: dict[str, Any]) -> httpx.Response | None:
        if "response_format" in body:
            return httpx.Response(400, json={"error": {"message": "response_format: unsupported"}})
        return None

    route = mock.post("/chat/completions").mock(side_effect=Server(none_at_all))
    llm = LLM(backend(LlamaServerBackend), on_unsupported="error")
    prompt = pk.ZeroShot(instruction="x")
    with pytest.raises(ParameterError, match="refused response_format"):
        prompt.run(llm, output=City, input="y")
    assert route.call_count == 1
    with pytest.raises(ParameterError, match="refused response_format"):
        prompt.run(llm, output=City, input="y")
    assert route.call_count == 1  # remembered: refused before sending


# --------------------------------------------------------------------------- n


def test_n_refused_is_emulated_and_remembered(mock: respx.MockRouter) -> None:
    def one_choice(body: dict[str, Any]) -> httpx.Response | None:
        if body.get("n", 1) != 1:
            return httpx.Response(500, json=LLAMA_SERVER_N)
        return None

    server = Server(one_choice)
    route = mock.post("/chat/completions").mock(side_effect=server)
    llm = LLM(backend())
    with pytest.warns(UnsupportedParameterWarning, match="one request per choice"):
        done = llm.complete("x", n=3, seed=7)
    assert len(done.choices) == 3
    assert route.call_count == 4 and done.requests == 4  # 1 refused + 3 emulated
    assert [b.get("n") for b in server.bodies] == [3, None, None, None]
    assert sorted(b["seed"] for b in server.bodies[1:]) == [7, 8, 9]
    assert "Only one completion choice" in done.dropped["n"]
    done = llm.complete("x", n=2)
    assert route.call_count == 6 and all("n" not in b for b in server.bodies[4:])
    assert llm.backend.native_n is False and type(llm.backend).native_n is True


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("param", "value", "status", "error"),
    [
        ("seed", 5, 400, {"error": {"message": "Unsupported parameter: 'seed'"}}),
        (
            "top_k",
            4,
            422,
            {
                "detail": [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", "top_k"],
                        "msg": "Extra inputs are not permitted",
                    }
                ]
            },
        ),
        ("logprobs", True, 500, {"error": {"message": "logprobs is not supported"}}),
    ],
)
def test_a_refused_parameter_is_dropped_per_policy(
    mock: respx.MockRouter, param: str, value: Any, status: int, error: dict[str, Any]
) -> None:
    server = Server(lambda body: httpx.Response(status, json=error) if param in body else None)
    route = mock.post("/chat/completions").mock(side_effect=server)
    llm = LLM(backend(extra_params=["top_k"]))
    kw = {param: value, "temperature": 0.5}
    if param == "logprobs":
        kw["top_logprobs"] = 2
    with pytest.warns(UnsupportedParameterWarning, match=f"{param}.*refused"):
        done = llm.complete("x", **kw)
    assert done.text and route.call_count == 2 and done.requests == 2
    assert param in done.dropped and str(status) in done.dropped[param]
    assert param not in server.bodies[1] and server.bodies[1]["temperature"] == 0.5
    assert "top_logprobs" not in server.bodies[1]
    # later calls: dropped before sending, with the server's reason
    with pytest.warns(UnsupportedParameterWarning, match="refused"):
        done = llm.complete("x", **kw)
    assert route.call_count == 3 and param not in server.bodies[2]
    assert "refused" in done.dropped[param]


def test_refused_parameter_with_on_unsupported_error(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        400, json={"error": {"message": "Unsupported parameter: 'seed'"}}
    )
    llm = LLM(backend(), on_unsupported="error")
    with pytest.raises(ParameterError, match="seed=5: the server refused seed"):
        llm.complete("x", seed=5)
    assert route.call_count == 1
    with pytest.raises(ParameterError, match="seed"):
        llm.complete("x", seed=5)
    assert route.call_count == 1


def test_async_and_stream_fall_back_too(mock: respx.MockRouter) -> None:
    server = Server(
        lambda body: (
            httpx.Response(400, json={"error": {"message": "seed: not supported"}})
            if "seed" in body
            else None
        )
    )
    mock.post("/chat/completions").mock(side_effect=server)
    llm = LLM(backend(), on_unsupported="drop")
    done = asyncio.run(llm.acomplete("x", seed=1))
    assert "seed" in done.dropped and len(server.bodies) == 2
    # a new backend: the stream meets the refusal when it opens
    llm = LLM(backend(), on_unsupported="drop")
    stream = llm.stream("x", seed=1)
    assert "".join(stream) == '{"name": "Paris"}'
    assert stream.completion is not None and "seed" in stream.completion.dropped
    assert [("seed" in b) for b in server.bodies[2:]] == [True, False]


# --------------------------------------------------------------------------- not refusals


def test_a_bad_value_is_not_a_refusal(mock: respx.MockRouter) -> None:
    # names seed, but as a value error: a plain 500, retried like any other
    route = mock.post("/chat/completions").respond(
        500,
        json={
            "error": {
                "message": "{'type': 'int_parsing', 'loc': ('body', 'seed'), 'msg': 'Input "
                "should be a valid integer'}"
            }
        },
    )
    b = OpenAIBackend(model="m", base_url=BASE, max_retries=1, retry_base_delay=0)
    with pytest.raises(ServerError):
        LLM(b).complete("x", seed=3)
    assert route.call_count == 2 and b.refused == {}


def test_a_refusal_naming_nothing_sent_is_a_plain_error(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        400, json={"error": {"message": "tools are not supported"}}
    )
    b = backend()
    with pytest.raises(pk.BadRequestError) as info:
        LLM(b).complete("x", seed=3)
    assert not isinstance(info.value, FeatureRefusedError)
    assert route.call_count == 1 and b.refused == {}


def test_concurrent_calls_refused_together_all_fall_back(mock: respx.MockRouter) -> None:
    # emulated n=3 sends 3 requests at once; all 3 are refused before any fallback is
    # recorded, so the later ones find the refusal already remembered: they fall back too
    import threading

    barrier = threading.Barrier(3, timeout=10)

    def refuse_seed(body: dict[str, Any]) -> httpx.Response | None:
        if "seed" in body:
            barrier.wait()
            return httpx.Response(400, json={"error": {"message": "seed is not supported"}})
        return None

    server = Server(refuse_seed)
    route = mock.post("/chat/completions").mock(side_effect=server)
    llm = LLM(backend(LlamaServerBackend), on_unsupported="drop")
    done = llm.complete("x", n=3, seed=1)
    assert len(done.choices) == 3 and route.call_count == 6 and done.requests == 6
    assert "seed" in done.dropped
    assert [("seed" in b) for b in server.bodies].count(True) == 3


@pytest.mark.parametrize(
    ("message", "body", "features"),
    [
        # llama-cpp-python, json_schema
        (
            LLAMA_CPP_PYTHON_JSON_SCHEMA["error"]["message"],
            {"response_format": {"type": "json_schema"}},
            ("json_schema",),
        ),
        # the same server's answer once json_object is refused too
        (
            "response_format: unsupported",
            {"response_format": {"type": "json_object"}},
            ("response_format",),
        ),
        ("Only one completion choice is allowed", {"n": 2}, ("n",)),
        ("'n' is not supported", {"n": 2, "seed": 1}, ("n",)),
        # vLLM: a combination, not a refusal of n
        ("n must be 1 when using greedy sampling, got 3.", {"n": 3}, ()),
        # OpenAI reasoning models
        ("logprobs is not supported with this model.", {"logprobs": True}, ("logprobs",)),
        ("Unsupported parameter: 'seed'", {"seed": 1, "temperature": 0}, ("seed",)),
        # renamed on the wire: repeat_penalty is promptkit's repetition_penalty
        (
            "Extra inputs are not permitted: repeat_penalty",
            {"repeat_penalty": 1.1},
            ("repetition_penalty",),
        ),
        # Ollama's options
        ("option top_k not supported", {"options": {"top_k": 3}}, ("top_k",)),
        # values, not refusals
        ("Input should be a valid integer: seed", {"seed": 1}, ()),
        ("top_p must be in (0, 1], got 0.0.", {"top_p": 0.0}, ()),
        # not refusable: the error stands
        ("Unsupported parameter: 'max_tokens'", {"max_tokens": 5}, ()),
        # tool calling, as llama-server (no --jinja), vLLM (no auto tool choice), Ollama say
        ("tools param requires --jinja flag", {"tools": [{}], "seed": 1}, ("tools",)),
        (
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
            "to be set",
            {"tools": [{}], "tool_choice": "auto"},
            ("tool_choice",),
        ),
        (
            "registry.ollama.ai/library/gemma3:270m does not support tools",
            {"tools": [{}]},
            ("tools",),
        ),
        # older vLLM: one choice refused
        ('tool_choice = "required" is not supported!', {"tools": [{}]}, ("tool_choice",)),
        # tools and another feature in one refusal: both named
        ("tools and 'n' are not supported", {"tools": [{}], "n": 2}, ("tools", "n")),
        # tools not sent: not a refusal of them
        ("tools param requires --jinja flag", {"seed": 1}, ()),
        # a refusal that names no tool
        ("'seed' is not supported", {"tools": [{}], "seed": 1}, ("seed",)),
    ],
)
def test_what_counts_as_a_refusal(
    message: str, body: dict[str, Any], features: tuple[str, ...]
) -> None:
    from promptkit.backends._http import _refused_features

    renames = {"repetition_penalty": "repeat_penalty"}
    assert _refused_features(message, json.dumps(body).encode(), renames) == features


def test_a_body_echoing_the_request_does_not_refuse_its_fields(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(
        400,
        json={
            "error": {"message": "tools are not supported"},
            "request": {"seed": 3, "top_k": 2, "response_format": {"type": "json_schema"}},
        },
    )
    b = backend(extra_params=["top_k"])
    with pytest.raises(pk.BadRequestError) as info:
        LLM(b).complete("x", seed=3, top_k=2)
    assert not isinstance(info.value, FeatureRefusedError)
    assert route.call_count == 1 and b.refused == {}


# --------------------------------------------------------------------------- tool calling

#: llama.cpp's llama-server started without --jinja, asked for tools
LLAMA_SERVER_TOOLS = {
    "error": {"code": 500, "message": "tools param requires --jinja flag", "type": "server_error"}
}


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.parametrize(
    ("status", "payload", "fix"),
    [
        (500, LLAMA_SERVER_TOOLS, "--jinja"),
        (400, {"error": "registry.ollama.ai/library/gemma3:270m does not support tools"}, "model"),
    ],
)
def test_tools_refused_cost_one_request_then_none(
    mock: respx.MockRouter, status: int, payload: dict[str, Any], fix: str
) -> None:
    server = Server(
        lambda body: httpx.Response(status, json=payload) if body.get("tools") else None
    )
    route = mock.post("/chat/completions").mock(side_effect=server)
    llm = LLM(backend())
    with pytest.raises(FeatureRefusedError) as first:
        llm.complete("What is 2 + 3?", tools=[add])
    assert route.call_count == 1  # never retried, nothing to fall back to
    assert first.value.features == ("tools",)
    assert "refused tool calling" in str(first.value) and fix in str(first.value)
    assert "tools" in llm.backend.refused
    # remembered: the next request with tools is not sent, the same error type says why
    with pytest.raises(FeatureRefusedError, match="Not sent") as again:
        llm.complete("What is 2 + 3?", tools=[add])
    assert again.value.features == ("tools",) and fix in str(again.value)
    with pytest.raises(FeatureRefusedError):
        asyncio.run(llm.acomplete("What is 2 + 3?", tools=[add]))
    with pytest.raises(FeatureRefusedError):
        list(llm.stream("What is 2 + 3?", tools=[add]))
    with pytest.raises(FeatureRefusedError):
        pk.ToolLoop("What is 2 + 3?", tools=[add]).run(llm)
    assert route.call_count == 1
    # calls without tools still go out
    assert llm.complete("hello").text and route.call_count == 2
    assert "tools" not in server.bodies[-1]


def test_tools_refused_in_a_stream_and_async_too(mock: respx.MockRouter) -> None:
    route = mock.post("/chat/completions").respond(500, json=LLAMA_SERVER_TOOLS)
    llm = LLM(backend())
    with pytest.raises(FeatureRefusedError):
        asyncio.run(llm.acomplete("x", tools=[add]))
    assert route.call_count == 1
    fresh = LLM(backend())
    with pytest.raises(FeatureRefusedError):
        list(fresh.stream("x", tools=[add]))
    assert route.call_count == 2 and "tools" in fresh.backend.refused


VLLM_AUTO_CHOICE = {
    "object": "error",
    "message": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
    "to be set",
    "type": "BadRequestError",
    "code": 400,
}


def test_a_refused_tool_choice_blocks_only_that_choice(mock: respx.MockRouter) -> None:
    # vLLM without --enable-auto-tool-choice: "auto" (also what no tool_choice means) is
    # refused; "required" and a named tool go through guided decoding and work
    def refuse_auto(body: dict[str, Any]) -> httpx.Response | None:
        if body.get("tools") and body.get("tool_choice") in (None, "auto"):
            return httpx.Response(400, json=VLLM_AUTO_CHOICE)
        return None

    server = Server(refuse_auto)
    route = mock.post("/chat/completions").mock(side_effect=server)
    llm = LLM(backend())
    with pytest.raises(FeatureRefusedError) as first:
        llm.complete("What is 2 + 3?", tools=[add])
    assert route.call_count == 1 and first.value.features == ("tool_choice",)
    assert "--tool-call-parser" in str(first.value) and "required" in str(first.value)
    assert set(llm.backend.refused) == {"tool_choice=auto"}
    # no choice and "auto" are the same refused choice: not sent again
    for choice in (None, "auto"):
        with pytest.raises(FeatureRefusedError, match="Not sent") as again:
            llm.complete("What is 2 + 3?", tools=[add], tool_choice=choice)
        assert again.value.features == ("tool_choice",)
    assert route.call_count == 1
    # the choices the server does take still go out
    assert llm.complete("x", tools=[add], tool_choice="required").text == '{"name": "Paris"}'
    assert llm.complete("x", tools=[add], tool_choice="add").text
    assert route.call_count == 3
    assert [b.get("tool_choice") for b in server.bodies[1:]] == [
        "required",
        {"type": "function", "function": {"name": "add"}},
    ]


def test_tools_and_another_feature_refused_together_cost_one_request(
    mock: respx.MockRouter,
) -> None:
    route = mock.post("/chat/completions").respond(
        400, json={"error": {"message": "tools and 'n' are not supported"}}
    )
    llm = LLM(backend())
    with pytest.raises(FeatureRefusedError) as info:
        llm.complete("x", tools=[add], n=2)
    assert route.call_count == 1 and set(info.value.features) == {"tools", "n"}
    assert "tools" in llm.backend.refused
