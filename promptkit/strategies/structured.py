"""Structured output: a reply validated into a pydantic model.

>>> import promptkit as pk
>>> from pydantic import BaseModel
>>> class City(BaseModel):
...     name: str
...     population_m: float
>>> llm = pk.LLM(pk.FakeBackend(['{"name": "Paris", "population_m": "many"}',
...                              '{"name": "Paris", "population_m": 2.1}']))
>>> pk.ZeroShot(instruction="Describe the city.").run(llm, output=City, input="Paris")
City(name='Paris', population_m=2.1)

The first reply failed validation, so a second attempt was made with the errors fed back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from .._errors import ParameterError
from .._types import Completion, Message, Usage
from ._errors import StructuredOutputError
from ._json import find_json
from ._plan import (
    Call,
    Plan,
    adrive,
    check_choices,
    drive,
    one,
    prompt_params,
    rendered,
    total_usage,
)

if TYPE_CHECKING:
    from .._client import LLM
    from .._params import SamplingParams
    from ..prompts import PromptBase

__all__ = [
    "OutputMode",
    "StructuredResult",
    "astructured",
    "astructured_result",
    "schema_instruction",
    "structured",
    "structured_plan",
    "structured_result",
    "supports_json_schema",
]

M = TypeVar("M", bound=BaseModel)

#: How the schema reaches the model: ``"auto"`` (the backend's JSON-schema response format
#: where it has one, else instructions), ``"json_schema"`` (always the response format) or
#: ``"prompt"`` (only instructions; the JSON is extracted from the reply).
OutputMode = Literal["auto", "json_schema", "prompt"]

_NAME = re.compile(r"[^A-Za-z0-9_-]")
_MODES = ("auto", "json_schema", "prompt")


@dataclass(frozen=True)
class StructuredResult(Generic[M]):
    """A validated structured output with its history.

    ``value`` is the validated model; ``attempts`` how many replies it took; ``usage`` the
    tokens summed over every attempt; ``completions`` every attempt's Completion.
    """

    value: M
    attempts: int
    usage: Usage = field(default_factory=Usage)
    completions: tuple[Completion, ...] = field(default=(), repr=False)

    @property
    def output(self) -> M:
        """The validated model (what a chain step passes on)."""
        return self.value

    @property
    def text(self) -> str:
        """The reply that validated, as text."""
        return self.completions[-1].text if self.completions else ""


def supports_json_schema(llm: LLM) -> bool:
    """Whether ``llm``'s backend constrains replies to a JSON schema (its
    ``supports_json_schema`` class attribute; False when it has none)."""
    return bool(getattr(llm.backend, "supports_json_schema", False))


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """The instruction added to the system message: reply with JSON matching ``schema``.

    >>> print(schema_instruction({"type": "object"}))
    Reply with a single JSON object that matches this JSON schema, and nothing else:
    {"type":"object"}
    """
    return (
        "Reply with a single JSON object that matches this JSON schema, and nothing else:\n"
        + json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    )


def _with_instruction(messages: list[Message], instruction: str) -> list[Message]:
    if messages and messages[0].role == "system":
        return [Message.system(f"{messages[0].content}\n\n{instruction}"), *messages[1:]]
    return [Message.system(instruction), *messages]


def _describe(errors: list[dict[str, Any]]) -> str:
    lines = []
    for err in errors:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(the object)"
        line = f"- {loc}: {err.get('msg', 'invalid')}"
        if "input" in err and err.get("type") != "missing" and loc != "(the object)":
            shown = repr(err["input"])
            line += f" (got {shown[:80] + '...' if len(shown) > 80 else shown})"
        lines.append(line)
    return "\n".join(lines)


def _parse(text: str, output: type[M]) -> tuple[M | None, list[dict[str, Any]]]:
    try:
        data = find_json(text)
    except ValueError as exc:
        return None, [{"type": "json_invalid", "loc": (), "msg": str(exc), "input": text}]
    try:
        return output.model_validate(data), []
    except ValidationError as exc:
        return None, [dict(e) for e in exc.errors(include_url=False, include_context=False)]


def _check_options(output: type[M], max_attempts: int, output_mode: str) -> None:
    if not (isinstance(output, type) and issubclass(output, BaseModel)):
        raise ParameterError(f"output must be a pydantic model class; got {output!r}.")
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise ParameterError(f"max_attempts={max_attempts!r}: expected a whole number >= 1.")
    if output_mode not in _MODES:
        raise ParameterError(
            f"output_mode={output_mode!r}: expected one of {', '.join(map(repr, _MODES))}."
        )


def structured_plan(
    prompt: PromptBase,
    llm: LLM,
    output: type[M],
    variables: Mapping[str, Any],
    params: SamplingParams | None = None,
    *,
    max_attempts: int = 3,
    output_mode: OutputMode = "auto",
) -> Plan[StructuredResult[M]]:
    """The plan behind :func:`structured` (for use inside other strategies)."""
    _check_options(output, max_attempts, output_mode)
    schema = output.model_json_schema()
    native = output_mode == "json_schema" or (output_mode == "auto" and supports_json_schema(llm))
    response_format = (
        {"name": _NAME.sub("_", output.__name__)[:64] or "response", "schema": schema,
         "strict": False}
        if native
        else None
    )  # fmt: skip
    messages = yield from rendered(prompt, variables)
    base = _with_instruction(list(messages), schema_instruction(schema))
    call_params = prompt_params(prompt, params)
    completions: list[Completion] = []
    messages = base
    errors: list[dict[str, Any]] = []
    text = ""
    for _ in range(max_attempts):
        done = yield from one(Call(messages, call_params, 1, response_format))
        check_choices(done, llm.backend.name)
        completions.append(done)
        text = done.text
        value, errors = _parse(text, output)
        if value is not None:
            return StructuredResult(
                value, len(completions), total_usage(completions), tuple(completions)
            )
        feedback = (
            f"That reply is not valid {output.__name__} JSON:\n{_describe(errors)}\n"
            "Reply again with only the corrected JSON object."
        )
        if done.truncated:
            feedback += " Your reply was cut off at the token limit: keep it shorter."
        messages = [*base, Message.assistant(text), Message.user(feedback)]
    truncated = (
        " (the last reply was cut off at max_tokens: raise it)" if completions[-1].truncated else ""
    )
    raise StructuredOutputError(
        f"{getattr(prompt, 'label', type(prompt).__name__)}: the reply did not validate as "
        f"{output.__name__} after {len(completions)} attempt(s){truncated}. Last errors:\n"
        f"{_describe(errors)}\nThe invalid output is in .output and the errors in .errors.",
        output=text,
        errors=errors,
        attempts=len(completions),
        model=output.__name__,
        usage=total_usage(completions),
        completions=tuple(completions),
    )


def structured_result(
    prompt: PromptBase,
    llm: LLM,
    output: type[M],
    *,
    params: SamplingParams | None = None,
    max_attempts: int = 3,
    output_mode: OutputMode = "auto",
    **variables: Any,
) -> StructuredResult[M]:
    """Like :func:`structured`, returning the :class:`StructuredResult` (value, attempts,
    usage summed over attempts, every Completion)."""
    plan = structured_plan(
        prompt, llm, output, variables, params, max_attempts=max_attempts, output_mode=output_mode
    )
    return drive(plan, llm)


async def astructured_result(
    prompt: PromptBase,
    llm: LLM,
    output: type[M],
    *,
    params: SamplingParams | None = None,
    max_attempts: int = 3,
    output_mode: OutputMode = "auto",
    **variables: Any,
) -> StructuredResult[M]:
    """Async twin of :func:`structured_result`."""
    plan = structured_plan(
        prompt, llm, output, variables, params, max_attempts=max_attempts, output_mode=output_mode
    )
    return await adrive(plan, llm)


def structured(
    prompt: PromptBase,
    llm: LLM,
    output: type[M],
    *,
    params: SamplingParams | None = None,
    max_attempts: int = 3,
    output_mode: OutputMode = "auto",
    **variables: Any,
) -> M:
    """Run ``prompt`` and return its reply validated as ``output`` (a pydantic model).

    What ``prompt.run(llm, output=MyModel)`` calls. The schema goes to the model as an
    instruction appended to the system message and, where the backend supports it
    (``supports_json_schema``: OpenAI, vLLM, llama.cpp server, ...) or with
    ``output_mode="json_schema"``, as the request's JSON-schema response format. The JSON
    is taken from the reply even when wrapped in prose or code fences.

    A reply that is not valid JSON or fails validation is retried, up to ``max_attempts``
    replies in all, with the validation errors fed back to the model; only such failures
    are retried (network faults are the backend's to retry). When attempts run out,
    :class:`~promptkit.StructuredOutputError` carries the last invalid output and its
    errors. ``max_attempts`` and ``output_mode`` cannot be template variables here.
    """
    return structured_result(
        prompt, llm, output, params=params, max_attempts=max_attempts, output_mode=output_mode,
        **variables,
    ).value  # fmt: skip


async def astructured(
    prompt: PromptBase,
    llm: LLM,
    output: type[M],
    *,
    params: SamplingParams | None = None,
    max_attempts: int = 3,
    output_mode: OutputMode = "auto",
    **variables: Any,
) -> M:
    """Async twin of :func:`structured`."""
    result = await astructured_result(
        prompt, llm, output, params=params, max_attempts=max_attempts, output_mode=output_mode,
        **variables,
    )  # fmt: skip
    return result.value
