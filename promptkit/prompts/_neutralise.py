"""The hook that neutralises untrusted values before they are rendered.

Untrusted values are the ``delimit`` variables, the template variables named in
``untrusted=[...]``, and documents (text and title); see :mod:`promptkit._untrusted` for
the transform. Trusted text (role, instruction, examples, templates) is never altered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import PromptError
from .._untrusted import neutralise
from ._parts import Document

__all__ = ["neutralise_values"]


def neutralise_values(
    variables: dict[str, Any],
    documents: Sequence[Document],
    *,
    delimit: Sequence[str],
    untrusted: Sequence[str],
    special_tokens: Sequence[str] | None,
    label: str,
) -> list[Document]:
    """Neutralise the untrusted values in ``variables`` (in place) and ``documents``;
    returns the documents to render. An ``untrusted`` variable that is not a str is an
    error (it could not be checked)."""
    tokens = special_tokens
    for name in (*delimit, *untrusted):
        value = variables.get(name)
        if isinstance(value, str):
            variables[name] = neutralise(value, tokens)
        elif value is not None and name in untrusted and not _is_media(value):
            raise PromptError(
                f"{label}: untrusted variable {name!r} must be a str, got "
                f"{type(value).__name__}; convert it first."
            )
    out = []
    for doc in documents:
        text = neutralise(doc.text, tokens)
        title = neutralise(doc.title, tokens) if doc.title else doc.title
        if text != doc.text or title != doc.title:
            doc = doc.model_copy(update={"text": text, "title": title})
        out.append(doc)
    return out


def _is_media(value: Any) -> bool:
    """An image/audio/file value (or a list of them): no text to neutralise, it becomes a
    part of its own (see :mod:`._media_vars`)."""
    from .._media import AudioPart, FilePart, ImagePart

    kinds = (ImagePart, AudioPart, FilePart)
    if isinstance(value, list | tuple):
        return bool(value) and all(isinstance(v, kinds) for v in value)
    return isinstance(value, kinds)
