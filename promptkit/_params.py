"""Sampling parameters, validated, with named presets.

A parameter left unset is not sent at all: the server's own default applies. Presets are
ordinary ``SamplingParams`` values and combine with ``|`` (the right side wins for every
field it sets)::

    >>> from promptkit import PRECISE, SamplingParams
    >>> p = PRECISE | SamplingParams(max_tokens=50)
    >>> p.temperature, p.max_tokens
    (0.0, 50)
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._errors import ParameterError

__all__ = [
    "BALANCED",
    "CREATIVE",
    "FACTUAL",
    "LONG",
    "LOW_RANDOMNESS",
    "NO_REPETITION",
    "POLICIES",
    "PRECISE",
    "PRESETS",
    "SAMPLING_FIELDS",
    "SHORT",
    "SamplingParams",
    "UnsupportedPolicy",
    "check_policy",
    "merge_params",
]

UnsupportedPolicy = Literal["error", "warn", "drop"]

#: The settings of each policy option.
POLICIES: dict[str, tuple[str, ...]] = {
    "on_unsupported": ("error", "warn", "drop"),
    "on_truncation": ("ignore", "error"),
}


def check_policy(name: str, value: Any) -> str:
    """``value`` when it is a setting of the policy ``name`` (``on_unsupported`` or
    ``on_truncation``), else a :class:`~promptkit.ParameterError` naming the valid ones.

    The one check of these options, wherever they are given (:class:`~promptkit.LLM`,
    :func:`~promptkit.connect` and its configuration files, the batch-file export).

    >>> check_policy("on_unsupported", "drop")
    'drop'
    >>> check_policy("on_unsupported", "loud")
    Traceback (most recent call last):
    promptkit._errors.ParameterError: on_unsupported='loud': expected 'error', 'warn' or 'drop'.
    """
    valid = POLICIES[name]
    if not isinstance(value, str) or value not in valid:
        expected = ", ".join(repr(v) for v in valid[:-1]) + f" or {valid[-1]!r}"
        raise ParameterError(f"{name}={value!r}: expected {expected}.")
    return value


_RANGES: dict[str, str] = {
    "temperature": "0.0 to 2.0",
    "top_p": "0.0 to 1.0",
    "top_k": "a whole number >= 0 (0 disables it on servers that support it)",
    "min_p": "0.0 to 1.0",
    "repetition_penalty": "greater than 0.0, at most 2.0 (1.0 is off)",
    "max_tokens": "a whole number >= 1",
    "frequency_penalty": "-2.0 to 2.0",
    "presence_penalty": "-2.0 to 2.0",
    "top_logprobs": "a whole number from 0 to 20",
    "n": "a whole number from 1 to 128",
    "seed": "a whole number",
    "stop": "a string or a list of non-empty strings (at most 16)",
    "logprobs": "true or false",
}


class SamplingParams(BaseModel):
    """How a model samples its reply. Every field is optional; unset fields are not sent.

    >>> SamplingParams(temperature=0.2, stop="\\n\\n").stop
    ['\\n\\n']
    >>> SamplingParams(temperature=3)
    Traceback (most recent call last):
    ...
    promptkit._errors.ParameterError: temperature=3 is out of range: expected 0.0 to 2.0.

    ``extra`` carries backend-specific fields that are copied into the request body as they
    are (for example ``{"mirostat": 2}`` for llama.cpp). They bypass validation, so they
    are for parameters promptkit does not model.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    stop: list[str] | None = Field(default=None, max_length=16)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    extra: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _parameter_error(exc, data) from None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [v]
        return v

    @field_validator("stop")
    @classmethod
    def _stop_not_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and any(s == "" for s in v):
            raise ValueError("empty stop string")
        return v

    @model_validator(mode="after")
    def _top_logprobs_needs_logprobs(self) -> SamplingParams:
        if self.top_logprobs is not None and self.logprobs is False:
            raise ValueError("top_logprobs needs logprobs=True")
        return self

    def __repr_args__(self) -> Any:
        # show what is set, not a wall of None
        return [
            (k, getattr(self, k)) for k in type(self).model_fields if k in self.model_fields_set
        ]

    # ------------------------------------------------------------------ combining

    def set_fields(self) -> dict[str, Any]:
        """The fields that were explicitly set (what will be sent), without ``extra``."""
        out = {k: getattr(self, k) for k in self.model_fields_set if k != "extra"}
        if self.top_logprobs is not None and "logprobs" not in out:
            out["logprobs"] = True
        return out

    def merge(self, other: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
        """A copy with ``other``'s set fields, then ``overrides``, taking precedence.

        >>> CREATIVE.merge(max_tokens=10).max_tokens
        10
        """
        data: dict[str, Any] = {k: getattr(self, k) for k in self.model_fields_set}
        extra = dict(self.extra)
        if other is not None:
            for k in other.model_fields_set:
                if k == "extra":
                    extra.update(other.extra)
                else:
                    data[k] = getattr(other, k)
        extra.update(overrides.pop("extra", None) or {})
        data.update(overrides)
        if extra:
            data["extra"] = extra
        return SamplingParams(**data)

    def __or__(self, other: SamplingParams) -> SamplingParams:
        if not isinstance(other, SamplingParams):
            return NotImplemented
        return self.merge(other)


#: The sampling parameters promptkit models by name: every :class:`SamplingParams` field
#: but ``extra``, in declaration order. Backends declare what they support from it.
SAMPLING_FIELDS: tuple[str, ...] = tuple(k for k in SamplingParams.model_fields if k != "extra")


def merge_params(base: SamplingParams | None, top: SamplingParams | None) -> SamplingParams | None:
    """``top`` over ``base``, field by field; either may be None.

    >>> merge_params(PRECISE, None) is PRECISE, merge_params(None, SHORT) is SHORT
    (True, True)
    >>> merge_params(PRECISE, SHORT)
    SamplingParams(temperature=0.0, top_p=1.0, max_tokens=64)
    """
    if base is None:
        return top
    return base if top is None else base.merge(top)


def _parameter_error(exc: ValidationError, data: dict[str, Any]) -> ParameterError:
    lines = []
    for err in exc.errors():
        loc = err["loc"][0] if err["loc"] else ""
        name = str(loc)
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(name, list(SamplingParams.model_fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            lines.append(
                f"{name!r} is not a sampling parameter.{hint} Backend-specific parameters go "
                f"in extra={{{name!r}: ...}}."
            )
        elif name in _RANGES:
            value = data.get(name, err.get("input"))
            lines.append(f"{name}={value!r} is out of range: expected {_RANGES[name]}.")
        else:
            lines.append(f"{err['msg']}.")
    return ParameterError(" ".join(lines))


#: Factual answers, extraction, classification: greedy decoding.
PRECISE = SamplingParams(temperature=0.0, top_p=1.0)
#: Alias of :data:`PRECISE`.
FACTUAL = PRECISE
#: Low randomness without being fully greedy.
LOW_RANDOMNESS = SamplingParams(temperature=0.2, top_p=0.9)
#: A general-purpose middle ground.
BALANCED = SamplingParams(temperature=0.7, top_p=1.0)
#: Brainstorming, stories, varied wording.
CREATIVE = SamplingParams(temperature=1.0, top_p=0.95, presence_penalty=0.3)
#: Discourage repeated tokens and topics.
NO_REPETITION = SamplingParams(temperature=0.7, frequency_penalty=0.8, presence_penalty=0.6)
#: Short replies.
SHORT = SamplingParams(max_tokens=64)
#: Long replies.
LONG = SamplingParams(max_tokens=1024)

#: Presets by name, as used in configuration files (``preset = "precise"``).
PRESETS: dict[str, SamplingParams] = {
    "precise": PRECISE,
    "factual": FACTUAL,
    "low_randomness": LOW_RANDOMNESS,
    "balanced": BALANCED,
    "creative": CREATIVE,
    "no_repetition": NO_REPETITION,
    "short": SHORT,
    "long": LONG,
}
