"""Structured output: prompt.run(llm, output=Model), JSON schema, validation retries."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel, Field

import promptkit as pk
from promptkit import FakeBackend
from promptkit.strategies import (
    StructuredOutputError,
    astructured,
    astructured_result,
    structured,
    structured_result,
)
from promptkit.strategies._json import find_json
from promptkit.strategies.structured import schema_instruction

PROMPT = pk.ZeroShot(instruction="Extract the person.", name="person")


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)


GOOD = '{"name": "Ada", "age": 36}'


def schema_fake(replies: list[str]) -> FakeBackend:
    fake = FakeBackend(replies)
    fake.supports_json_schema = True  # type: ignore[attr-defined]
    return fake


def test_run_with_output_returns_the_validated_model() -> None:
    fake = FakeBackend([GOOD])
    person = PROMPT.run(pk.LLM(fake), output=Person, input="Ada, 36")
    assert person == Person(name="Ada", age=36)
    assert len(fake.requests) == 1


def test_the_schema_is_appended_to_the_system_message() -> None:
    fake = FakeBackend([GOOD])
    PROMPT.run(pk.LLM(fake), output=Person, input="Ada, 36")
    messages = fake.requests[0].messages
    assert messages is not None
    system = messages[0]
    assert system.role == "system"
    assert system.content.startswith("Extract the person.\n\n")
    assert system.content.endswith(schema_instruction(Person.model_json_schema()))
    assert messages[-1].content == "Ada, 36"


def test_a_system_message_is_added_when_the_prompt_has_none() -> None:
    fake = FakeBackend([GOOD])
    pk.Prompt().run(pk.LLM(fake), output=Person, input="Ada, 36")
    messages = fake.requests[0].messages
    assert messages is not None and [m.role for m in messages] == ["system", "user"]


def test_no_response_format_for_a_backend_without_json_schema() -> None:
    fake = FakeBackend([GOOD])
    PROMPT.run(pk.LLM(fake), output=Person, input="x")
    assert fake.requests[0].response_format is None


def test_response_format_where_the_backend_supports_json_schema() -> None:
    fake = schema_fake([GOOD])
    PROMPT.run(pk.LLM(fake), output=Person, input="x")
    rf = fake.requests[0].response_format
    assert rf == {"name": "Person", "schema": Person.model_json_schema(), "strict": False}


def test_output_mode_forces_or_disables_the_response_format() -> None:
    fake = FakeBackend([GOOD])
    structured(PROMPT, pk.LLM(fake), Person, output_mode="json_schema", input="x")
    assert fake.requests[0].response_format is not None
    fake2 = schema_fake([GOOD])
    structured(PROMPT, pk.LLM(fake2), Person, output_mode="prompt", input="x")
    assert fake2.requests[0].response_format is None


@pytest.mark.parametrize(
    "reply",
    [
        GOOD,
        f"Sure! Here is the JSON:\n{GOOD}\nLet me know if you need more.",
        f"```json\n{GOOD}\n```",
        f"```\n{GOOD}\n```",
        f"Notes [1] and [2].\n{GOOD}",
    ],
)
def test_json_is_found_in_the_reply(reply: str) -> None:
    assert PROMPT.run(pk.LLM(FakeBackend([reply])), output=Person, input="x").age == 36


def test_validation_failure_is_retried_with_the_errors_fed_back() -> None:
    fake = FakeBackend(['{"name": "Ada", "age": -3}', GOOD])
    result = structured_result(PROMPT, pk.LLM(fake), Person, input="Ada")
    assert result.value == Person(name="Ada", age=36)
    assert result.attempts == 2 and len(fake.requests) == 2
    retry = fake.requests[1].messages
    assert retry is not None
    first = fake.requests[0].messages
    assert first is not None
    assert list(retry[: len(first)]) == list(first)
    assert retry[-2].role == "assistant" and retry[-2].content == '{"name": "Ada", "age": -3}'
    assert retry[-1].role == "user"
    assert "age" in retry[-1].content and "greater than or equal to 0" in retry[-1].content
    assert result.text == GOOD


def test_usage_is_summed_over_attempts() -> None:
    fake = FakeBackend(["nope, no JSON here at all", GOOD])
    result = structured_result(PROMPT, pk.LLM(fake), Person, input="Ada")
    one, two = result.completions
    assert one.usage.total_tokens is not None and two.usage.total_tokens is not None
    assert result.usage.total_tokens == one.usage.total_tokens + two.usage.total_tokens


def test_attempts_running_out_raise_with_the_last_output_and_errors() -> None:
    fake = FakeBackend(['{"name": "Ada"}', '{"name": "Ada", "age": "old"}'])
    with pytest.raises(StructuredOutputError) as info:
        structured(PROMPT, pk.LLM(fake), Person, max_attempts=2, input="Ada")
    err = info.value
    assert isinstance(err, pk.PromptkitError)
    assert err.output == '{"name": "Ada", "age": "old"}'
    assert err.attempts == 2 and err.model == "Person"
    assert [e["loc"] for e in err.errors] == [("age",)]
    assert err.errors[0]["type"] == "int_parsing"
    assert err.usage.total_tokens == sum(c.usage.total_tokens or 0 for c in err.completions)
    assert "after 2 attempt(s)" in str(err) and "age" in str(err)


def test_no_json_is_a_json_invalid_error() -> None:
    with pytest.raises(StructuredOutputError) as info:
        structured(PROMPT, pk.LLM(FakeBackend(["I cannot."])), Person, max_attempts=1, input="x")
    assert info.value.errors[0]["type"] == "json_invalid"
    assert info.value.output == "I cannot."


def test_truncated_reply_is_mentioned() -> None:
    fake = FakeBackend([pk.Choice('{"name": "A', 0, "length")] * 2)
    with pytest.raises(StructuredOutputError, match="cut off at max_tokens"):
        structured(PROMPT, pk.LLM(fake), Person, max_attempts=2, input="x")
    retry = fake.requests[1].messages
    assert retry is not None and "token limit" in retry[-1].content


def test_backend_errors_are_not_retried_here() -> None:
    fake = FakeBackend([pk.ServerError("boom", status=500), GOOD])
    with pytest.raises(pk.ServerError):
        PROMPT.run(pk.LLM(fake), output=Person, input="x")
    assert len(fake.requests) == 1


def test_params_reach_the_request_and_n_is_one() -> None:
    fake = FakeBackend([GOOD])
    llm = pk.LLM(fake, params=pk.SamplingParams(n=3))
    PROMPT.run(llm, output=Person, params=pk.SamplingParams(temperature=0), input="x")
    assert fake.requests[0].params.get("temperature") == 0
    assert "n" not in fake.requests[0].params


def test_async_structured_and_arun() -> None:
    async def main() -> tuple[Person, Person, int]:
        p1 = await PROMPT.arun(pk.LLM(FakeBackend([GOOD])), output=Person, input="x")
        p2 = await astructured(PROMPT, pk.LLM(FakeBackend(["bad", GOOD])), Person, input="x")
        r = await astructured_result(PROMPT, pk.LLM(FakeBackend(["bad", GOOD])), Person, input="x")
        return p1, p2, r.attempts

    p1, p2, attempts = asyncio.run(main())
    assert p1 == p2 == Person(name="Ada", age=36) and attempts == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"output_mode": "xml"}, "output_mode"),
    ],
)
def test_options_are_validated(kwargs: dict[str, object], match: str) -> None:
    fake = FakeBackend([GOOD])
    with pytest.raises(pk.ParameterError, match=match):
        structured(PROMPT, pk.LLM(fake), Person, input="x", **kwargs)  # type: ignore[arg-type]
    assert fake.requests == []


def test_output_must_be_a_model_class() -> None:
    with pytest.raises(pk.ParameterError, match="pydantic model"):
        structured(PROMPT, pk.LLM(FakeBackend([GOOD])), dict, input="x")  # type: ignore[type-var]


def test_nested_models_and_lists() -> None:
    class Team(BaseModel):
        members: list[Person]

    reply = '{"members": [{"name": "Ada", "age": 36}, {"name": "Alan", "age": 41}]}'
    team = PROMPT.run(pk.LLM(FakeBackend([reply])), output=Team, input="x")
    assert [m.name for m in team.members] == ["Ada", "Alan"]


def test_find_json_cases() -> None:
    assert find_json(' {"a": 1} ') == {"a": 1}
    assert find_json('see [1] then {"a": [1, {"b": 2}]} end') == {"a": [1, {"b": 2}]}
    assert find_json("list: [1, 2, 3] done") == [1, 2, 3]
    assert find_json('```json\n{"a": 1}\n```\nand {"b": 2}') == {"a": 1}
    with pytest.raises(ValueError, match="empty"):
        find_json("   ")
    with pytest.raises(ValueError, match="no valid JSON object"):
        find_json('{"a": 1')
    with pytest.raises(ValueError, match="no JSON object"):
        find_json("plain text")
