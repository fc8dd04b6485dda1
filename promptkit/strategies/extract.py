"""Extractors: find the answer in a model's reply.

An extractor is any function ``str -> answer | None``. ``None`` means "no answer in this
reply"; so does raising ``ValueError`` (for instance pydantic's ``ValidationError``), whose
message is kept as the reason. Every factory here returns such a function:

>>> from promptkit.strategies import extract
>>> extract.regex(r"Answer: (\\w+)")("Thinking... Answer: Paris")
'Paris'
>>> extract.last_line()("Step 1...\\nStep 2...\\n  Paris  \\n")
'Paris'
>>> extract.json_field("city.name")('{"city": {"name": "Paris"}}')
'Paris'
>>> extract.number()("3 apples + 4 apples = 7 apples")
'7'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from ._errors import ExtractionError
from ._json import find_json

if TYPE_CHECKING:
    from ..prompts import PromptBase

__all__ = [
    "Extractor",
    "answer",
    "find_json",
    "json_field",
    "last_line",
    "model",
    "number",
    "one_of",
    "regex",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: An extractor: a reply's text -> its answer, or None when there is none.
Extractor = Callable[[str], T | None]

_NUM = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def regex(pattern: str | re.Pattern[str], *, flags: int = 0, last: bool = False) -> Extractor[str]:
    """The first match of ``pattern`` (the last one with ``last=True``): its first group,
    or the whole match when the pattern has no group; stripped.

    >>> regex(r"answer is (\\d+)", flags=re.I, last=True)("Answer is 3... no, the answer is 4")
    '4'
    """
    compiled = re.compile(pattern, flags) if isinstance(pattern, str) else pattern

    def extract_regex(text: str) -> str | None:
        if last:
            matches = list(compiled.finditer(text))
            m = matches[-1] if matches else None
        else:
            m = compiled.search(text)
        if m is None:
            return None
        got = m.group(1) if compiled.groups else m.group(0)
        return got.strip() if got is not None else None

    return extract_regex


def last_line() -> Extractor[str]:
    """The last non-blank line, stripped.

    >>> last_line()("Let me think.\\n\\nParis\\n")
    'Paris'
    """

    def extract_last_line(text: str) -> str | None:
        for line in reversed(text.splitlines()):
            if line.strip():
                return line.strip()
        return None

    return extract_last_line


def number(*, last: bool = True) -> Extractor[str]:
    """The last number in the reply (the first with ``last=False``), as written.

    >>> number(last=False)("12 eggs, 3 used, 9 left")
    '12'
    """

    def extract_number(text: str) -> str | None:
        found = _NUM.findall(text)
        if not found:
            return None
        return str(found[-1] if last else found[0])

    return extract_number


def one_of(options: Sequence[str], *, last: bool = False, case_sensitive: bool = False
           ) -> Extractor[str]:  # fmt: skip
    """The first of ``options`` mentioned in the reply (as a whole word; the last mentioned
    with ``last=True``), spelled as in ``options``.

    >>> one_of(["positive", "negative"])("The review is clearly NEGATIVE.")
    'negative'
    """
    if not options:
        raise ValueError("one_of needs at least one option")
    by_key = {(o if case_sensitive else o.casefold()): o for o in options}
    alternatives = "|".join(re.escape(o) for o in sorted(options, key=len, reverse=True))
    compiled = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", 0 if case_sensitive else re.I)

    def extract_one_of(text: str) -> str | None:
        found: list[str] = compiled.findall(text)
        if not found:
            return None
        got = found[-1] if last else found[0]
        return by_key.get(got if case_sensitive else got.casefold(), got)

    return extract_one_of


def _json_path(data: Any, path: Sequence[str]) -> Any:
    for i, part in enumerate(path):
        if isinstance(data, dict):
            if part not in data:
                where = ".".join(path[:i]) or "the object"
                keys = ", ".join(map(str, data)) or "none"
                raise ExtractionError(f"{where} has no field {part!r} (it has: {keys})")
            data = data[part]
        elif isinstance(data, list) and part.lstrip("-").isdigit():
            try:
                data = data[int(part)]
            except IndexError:
                raise ExtractionError(f"index {part} is out of range") from None
        else:
            raise ExtractionError(f"cannot take {part!r} of a {type(data).__name__}")
    return data


def json_field(path: str) -> Extractor[Any]:
    """A field of the JSON object in the reply (found as :func:`find_json` does), by a
    dotted path (``"answer"``, ``"result.value"``, ``"items.0"``).

    >>> json_field("answer")('The result: {"answer": 42, "why": "..."}')
    42
    """
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise ValueError(f"json_field needs a dotted path such as 'answer' or 'a.b'; got {path!r}")

    def extract_json_field(text: str) -> Any:
        return _json_path(find_json(text), parts)

    return extract_json_field


def model(output: type[M]) -> Extractor[M]:
    """The JSON object in the reply, validated into the pydantic model ``output``. A reply
    that does not validate has no answer (the validation errors are kept as the reason).

    >>> from pydantic import BaseModel
    >>> class City(BaseModel):
    ...     name: str
    >>> model(City)('{"name": "Paris"}')
    City(name='Paris')
    """

    def extract_model(text: str) -> M | None:
        data = find_json(text)
        try:
            return output.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(object)'}: {e['msg']}" for e in exc.errors()
            )
            raise ExtractionError(f"does not validate as {output.__name__}: {problems}") from None

    return extract_model


def answer(prompt: PromptBase) -> Extractor[str]:
    """The answer line that ``prompt`` asks for (``Prompt.extract_answer``: its
    ``answer_pattern``, else its ``answer_format``, e.g. ChainOfThought's
    ``"The answer is <answer>."``). The default for prompts that set either.

    >>> from promptkit import ChainOfThought
    >>> answer(ChainOfThought())("2 and 2 make 4. The answer is 4.")
    '4'
    """
    method: Callable[[str], str | None] | None = getattr(prompt, "extract_answer", None)
    if method is None:
        raise ValueError(
            f"{type(prompt).__name__} has no extract_answer(); pass an extractor such as "
            "extract.regex(...) or extract.last_line()"
        )
    return method


def default_for(prompt: PromptBase) -> Extractor[str]:
    """:func:`answer` when the prompt says how its answer line looks, else :func:`last_line`."""
    pattern = getattr(prompt, "answer_pattern", None)
    fmt = getattr(prompt, "answer_format", None)
    if pattern or (isinstance(fmt, str) and "<answer>" in fmt):
        return answer(prompt)
    return last_line()


def apply(extractor: Extractor[T], text: str) -> tuple[T | None, str | None]:
    """Run an extractor: ``(answer, None)``, or ``(None, reason)`` when there is none."""
    try:
        got = extractor(text)
    except ValueError as exc:
        return None, str(exc) or type(exc).__name__
    if got is None:
        return None, "no answer found in the reply"
    if isinstance(got, str) and not got.strip():
        return None, "the extracted answer is empty"
    return got, None
