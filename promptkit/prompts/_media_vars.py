"""Images, audio and files as template variables: where a part goes in a message.

The rule: **a variable whose value is a media part (``pk.Image(...)``, ``pk.Audio(...)``,
``pk.File(...)``), or a list of them, becomes a part of the user message exactly where
the template writes it**; the template's text around it becomes text parts. Nothing else
changes: the text is rendered, delimited and neutralised as before.

>>> import promptkit as pk
>>> p = pk.Prompt(template="Describe {{ photo }} in the style of {{ poet }}.")
>>> png = bytes.fromhex("89504e470d0a1a0a") + bytes(16)
>>> for part in p.render(photo=pk.Image(png), poet="Basho")[-1].content:
...     print(part)
TextPart(text='Describe ')
ImagePart(data=<24 bytes, sha256 f731c2528f41>, media_type='image/png')
TextPart(text=' in the style of Basho.')

- Write the variable alone, ``{{ photo }}`` (no filter: ``{{ photo | upper }}`` is an
  error naming it). A list renders its parts in order: ``{{ photos }}``, or
  ``{% for p in photos %}Page {{ loop.index }}: {{ p }}{% endfor %}``.
- Media belong to user messages: an instruction (system message) or inline examples
  (``examples_layout="inline"``) that use one raise :class:`~promptkit.PromptError`.
- Few-shot examples take media the same way (``Example(input={"photo": pk.Image(...)},
  output=...)``); history messages carry their parts as they are.
- How it works: each media value is swapped for a marker no text can forge (it holds a
  random per-process nonce), the template is rendered as usual, then the user message is
  split at the markers. Prompts without media values skip all of it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from .._errors import PromptError
from .._media import AudioPart, FilePart, ImagePart, TextPart

__all__ = ["attach_document_media", "has_marker", "split_media", "swap_media"]

_MEDIA = (ImagePart, AudioPart, FilePart)
_CANDIDATES = (ImagePart, AudioPart, FilePart, list, tuple)
_NONCE = secrets.token_hex(8)
_PREFIX = f"\x1fpk-media-{_NONCE}:"
_MARK = re.compile(re.escape(_PREFIX) + r"(\d+)\x1f")


class _Parts(list[str]):
    """A list of media markers that renders as the markers one after another."""

    def __str__(self) -> str:
        return "".join(self)


def swap_media(
    variables: Mapping[str, Any], table: list[Any]
) -> tuple[dict[str, Any], dict[str, list[int]]] | None:
    """``variables`` with each media value (or list of them) swapped for its markers, and
    which marker indices each variable got; ``None`` when there is no media value (the
    fast path: the caller keeps its dict). ``table`` collects the parts, by index."""
    for value in variables.values():
        # str first: pydantic's isinstance checks are slow, and most values are text
        if type(value) is not str and isinstance(value, _CANDIDATES):
            break
    else:
        return None  # the fast path
    out: dict[str, Any] | None = None
    names: dict[str, list[int]] = {}
    for name, value in variables.items():
        if isinstance(value, _MEDIA):
            marker: Any = _marker(value, table)
        elif (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(v, _MEDIA) for v in value)
        ):
            marker = _Parts(_marker(v, table) for v in value)
        else:
            continue
        if out is None:
            out = dict(variables)
        out[name] = marker
        first = len(table) - (len(marker) if isinstance(marker, _Parts) else 1)
        names[name] = list(range(first, len(table)))
    return None if out is None else (out, names)


def _marker(part: Any, table: list[Any]) -> str:
    table.append(part)
    return f"{_PREFIX}{len(table) - 1}\x1f"


def has_marker(text: str) -> bool:
    """Whether ``text`` holds a media marker."""
    return _PREFIX in text


def split_media(
    text: str, table: list[Any], names: Mapping[str, list[int]], label: str
) -> str | tuple[Any, ...]:
    """The user message ``text`` split at its markers into text and media parts. Every
    media variable must appear (written as ``{{ name }}``, without a filter)."""
    pieces = _MARK.split(text)
    parts: list[Any] = []
    seen: set[int] = set()
    for i, piece in enumerate(pieces):
        if i % 2:
            index = int(piece)
            seen.add(index)
            parts.append(table[index])
        elif piece:
            parts.append(TextPart(text=piece))
    missing = [n for n, idx in names.items() if not set(idx) <= seen]
    if missing:
        raise PromptError(
            f"{label}: media variable(s) {', '.join(repr(n) for n in missing)} do not appear "
            "in the user message: write each as {{ name }} in the template (not in the "
            "instruction, and without a filter)."
        )
    return tuple(parts)


def refuse_in_text(text: str, where: str, label: str) -> None:
    """Raise when a media marker landed in a text that cannot hold parts."""
    if _PREFIX in text:
        raise PromptError(
            f"{label}: an image, audio or file variable is used in {where}, which is text "
            "only; place it in the template (the user message)."
        )


def attach_document_media(
    documents: list[Any], table: list[Any]
) -> tuple[list[Any], dict[str, list[int]]]:
    """Documents whose ``media`` are appended to their text as markers (so each part lands
    inside its document's section), and the marker indices per document."""
    out, names = [], {}
    for doc in documents:
        if doc.media:
            first = len(table)
            marks = "".join(_marker(part, table) for part in doc.media)
            doc = doc.model_copy(update={"text": f"{doc.text}\n{marks}"})
            names[f"document {doc.id}"] = list(range(first, len(table)))
        out.append(doc)
    return out, names
