"""OpenAI Batch API files: export (line format, wire names, dropped parameters) and import
(alignment by custom_id, typed failures, missing ids), for OpenAI's and vLLM's outputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

import promptkit as pk
from promptkit._client import UnsupportedParameterWarning
from promptkit.batchfiles import export_openai_batch, import_openai_batch_results

PROMPT = pk.FewShot(
    instruction="Classify the sentiment.",
    examples=[pk.Example(input="I loved it", output="positive")],
)
INPUTS = [{"input": "Great"}, {"input": "Awful"}, {"input": "Fine"}]


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- export


def test_export_writes_one_openai_request_per_input(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    params = pk.SamplingParams(temperature=0, max_tokens=5, seed=7, stop="\n", extra={"user": "u"})
    assert export_openai_batch(PROMPT, INPUTS, path, model="gpt-4o-mini", params=params) == 3
    lines = read(path)
    assert [line["custom_id"] for line in lines] == ["req-0", "req-1", "req-2"]
    first = lines[0]
    assert set(first) == {"custom_id", "method", "url", "body"}
    assert first["method"] == "POST" and first["url"] == "/v1/chat/completions"
    body = first["body"]
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [m.to_dict() for m in PROMPT.render(input="Great")]
    # OpenAI's wire names, the extras as given
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body
    assert (body["temperature"], body["seed"], body["stop"], body["user"]) == (0.0, 7, ["\n"], "u")
    assert not list(tmp_path.glob("*.tmp"))


def test_export_drops_what_openai_does_not_take(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    params = pk.SamplingParams(temperature=0.5, top_k=40, min_p=0.1)
    with pytest.warns(UnsupportedParameterWarning, match="min_p, top_k dropped") as caught:
        export_openai_batch(PROMPT, INPUTS, path, model="gpt-4o-mini", params=params)
    assert len(caught) == 1  # once, not once per input
    body = read(path)[0]["body"]
    assert "top_k" not in body and "min_p" not in body and body["temperature"] == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_openai_batch(PROMPT, INPUTS, path, model="m", params=params, on_unsupported="drop")
    with pytest.raises(pk.ParameterError, match=r"top_k|min_p"):
        export_openai_batch(PROMPT, INPUTS, path, model="m", params=params, on_unsupported="error")


def test_export_for_vllm_keeps_its_sampling_extras(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    params = pk.SamplingParams(max_tokens=8, top_k=40, min_p=0.1, repetition_penalty=1.1, n=2)
    export_openai_batch(
        PROMPT, INPUTS, path, model="Qwen/Qwen2.5-1.5B-Instruct", params=params, target="vllm"
    )
    body = read(path)[0]["body"]
    assert body["model"] == "Qwen/Qwen2.5-1.5B-Instruct"
    # vLLM takes max_tokens on chat as max_completion_tokens
    assert (body["max_completion_tokens"], body["top_k"], body["min_p"]) == (8, 40, 0.1)
    assert body["repetition_penalty"] == 1.1 and body["n"] == 2


def test_export_prompt_params_completions_endpoint_and_response_format(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    prompt = pk.ZeroShot(instruction="Answer.", params=pk.SamplingParams(temperature=0.3))
    export_openai_batch(
        prompt, [{"input": "hi"}], path, model="gpt-3.5-turbo-instruct",
        endpoint="/v1/completions", id_prefix="job7",
    )  # fmt: skip
    line = read(path)[0]
    assert line["custom_id"] == "job7-0" and line["url"] == "/v1/completions"
    assert line["body"]["prompt"] == prompt.render_text(input="hi")
    assert line["body"]["temperature"] == 0.3
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    export_openai_batch(
        prompt, [{"input": "hi"}], path, model="gpt-4o-mini",
        response_format={"name": "label", "schema": schema, "strict": True},
    )  # fmt: skip
    rf = read(path)[0]["body"]["response_format"]
    assert rf == {
        "type": "json_schema",
        "json_schema": {"name": "label", "schema": schema, "strict": True},
    }


def test_export_input_errors(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    with pytest.raises(pk.InputValidationError, match="Input 1 cannot be rendered"):
        export_openai_batch(PROMPT, [{"input": "a"}, {"inptu": "b"}], path, model="m")
    assert not path.exists() and not list(tmp_path.iterdir())  # no partial file left
    with pytest.raises(pk.InputValidationError, match="not a mapping"):
        export_openai_batch(PROMPT, ["text"], path, model="m")  # type: ignore[list-item]
    with pytest.raises(pk.InputValidationError, match="iterable of dicts"):
        export_openai_batch(PROMPT, {"input": "a"}, path, model="m")  # type: ignore[dict-item]
    with pytest.raises(pk.ConfigurationError, match="does not exist"):
        export_openai_batch(PROMPT, INPUTS, tmp_path / "no" / "b.jsonl", model="m")
    with pytest.raises(pk.ConfigurationError, match="endpoint"):
        export_openai_batch(PROMPT, INPUTS, path, model="m", endpoint="/v1/embeddings")  # type: ignore[arg-type]
    with pytest.raises(pk.ConfigurationError, match="model"):
        export_openai_batch(PROMPT, INPUTS, path, model="")
    with pytest.raises(pk.ConfigurationError, match="id_prefix"):
        export_openai_batch(PROMPT, INPUTS, path, model="m", id_prefix="a b")


# --------------------------------------------------------------------------- import


def ok_line(custom_id: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 24, "completion_tokens": 8, "total_tokens": 32},
    }
    body.update(extra)
    return {
        "id": "batch_req_1",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": "r1", "body": body},
        "error": None,
    }


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_import_aligns_by_custom_id(tmp_path: Path) -> None:
    path = write(
        tmp_path / "out.jsonl",
        [ok_line("req-2", "neutral"), ok_line("req-0", "positive"), ok_line("req-1", "negative")],
    )
    result = import_openai_batch_results(path, INPUTS)
    assert result.texts == ["positive", "negative", "neutral"]
    assert [item.input for item in result] == INPUTS
    first = result[0].completion
    assert first is not None and first.usage == pk.Usage(24, 8, 32)
    assert first.model == "gpt-4o-mini-2024-07-18" and first.finish_reason == "stop"
    assert result.summary.ok == 3 and result.summary.usage.total_tokens == 96


def test_import_openai_error_file_and_failed_requests(tmp_path: Path) -> None:
    out = write(
        tmp_path / "out.jsonl",
        [
            ok_line("req-0", "positive"),
            {
                "id": "batch_req_2",
                "custom_id": "req-1",
                "response": {
                    "status_code": 400,
                    "request_id": "r2",
                    "body": {
                        "error": {
                            "message": "This model's maximum context length is 8192 tokens.",
                            "type": "invalid_request_error",
                            "code": "context_length_exceeded",
                        }
                    },
                },
                "error": None,
            },
        ],
    )
    errors = write(
        tmp_path / "errors.jsonl",
        [
            {
                "id": "batch_req_3",
                "custom_id": "req-2",
                "response": None,
                "error": {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion "
                    "window expired.",
                },
            },
        ],
    )
    result = import_openai_batch_results([out, errors], INPUTS)
    assert result.texts == ["positive", None, None]
    assert isinstance(result[1].error, pk.ContextLengthError)
    assert result[1].error.status == 400
    assert isinstance(result[2].error, pk.BackendTimeoutError)
    assert "completion window" in (result[2].error_message or "")
    assert result.summary.errors == {"BackendTimeoutError": 1, "ContextLengthError": 1}


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (
            429,
            {"error": {"message": "Rate limit", "code": "rate_limit_exceeded"}},
            "RateLimitError",
        ),
        (401, {"error": {"message": "bad key"}}, "AuthenticationError"),
        (500, {"error": {"message": "oops"}}, "ServerError"),
        (404, {"error": {"message": "no model"}}, "BadRequestError"),
    ],
)
def test_import_status_codes_are_typed(
    tmp_path: Path, status: int, error: dict[str, Any], kind: str
) -> None:
    line = {
        "id": "b",
        "custom_id": "req-0",
        "response": {"status_code": status, "request_id": "r", "body": error},
        "error": None,
    }
    result = import_openai_batch_results(write(tmp_path / "o.jsonl", [line]), 1)
    assert result[0].error_type == kind
    assert isinstance(result[0].error, getattr(pk, kind))


def test_import_vllm_output(tmp_path: Path) -> None:
    lines: list[dict[str, Any]] = [
        {
            "id": "vllm-abc",
            "custom_id": "req-0",
            "response": {
                "status_code": 200,
                "request_id": "vllm-batch-1",
                "body": ok_line("x", "positive")["response"]["body"],
            },
            "error": None,
        },
        {  # vLLM: an exception becomes a 400 with the message as a string
            "id": "vllm-def",
            "custom_id": "req-1",
            "response": {"status_code": 400, "request_id": "vllm-batch-2", "body": None},
            "error": "The model `x` does not exist.",
        },
        {  # vLLM: an ErrorResponse object
            "id": "vllm-ghi",
            "custom_id": "req-2",
            "response": {"status_code": 400, "request_id": "vllm-batch-3", "body": None},
            "error": {"error": {"message": "bad top_k", "type": "BadRequestError", "code": 400}},
        },
    ]
    result = import_openai_batch_results(write(tmp_path / "o.jsonl", lines), INPUTS)
    assert result.texts == ["positive", None, None]
    assert isinstance(result[1].error, pk.BadRequestError)
    assert "does not exist" in str(result[1].error)
    assert isinstance(result[2].error, pk.BadRequestError) and "bad top_k" in str(result[2].error)


def test_missing_ids_are_failures_not_dropped(tmp_path: Path) -> None:
    result = import_openai_batch_results(write(tmp_path / "o.jsonl", [ok_line("req-1", "b")]), 3)
    assert result.texts == [None, "b", None]
    assert [item.error_type for item in result.failed] == ["BackendError", "BackendError"]
    assert "No result for custom_id req-0" in (result[0].error_message or "")
    assert result.summary.failed == 2 and len(result) == 3


def test_import_refuses_foreign_or_repeated_ids_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    with pytest.raises(pk.ConfigurationError, match="not one of the 3 inputs"):
        import_openai_batch_results(write(path, [ok_line("req-3", "x")]), 3)
    with pytest.raises(pk.ConfigurationError, match="not one of"):
        import_openai_batch_results(write(path, [ok_line("other-0", "x")]), 3)
    with pytest.raises(pk.ConfigurationError, match="not one of"):
        import_openai_batch_results(write(path, [ok_line("req-01", "x")]), 3)
    with pytest.raises(pk.ConfigurationError, match="appears twice"):
        import_openai_batch_results(write(path, [ok_line("req-0", "x")] * 2), 3)
    path.write_text("not json\n")
    with pytest.raises(pk.ConfigurationError, match="line 1"):
        import_openai_batch_results(path, 3)
    with pytest.raises(pk.ConfigurationError, match="Cannot read"):
        import_openai_batch_results(tmp_path / "missing.jsonl", 3)


def test_malformed_and_filtered_replies_are_typed(tmp_path: Path) -> None:
    filtered = ok_line("req-1", "")
    filtered["response"]["body"]["choices"][0]["finish_reason"] = "content_filter"
    empty = ok_line("req-2", "")
    empty["response"]["body"]["choices"] = []
    result = import_openai_batch_results(
        write(tmp_path / "o.jsonl", [ok_line("req-0", "a"), filtered, empty]), 3
    )
    assert result.texts[0] == "a"
    assert isinstance(result[1].error, pk.ContentFilteredError)
    assert isinstance(result[2].error, pk.MalformedResponseError)


def test_export_then_import_round_trip(tmp_path: Path) -> None:
    """What a batch server does with the exported file, simulated line by line."""
    batch = tmp_path / "batch.jsonl"
    export_openai_batch(PROMPT, INPUTS, batch, model="gpt-4o-mini", id_prefix="sent")
    replies = []
    for line in reversed(read(batch)):  # results come back in any order
        last = line["body"]["messages"][-1]["content"]
        replies.append(ok_line(line["custom_id"], f"label for {last}"))
    result = import_openai_batch_results(
        write(tmp_path / "out.jsonl", replies), INPUTS, id_prefix="sent"
    )
    assert result.texts == ["label for Great", "label for Awful", "label for Fine"]
