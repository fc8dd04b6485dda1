"""Normalisers: turn an extracted answer into the key it is voted under.

A normaliser is any function ``str -> str``. :class:`~promptkit.SelfConsistency` applies
its normalisers in order to every extracted string answer (the default is
:data:`DEFAULT`), so ``"42"``, ``" 42.0 "`` and ``"**42**."`` all count as one vote.
Answers that are not strings (numbers from a JSON field, pydantic models) are keyed by
:func:`canonical` instead.

>>> from promptkit.strategies import normalize
>>> normalize.DEFAULT("  The  Answer: 42.0! ")
'the answer 42'
>>> normalize.compose(normalize.casefold, normalize.whitespace)("  Paris\\n")
'paris'
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

__all__ = [
    "DEFAULT",
    "Normaliser",
    "canonical",
    "casefold",
    "compose",
    "identity",
    "numbers",
    "punctuation",
    "whitespace",
]

#: A normaliser: any function from an answer to its voting key.
Normaliser = Callable[[str], str]

_SPACE = re.compile(r"\s+")
# a number: optional sign, digits with optional thousands separators, decimals, exponent
_NUMBER = re.compile(
    r"(?<![\w.])([-+]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:[eE]([-+]?\d{1,3}))?(?![\w])"
)


def identity(text: str) -> str:
    """The answer unchanged.

    >>> identity(" A ")
    ' A '
    """
    return text


def whitespace(text: str) -> str:
    """Collapse runs of whitespace to one space and strip both ends.

    >>> whitespace("  new \\n  york ")
    'new york'
    """
    return _SPACE.sub(" ", text).strip()


def casefold(text: str) -> str:
    """Case-insensitive comparison (``str.casefold``: also ``ß`` == ``ss``).

    >>> casefold("PARIS")
    'paris'
    """
    return text.casefold()


def _keep(text: str, i: int) -> bool:
    """Punctuation that is part of a number: 3.5, 1,000, 1/2, -3."""
    ch = text[i]
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if ch in ".,/" and before.isdigit() and after.isdigit():
        return True
    return ch == "-" and after.isdigit() and not (before.isalnum() or before == "_")


def punctuation(text: str) -> str:
    """Remove punctuation (Unicode category P*: ``. , ! ? * " ' ( )``, dashes, ...),
    except inside numbers (``3.5``, ``1,000``, ``1/2``) and a minus sign before a digit.

    >>> punctuation('"Paris!"')
    'Paris'
    >>> punctuation("**-3.5**.")
    '-3.5'
    """
    if text.isalnum():
        return text
    out = [
        ch
        for i, ch in enumerate(text)
        if not unicodedata.category(ch).startswith("P") or _keep(text, i)
    ]
    return "".join(out)


def _number(sign: str, digits: str, fraction: str | None, exponent: str | None) -> str | None:
    try:
        if exponent is not None and abs(int(exponent)) > 60:
            return None
        value = Decimal(sign + digits.replace(",", "") + (fraction or "") + (
            f"e{exponent}" if exponent is not None else ""
        ))  # fmt: skip
    except (InvalidOperation, ValueError):
        return None
    return format_number(value)


def format_number(value: Decimal | float | int) -> str:
    """One spelling per number: no trailing zeros, no exponent, no ``-0``.

    >>> format_number(42.0), format_number(Decimal("1.50")), format_number(-0.0)
    ('42', '1.5', '0')
    """
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if not d.is_finite():
        return str(d).lower()
    if d == d.to_integral_value():
        return str(int(d))
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def numbers(text: str) -> str:
    """Write every number one way: ``42.0`` -> ``42``, ``1,000`` -> ``1000``, ``+3`` -> ``3``,
    ``1.50`` -> ``1.5``, ``2e3`` -> ``2000``.

    >>> numbers("42.0 apples and 1,000.50 pears")
    '42 apples and 1000.5 pears'
    """

    def sub(m: re.Match[str]) -> str:
        got = _number(m.group(1), m.group(2), m.group(3), m.group(4))
        return m.group(0) if got is None else got

    return _NUMBER.sub(sub, text)


def compose(*normalisers: Normaliser) -> Normaliser:
    """One normaliser applying ``normalisers`` left to right.

    >>> compose(whitespace, casefold)(" Yes ")
    'yes'
    """
    steps = tuple(normalisers)

    def composed(text: str) -> str:
        for step in steps:
            text = step(text)
        return text

    composed.__name__ = "+".join(getattr(s, "__name__", "normaliser") for s in steps) or "identity"
    return composed


#: The default: whitespace, case, punctuation and numbers; then whitespace again.
DEFAULT: Normaliser = compose(whitespace, casefold, punctuation, numbers, whitespace)


def as_normaliser(value: Normaliser | Sequence[Normaliser] | None) -> Normaliser:
    """``None`` -> :data:`DEFAULT`; a sequence -> :func:`compose`; a function as is."""
    if value is None:
        return DEFAULT
    if callable(value):
        return value
    return compose(*value)


def canonical(value: Any) -> str:
    """The voting key of an answer that is not a string: numbers as :func:`format_number`
    (so ``42`` and ``42.0`` agree), booleans as ``true``/``false``, pydantic models, dicts
    and lists as JSON with sorted keys.

    >>> canonical(42.0), canonical(True), canonical({"b": 1, "a": [2.0]})
    ('42', 'true', '{"a":[2],"b":1}')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return format_number(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(_canon(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)  # fmt: skip


def _canon(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, BaseModel):
        return _canon(value.model_dump(mode="json"))
    return value
