"""SamplingParams validation, presets and combination."""

from __future__ import annotations

import pytest

import promptkit as pk
from promptkit import SamplingParams


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", 2.5, "temperature=2.5 is out of range: expected 0.0 to 2.0"),
        ("temperature", -0.1, "expected 0.0 to 2.0"),
        ("top_p", 1.5, "top_p=1.5 is out of range: expected 0.0 to 1.0"),
        ("top_k", -1, "top_k=-1 is out of range"),
        ("max_tokens", 0, "max_tokens=0 is out of range: expected a whole number >= 1"),
        ("frequency_penalty", 3, "expected -2.0 to 2.0"),
        ("presence_penalty", -3, "expected -2.0 to 2.0"),
        ("top_logprobs", 21, "expected a whole number from 0 to 20"),
        ("n", 0, "expected a whole number from 1 to 128"),
        ("min_p", 2, "expected 0.0 to 1.0"),
        ("repetition_penalty", 0, "greater than 0.0"),
        ("stop", [""], "stop=[''] is out of range"),
    ],
)
def test_out_of_range_names_the_valid_range(field: str, value: object, expected: str) -> None:
    with pytest.raises(pk.ParameterError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        SamplingParams(**{field: value})


def test_unknown_parameter_suggests_name_and_extra() -> None:
    with pytest.raises(
        pk.ParameterError,
        match=r"'max_token' is not a sampling parameter. Did you mean 'max_tokens'\?",
    ):
        SamplingParams(max_token=5)


def test_stop_string_becomes_list_and_top_logprobs_implies_logprobs() -> None:
    assert SamplingParams(stop="\n").stop == ["\n"]
    assert SamplingParams(top_logprobs=3).set_fields() == {"top_logprobs": 3, "logprobs": True}
    with pytest.raises(pk.ParameterError, match="top_logprobs needs logprobs=True"):
        SamplingParams(top_logprobs=3, logprobs=False)


def test_only_set_fields_are_sent() -> None:
    assert SamplingParams().set_fields() == {}
    assert SamplingParams(temperature=0).set_fields() == {"temperature": 0}


def test_presets_have_their_meaning_and_combine() -> None:
    assert pk.PRECISE.temperature == 0.0
    assert pk.CREATIVE.temperature is not None and pk.CREATIVE.temperature >= 0.9
    assert pk.NO_REPETITION.frequency_penalty and pk.NO_REPETITION.frequency_penalty > 0
    assert pk.SHORT.max_tokens is not None and pk.LONG.max_tokens is not None
    assert pk.SHORT.max_tokens < pk.LONG.max_tokens
    assert pk.LOW_RANDOMNESS.temperature is not None and pk.LOW_RANDOMNESS.temperature < 0.5
    combined = pk.PRECISE | pk.SHORT | SamplingParams(seed=1)
    assert combined.set_fields() == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64, "seed": 1}
    assert pk.CREATIVE.merge(temperature=0.5).temperature == 0.5
    assert pk.PRESETS["no_repetition"] is pk.NO_REPETITION


def test_merge_validates_and_merges_extra() -> None:
    a = SamplingParams(extra={"mirostat": 2})
    b = a.merge(SamplingParams(extra={"typical_p": 0.9}))
    assert b.extra == {"mirostat": 2, "typical_p": 0.9}
    with pytest.raises(pk.ParameterError):
        pk.PRECISE.merge(temperature=9)


def test_params_are_immutable() -> None:
    with pytest.raises(Exception, match="frozen"):
        pk.PRECISE.temperature = 1.0  # type: ignore[misc]


def test_sampling_fields_and_what_each_backend_supports() -> None:
    """The one list of sampling parameter names, and the sets the backends derive from it
    (pinned: a new SamplingParams field must be added to each backend on purpose)."""
    from promptkit._params import SAMPLING_FIELDS
    from promptkit.backends.fake import ALL_PARAMS
    from promptkit.backends.llamacpp import LlamaCppBackend
    from promptkit.backends.ollama import OllamaBackend
    from promptkit.backends.openai import OPENAI_PARAMS, LlamaServerBackend, OpenAIBackend
    from promptkit.backends.vllm import VLLMBackend
    from promptkit.prompty import _core

    assert SAMPLING_FIELDS == (
        "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens",
        "frequency_penalty", "presence_penalty", "stop", "logprobs", "top_logprobs", "seed",
        "n",
    )  # fmt: skip
    assert _core.SAMPLING_FIELDS is SAMPLING_FIELDS
    every = frozenset(SAMPLING_FIELDS)
    assert ALL_PARAMS == every == VLLMBackend.supports
    assert LlamaCppBackend.supports == OllamaBackend.supports == every - {"n"}
    assert (
        OpenAIBackend.supports == OPENAI_PARAMS == every - {"top_k", "min_p", "repetition_penalty"}
    )
    assert LlamaServerBackend.supports == every - {"n"}


def test_merge_params_takes_either_side_or_both() -> None:
    from promptkit._params import merge_params

    assert merge_params(None, None) is None
    assert merge_params(pk.PRECISE, None) is pk.PRECISE
    assert merge_params(None, pk.SHORT) is pk.SHORT
    both = merge_params(pk.PRECISE, SamplingParams(temperature=0.5, max_tokens=9))
    assert both == SamplingParams(temperature=0.5, top_p=1.0, max_tokens=9)
