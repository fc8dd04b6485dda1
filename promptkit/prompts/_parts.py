"""The parts a prompt is built from: examples, documents, perspectives (and the checks
on documents and history passed at render time).

>>> Example(input="I loved it", output="positive").output
'positive'
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from .._errors import PromptError
from .._media import AudioPart, FilePart, ImagePart, media_from_value
from .._types import Message, StrictModel

__all__ = ["Document", "Example", "Perspective"]

_DOC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/#-]{0,127}$")


def single_line(value: str, what: str) -> str:
    """``value``, or a ValueError when it spans lines (it is shown in a heading or marker)."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"{what} must be one line (it is shown in a heading or marker)")
    return value


class Example(StrictModel):
    """One few-shot example. ``input`` is a string, or a dict of the template's variables.

    >>> Example(input="I loved it", output="positive")
    Example(input='I loved it', output='positive', rationale=None)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: str | dict[str, Any]
    output: str
    rationale: str | None = None


class Document(StrictModel):
    """A retrieved document: ``id`` is what the model cites, in square brackets.

    >>> Document(id="kb-12", text="Refunds take 5 days.").id
    'kb-12'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    text: str
    title: str | None = None
    #: Images, audio or files that belong to the document (a scanned page, a chart): sent
    #: as parts right after its text, inside its delimited section.
    media: tuple[ImagePart | AudioPart | FilePart, ...] = ()

    @field_validator("media", mode="before")
    @classmethod
    def _media_parts(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(media_from_value(v) for v in value)
        return value

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not _DOC_ID.match(v):
            raise ValueError(
                "a document id is 1-128 letters, digits or _ . : / # - starting with a letter "
                f"or digit (it is cited as [id]); got {v!r}"
            )
        return v

    @field_validator("title")
    @classmethod
    def _check_title(cls, v: str | None) -> str | None:
        return None if v is None else single_line(v, "a document title")


class Perspective(StrictModel):
    """A named viewpoint for :class:`~promptkit.Perspectives`; a plain string is accepted
    as the name.

    >>> Perspective(name="Economist").name
    'Economist'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        return single_line(v, "a perspective name")


def coerce_documents(v: Any) -> Any:
    """Plain strings in a list of documents become ``{"id": "docN", "text": ...}``."""
    if isinstance(v, (list, tuple)):
        out = []
        for i, d in enumerate(v):
            if isinstance(d, str):
                out.append({"id": f"doc{i + 1}", "text": d})
            else:
                out.append(d)
        return out
    return v


def validate_documents(value: Any, label: str) -> list[Document]:
    """Documents passed to ``render(documents=...)``, checked (ids unique)."""
    try:
        docs = [
            d if isinstance(d, Document) else Document.model_validate(d)
            for d in coerce_documents(list(value))
        ]
    except (ValidationError, TypeError) as exc:
        raise PromptError(f"{label}: documents are invalid: {exc}") from None
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise PromptError(f"{label}: document ids must be unique, got {ids}.")
    return docs


def validate_history(value: Any, label: str) -> list[Message]:
    """History passed to ``render(history=...)``, checked (no system messages)."""
    try:
        msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in value]
    except (ValidationError, TypeError) as exc:
        raise PromptError(f"{label}: history is invalid: {exc}") from None
    if any(m.role == "system" for m in msgs):
        raise PromptError(
            f"{label}: history may not hold system messages; put them in role/instruction."
        )
    return msgs
