"""vLLM as its source describes it (issue 20), against respx mocks.

vLLM 0.33's request checks: 0 < top_p <= 1, at most ``VLLM_MAX_STOP_STRINGS`` (4) stop
strings, a signed 64-bit seed, ``n`` = 1 under greedy sampling; ``guided_*`` fields
replaced by ``structured_outputs``; ``max_completion_tokens`` on chat; ``max_tokens``
defaulting to 16 on ``/completions``; ``vllm run-batch`` serving no ``/v1/completions``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import respx
from respx_helpers import body_of

import promptkit as pk
import promptkit.batch.files
from promptkit._client import LLM
from promptkit._errors import ConfigurationError, ParameterError
from promptkit.backends.vllm import VLLMBackend

BASE = "http://testserver/v1"


def chat_reply(*texts: str) -> dict[str, Any]:
    return {
        "model": "m",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def text_reply(text: str) -> dict[str, Any]:
    return {
        "model": "m",
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def chat(mock: respx.MockRouter) -> respx.Route:
    return mock.post("/chat/completions").respond(200, json=chat_reply("a", "b", "c"))


def vllm(**kw: Any) -> LLM:
    return LLM(VLLMBackend(model="m", base_url=BASE, retry_base_delay=0, **kw))


# --------------------------------------------------------------------------- structured outputs


def test_guided_fields_become_structured_outputs(chat: respx.Route) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    cases = {
        "guided_json": ("json", schema),
        "guided_regex": ("regex", "[0-9]+"),
        "guided_choice": ("choice", ["yes", "no"]),
        "guided_grammar": ("grammar", 'root ::= "a" | "b"'),
    }
    for old, (new, value) in cases.items():
        done = vllm().complete("x", extra={old: value, "min_tokens": 2})
        body = body_of(chat)
        assert old not in body, old
        assert body["structured_outputs"] == {new: value}
        assert body["min_tokens"] == 2
        assert done.renamed[old] == f"structured_outputs.{new}"
    vllm().complete("x", extra={"guided_json": schema, "guided_whitespace_pattern": r"[ ]?"})
    assert body_of(chat)["structured_outputs"] == {"json": schema, "whitespace_pattern": r"[ ]?"}


def test_guided_fields_merge_into_structured_outputs(chat: respx.Route) -> None:
    vllm().complete(
        "x", extra={"guided_regex": "a+", "structured_outputs": {"disable_fallback": True}}
    )
    assert body_of(chat)["structured_outputs"] == {"regex": "a+", "disable_fallback": True}
    with pytest.raises(ParameterError, match="structured_outputs"):
        vllm().complete("x", extra={"guided_regex": "a+", "structured_outputs": {"regex": "b"}})


def test_guided_decoding_backend_is_refused(chat: respx.Route) -> None:
    with pytest.raises(ParameterError, match="server option"):
        vllm().complete("x", extra={"guided_decoding_backend": "xgrammar"})
    assert chat.call_count == 0


def test_docstring_documents_current_forms() -> None:
    doc = VLLMBackend.__doc__ or ""
    assert "structured_outputs" in doc and "response_format" in doc
    assert "guided_json" in doc and "translated" in doc


# --------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"top_p": 0.0}, "top_p"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"seed": 2**63}, "64-bit"),
        ({"seed": -(2**63) - 1}, "64-bit"),
        ({"n": 3, "temperature": 0.0}, "greedy"),
    ],
)
def test_values_vllm_refuses_fail_before_sending(
    chat: respx.Route, overrides: dict[str, Any], match: str
) -> None:
    with pytest.raises(ParameterError, match=match):
        vllm().complete("x", **overrides)
    if "n" not in overrides:  # streams are checked too
        with pytest.raises(ParameterError, match=match):
            list(vllm().stream("x", **overrides))
    assert chat.call_count == 0


def test_precise_preset_with_n_is_refused(chat: respx.Route) -> None:
    with pytest.raises(ParameterError, match="n=3"):
        vllm().complete("x", params=pk.PRECISE, n=3)
    assert chat.call_count == 0


def test_values_vllm_takes_are_sent(chat: respx.Route) -> None:
    done = vllm().complete(
        "x", top_p=0.01, stop=["a", "b", "c", "d"], seed=2**63 - 1, n=3, temperature=0.5
    )
    body = body_of(chat)
    assert body["stop"] == ["a", "b", "c", "d"] and body["seed"] == 2**63 - 1
    assert body["n"] == 3 and len(done.choices) == 3
    vllm().complete("x", seed=-(2**63), temperature=0)
    assert body_of(chat)["seed"] == -(2**63)


def test_stop_cap_is_configurable(chat: respx.Route) -> None:
    stops = [str(i) for i in range(6)]
    vllm(max_stop_strings=8).complete("x", stop=stops)
    assert body_of(chat)["stop"] == stops
    vllm(max_stop_strings=None).complete("x", stop=stops * 2)
    with pytest.raises(ParameterError, match="at most 2"):
        vllm(max_stop_strings=2).complete("x", stop=["a", "b", "c"])
    with pytest.raises(ParameterError, match="max_stop_strings"):
        VLLMBackend(model="m", max_stop_strings=-1)


# --------------------------------------------------------------------------- max tokens


def test_chat_sends_max_completion_tokens(chat: respx.Route) -> None:
    done = vllm().complete("x", max_tokens=32)
    body = body_of(chat)
    assert body["max_completion_tokens"] == 32 and "max_tokens" not in body
    assert done.renamed.get("max_tokens") == "max_completion_tokens"


def test_completions_without_max_tokens_are_not_cut_at_16(mock: respx.MockRouter) -> None:
    route = mock.post("/completions").respond(200, json=text_reply("long reply"))
    vllm().complete_prompt("Once upon a time")
    body = body_of(route)
    assert "max_tokens" in body and body["max_tokens"] is None  # vLLM: up to the context
    vllm().complete_prompt("Once upon a time", max_tokens=50)
    assert body_of(route)["max_tokens"] == 50


# --------------------------------------------------------------------------- batch files


def test_vllm_batch_for_completions_endpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    with pytest.raises(ConfigurationError, match="run-batch"):
        pk.export_openai_batch(
            pk.ZeroShot(instruction="Answer."),
            [{"input": "hi"}],
            path,
            model="m",
            target="vllm",
            endpoint="/v1/completions",
        )
    assert not path.exists()


def test_batch_docs_use_vllm_run_batch() -> None:
    doc = promptkit.batch.files.__doc__ or ""
    assert "vllm run-batch" in doc
    assert "vllm.entrypoints.openai.run_batch" not in doc


def test_config_file_takes_the_stop_cap_and_inherited_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PROMPTKIT_BACKEND", "PROMPTKIT_MODEL", "PROMPTKIT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "promptkit.toml"
    config.write_text(
        'backend = "vllm"\nmodel = "m"\nbase_url = "http://testserver/v1"\n'
        "max_stop_strings = 8\nstream_usage = false\nretry_base_delay = 0\n"
    )
    llm = pk.connect(config_file=config)
    assert isinstance(llm.backend, VLLMBackend)
    assert llm.backend.max_stop_strings == 8 and llm.backend.stream_usage is False
