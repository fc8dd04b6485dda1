"""Extractors and normalisers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import promptkit as pk
from promptkit.strategies import ExtractionError, extract, normalize
from promptkit.strategies.extract import apply, default_for


def test_regex_first_match_first_group() -> None:
    ex = extract.regex(r"Answer: (\w+)")
    assert ex("Answer: A ... Answer: B") == "A"
    assert extract.regex(r"Answer: (\w+)", last=True)("Answer: A ... Answer: B") == "B"
    assert extract.regex(r"\d+")("abc 123 456") == "123"
    assert extract.regex(re.compile(r"x=(\d)"))("x=4") == "4"
    assert ex("nothing") is None
    assert extract.regex(r"a(b)?")("a") is None  # the group did not take part


def test_last_line() -> None:
    assert extract.last_line()("a\nb\n\n  c  \n\n") == "c"
    assert extract.last_line()("\n \n") is None


def test_number() -> None:
    assert extract.number()("1, then 2,000.5 then -3") == "-3"
    assert extract.number(last=False)("costs 1,000.50 today") == "1,000.50"
    assert extract.number()("none") is None


def test_one_of() -> None:
    ex = extract.one_of(["positive", "negative", "neutral"])
    assert ex("Sentiment: NEGATIVE (not positive)") == "negative"
    assert extract.one_of(["yes", "no"], last=True)("yes... no") == "no"
    assert ex("nonpositive") is None
    with pytest.raises(ValueError, match="at least one"):
        extract.one_of([])


def test_json_field_paths_and_errors() -> None:
    text = 'Result: {"a": {"b": [10, {"c": "deep"}]}}'
    assert extract.json_field("a.b.0")(text) == 10
    assert extract.json_field("a.b.1.c")(text) == "deep"
    with pytest.raises(ExtractionError, match="has no field 'x'"):
        extract.json_field("a.x")(text)
    with pytest.raises(ExtractionError, match="out of range"):
        extract.json_field("a.b.5")(text)
    with pytest.raises(ExtractionError, match="cannot take"):
        extract.json_field("a.b.1.c.d")(text)
    with pytest.raises(ValueError, match="no JSON"):
        extract.json_field("a")("no json")
    with pytest.raises(ValueError, match="dotted path"):
        extract.json_field("a..b")


class City(BaseModel):
    name: str
    population: int


def test_model_extractor() -> None:
    ex = extract.model(City)
    assert ex('```json\n{"name": "Oslo", "population": 700000}\n```') == City(
        name="Oslo", population=700000
    )
    with pytest.raises(ExtractionError, match="population: Field required"):
        ex('{"name": "Oslo"}')


def test_answer_and_default_for_prompts() -> None:
    cot = pk.ChainOfThought()
    assert extract.answer(cot)("so... The answer is 12.") == "12"
    custom = pk.ZeroShot(instruction="x", answer_pattern=r"ANS=(\d+)")
    assert default_for(custom)("ANS=3 ANS=4") == "4"
    assert default_for(pk.ZeroShot(instruction="x"))("a\nb") == "b"


def test_apply_reports_why() -> None:
    assert apply(extract.last_line(), "x") == ("x", None)
    assert apply(extract.last_line(), "") == (None, "no answer found in the reply")
    assert apply(lambda t: "  ", "x") == (None, "the extracted answer is empty")
    got, why = apply(extract.model(City), "{}")
    assert got is None and why is not None and "name" in why


# --------------------------------------------------------------------------- normalisers


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("42", "42"),
        ("42.0", "42"),
        (" 42.00 ", "42"),
        ("**42**.", "42"),
        ("+42", "42"),
        ("-42", "-42"),
        ("1,000", "1000"),
        ("1,000.50", "1000.5"),
        ("2e3", "2000"),
        ("3.14", "3.14"),
        ("-0.0", "0"),
        ("1/2", "1/2"),
        ("Paris!", "paris"),
        ("  New   York ", "new york"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
        ("v1.2.3", "v1.2.3"),
        ("(B)", "b"),
        ("well-known", "wellknown"),
        ("x - 3", "x 3"),
        ("(-3)", "-3"),
    ],
)
def test_default_normaliser(raw: str, key: str) -> None:
    assert normalize.DEFAULT(raw) == key


def test_numbers_alone_keeps_text() -> None:
    assert (
        normalize.numbers("v2 has 10.50 units, 1e999 is left") == "v2 has 10.5 units, 1e999 is left"
    )


def test_canonical_keys() -> None:
    assert normalize.canonical(3) == normalize.canonical(3.0) == "3"
    assert normalize.canonical(False) == "false"
    assert normalize.canonical(None) == "null"
    assert normalize.canonical([1.0, {"b": 2, "a": 1}]) == '[1,{"a":1,"b":2}]'
    assert normalize.canonical(City(name="x", population=1)) == '{"name":"x","population":1}'
    assert normalize.canonical(float("inf")) == "infinity"


def test_compose_and_as_normaliser() -> None:
    from promptkit.strategies.normalize import as_normaliser

    assert as_normaliser(None) is normalize.DEFAULT
    assert as_normaliser([])("  x ") == "  x "
    assert as_normaliser(str.strip)(" x ") == "x"
    assert (
        normalize.compose(normalize.whitespace, normalize.casefold).__name__
        == "whitespace+casefold"
    )


@given(st.text(max_size=40))
def test_default_normaliser_is_idempotent(text: str) -> None:
    once = normalize.DEFAULT(text)
    assert normalize.DEFAULT(once) == once


@given(st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1e6, max_value=1e6))
def test_equal_numbers_get_one_key(value: object) -> None:
    from decimal import Decimal

    assert isinstance(value, Decimal)
    assert normalize.DEFAULT(str(value)) == normalize.DEFAULT(f"{value:f}0")
