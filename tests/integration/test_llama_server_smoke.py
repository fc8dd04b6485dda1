"""Proves the ``llama_server`` fixture: a real llama-cpp-python server answers, via httpx."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_models_endpoint(llama_server: str) -> None:
    reply = httpx.get(f"{llama_server}/models", timeout=10)
    assert reply.status_code == 200
    assert reply.json()["data"], reply.text


def test_chat_completion(llama_server: str) -> None:
    reply = httpx.post(
        f"{llama_server}/chat/completions",
        json={
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 8,
            "temperature": 0,
        },
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    choice = body["choices"][0]
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    assert body["usage"]["completion_tokens"] <= 8
