"""A real server that refuses a feature: llama-cpp-python's server, reached through the
generic ``openai`` backend, answers ``response_format: {"type": "json_schema"}`` with a 500
("Input should be 'text' or 'json_object'"). One refused request, then the fallback
(``json_object`` with the schema, which that server takes), remembered for later calls.
Every request on the wire is recorded with an httpx event hook.
"""

from __future__ import annotations

import json
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel

import promptkit as pk
from promptkit._client import UnsupportedParameterWarning
from promptkit.backends._http import HTTPBackend

pytestmark = pytest.mark.integration


class Sentiment(BaseModel):
    label: Literal["positive", "negative"]
    stars: int


def _record(backend: HTTPBackend) -> list[dict[str, object]]:
    """The JSON bodies of every request the backend sends from now on."""
    sent: list[dict[str, object]] = []

    def hook(request: httpx.Request) -> None:
        sent.append(json.loads(request.content))

    backend._sync_client().event_hooks["request"].append(hook)
    return sent


def _rf_type(body: dict[str, object]) -> object:
    rf = body.get("response_format")
    return rf.get("type") if isinstance(rf, dict) else None


def test_json_schema_refused_once_then_json_object_remembered(llama_server: str) -> None:
    llm = pk.connect("openai", base_url=llama_server)
    backend = llm.backend
    assert isinstance(backend, HTTPBackend)
    sent = _record(backend)
    prompt = pk.ZeroShot(
        instruction="Classify the review's sentiment and give it 1 to 5 stars.",
        params=pk.SamplingParams(max_tokens=48, temperature=0),
    )
    with pytest.warns(UnsupportedParameterWarning, match="refused json_schema"):
        result = pk.structured_result(
            prompt, llm, Sentiment, input="Wonderful product, I love it!", max_attempts=1
        )
    assert isinstance(result.value, Sentiment)
    # one refused request (no retry), then the fallback
    assert [_rf_type(b) for b in sent] == ["json_schema", "json_object"]
    done = result.completions[0]
    assert done.requests == 2 and "json_object" in done.dropped["response_format"]
    assert "Input should be 'text' or 'json_object'" in done.dropped["response_format"]
    # the second call sends no json_schema: one request, straight to the fallback
    with pytest.warns(UnsupportedParameterWarning):
        prompt.run(llm, output=Sentiment, input="Broke after a day. Awful.", max_attempts=1)
    assert [_rf_type(b) for b in sent] == ["json_schema", "json_object", "json_object"]
