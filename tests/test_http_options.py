"""One HTTPOptions object behind every HTTP backend's transport keywords (issue 13)."""

from __future__ import annotations

import dataclasses

import pytest

import promptkit as pk
from promptkit._config import _constructor_options
from promptkit._secret import Secret
from promptkit.backends._http import Body, HTTPOptions
from promptkit.backends.llama_server import LlamaServerBackend
from promptkit.backends.ollama import OllamaBackend
from promptkit.backends.openai import OpenAIBackend
from promptkit.backends.vllm import VLLMBackend

TRANSPORT = {
    "timeout",
    "max_retries",
    "headers",
    "retry_base_delay",
    "retry_max_delay",
    "retry_after_max",
    "retry_total_timeout",
}


@pytest.mark.parametrize(
    "name", ["openai", "llama-server", "vllm", "ollama", "openai-sdk", "azure"]
)
def test_every_http_backend_still_names_the_transport_options(name: str) -> None:
    # promptkit.toml keys are checked against the constructors' signatures
    assert _constructor_options(name) >= TRANSPORT


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: OpenAIBackend(base_url="http://127.0.0.1:9/v1", **kw),
        lambda **kw: LlamaServerBackend(**kw),
        lambda **kw: VLLMBackend(base_url="http://127.0.0.1:9/v1", **kw),
        lambda **kw: OllamaBackend(model="m", **kw),
    ],
)
def test_keywords_land_in_one_options_object(make: object) -> None:
    backend = make(  # type: ignore[operator]
        api_key="sk-secret-value-123",
        timeout=5,
        max_retries=1,
        headers={"X-Team": "a"},
        retry_after_max=9,
    )
    http = backend.http
    assert isinstance(http, HTTPOptions)
    assert (http.timeout, http.max_retries, http.retry_after_max) == (5.0, 1, 9)
    assert http.api_key == Secret("sk-secret-value-123")
    assert "sk-secret" not in repr(http)
    assert backend.retry.max_retries == 1 and backend.retry.retry_after_max == 9
    assert backend._headers["X-Team"] == "a"
    with pytest.raises(dataclasses.FrozenInstanceError):
        http.timeout = 1  # type: ignore[misc]


def test_options_are_validated_with_the_same_errors() -> None:
    with pytest.raises(pk.ConfigurationError, match="timeout=0"):
        OpenAIBackend(base_url="http://127.0.0.1:9/v1", timeout=0)
    with pytest.raises(pk.ConfigurationError, match="not an http"):
        OllamaBackend(model="m", base_url="localhost:11434")
    with pytest.raises(pk.ConfigurationError, match="Authorization"):
        LlamaServerBackend(headers={"authorization": "Bearer x"})
    with pytest.raises(pk.ConfigurationError, match="did you mean 'max_retries'"):
        LlamaServerBackend(max_retry=2)


def test_connect_passes_transport_options_through() -> None:
    llm = pk.connect("llama-server", base_url="http://127.0.0.1:9/v1", timeout=3, max_retries=0)
    assert llm.backend.http.timeout == 3.0  # type: ignore[attr-defined]
    assert llm.backend.retry.max_retries == 0  # type: ignore[attr-defined]


def test_body_is_a_named_type() -> None:
    backend = VLLMBackend(model="m", base_url="http://127.0.0.1:9/v1")
    request, _ = pk.LLM(backend).prepare_request("Hi", temperature=0.5, repetition_penalty=1.1)
    body = backend._body(request, False)
    assert isinstance(body, Body)
    assert body.chat and body.url.path.endswith("/chat/completions")
    assert body.sent["temperature"] == 0.5 and b'"temperature":0.5' in body.content
