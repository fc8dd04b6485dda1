"""Content parts: the images, audio and documents a message can carry besides text.

``Message.content`` is either a ``str`` (the fast, common case) or a tuple of parts:
:class:`TextPart`, :class:`ImagePart`, :class:`AudioPart`, :class:`FilePart`. Build media
parts with the public constructors :func:`Image`, :func:`Audio` and :func:`File`:

>>> import promptkit as pk
>>> png = bytes.fromhex("89504e470d0a1a0a") + bytes(16)
>>> img = pk.Image(png)
>>> img
ImagePart(data=<24 bytes, sha256 f731c2528f41>, media_type='image/png')
>>> pk.Message.user(["What is in this picture?", img]).content[0]
TextPart(text='What is in this picture?')

Rules:

- A URL (``http://``/``https://``) is passed through to the backend as is; promptkit never
  fetches anything. A ``data:`` URL is decoded into bytes (and checked like bytes).
- A local path is read lazily, once, on first use (building a request body or a cache key),
  and the bytes are kept. A relative path given in code is taken from the current
  directory; one written in a file (a JSON/YAML prompt file, a ``.prompty`` file, a JSONL
  dataset, an evaluation or optimisation config) is taken from that file's folder, so the
  file works wherever Python was started. Saving a prompt writes each path relative to the
  new file's folder when it lies inside it (after ``..`` is folded away), absolute
  otherwise, and a ``~/...`` path as written. An unreadable file, a
  media type that does not match the bytes, or a part over its size limit raise
  :class:`~promptkit.MediaError` naming the file (a missing one: the path tried, and what a
  relative path was taken from) and the fix.
- The media type is sniffed from the bytes' magic numbers (PNG, JPEG, GIF, WebP; WAV, MP3;
  PDF); a declared ``media_type`` that contradicts them is an error.
- Bytes are summarised in reprs (length and a hash prefix) and are never dumped into a
  repr, a log line or ``render()`` output.
- A backend that cannot take a part type raises :class:`~promptkit.UnsupportedPartError`
  before sending; a part is never dropped silently.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
)

from ._errors import MediaError, UnsupportedPartError

__all__ = [
    "FILE_FORM",
    "PART_TYPES",
    "AudioPart",
    "FilePart",
    "ImagePart",
    "MAX_AUDIO_BYTES",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_BYTES",
    "Part",
    "TextPart",
    "Audio",
    "File",
    "Image",
    "check_parts",
    "content_text",
    "describe_content",
]

#: Default size limits (bytes): OpenAI's documented per-image limit is 20 MB, its audio
#: uploads 25 MB, and its file inputs 32 MB. Override per part with ``max_bytes=``.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_AUDIO_BYTES = 25 * 1024 * 1024
MAX_FILE_BYTES = 32 * 1024 * 1024

#: Serialization context key of prompt files: media parts leave out their ``None`` fields.
#: Other JSON dumps keep them (batch journals hash inputs and prompts in that form).
FILE_FORM = "promptkit_file_form"

_READ_LOCK = threading.Lock()
#: While a file is read: (its folder, what to call the file); relative media paths in it
#: are taken from that folder (see :func:`paths_from`).
_FILE_BASE: ContextVar[tuple[Path, str] | None] = ContextVar("_FILE_BASE", default=None)
#: While a prompt is saved: the new file's folder (see :func:`paths_saved_to`).
_SAVE_DIR: ContextVar[Path | None] = ContextVar("_SAVE_DIR", default=None)
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def sniff(data: bytes) -> str | None:
    """The media type the bytes' magic numbers say, or ``None`` when they say nothing known.

    >>> sniff(b"GIF89a...")
    'image/gif'
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


_ALIASES = {"image/jpg": "image/jpeg", "audio/x-wav": "audio/wav", "audio/wave": "audio/wav",
            "audio/mp3": "audio/mpeg"}


def _norm(media_type: str) -> str:
    mt = media_type.strip().lower()
    return _ALIASES.get(mt, mt)


def _summary(data: bytes) -> str:
    return f"<{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}>"


class TextPart(BaseModel):
    """A run of text inside a message with other parts.

    >>> TextPart(text="Describe:")
    TextPart(text='Describe:')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["text"] = "text"
    text: str

    def __repr__(self) -> str:
        return f"TextPart(text={self.text!r})"

    @model_serializer(mode="wrap")
    def _with_type(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {"type": "text", **handler(self)}  # "type" kept even without defaults

    __str__ = __repr__


class _Media(BaseModel):
    """Shared behaviour of the binary parts: one of ``url``/``path``/``data``, lazy reads,
    sniffing, size limits, summarised reprs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = None
    path: Path | None = None
    data: bytes | None = Field(default=None, repr=False)
    media_type: str | None = None
    max_bytes: int | None = None

    _bytes: bytes | None = PrivateAttr(default=None)
    #: A path written relative in a file: (as written, the file, the folder it is taken from)
    _written: tuple[str, str, Path] | None = PrivateAttr(default=None)
    _kind: ClassVar[str] = "file"
    _default_limit: ClassVar[int] = MAX_FILE_BYTES

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                cause = (err.get("ctx") or {}).get("error")
                if isinstance(cause, MediaError):
                    raise cause from None
                loc = ".".join(str(x) for x in err["loc"])
                problems.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
            raise MediaError(
                f"Invalid {type(self).__name__}: " + "; ".join(problems) + "."
            ) from None

    @field_validator("data", mode="before")
    @classmethod
    def _b64(cls, value: Any) -> Any:
        # JSON/YAML files hold the bytes as base64 text (see model_dump(mode="json"))
        if isinstance(value, str):
            try:  # standard base64, or the URL-safe alphabet
                return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                raise MediaError("data= given as text must be base64.") from None
        return value

    @field_serializer("path", when_used="json-unless-none")
    def _path_saved(self, value: Path) -> str:
        folder = _SAVE_DIR.get()
        if folder is None or home_relative(value):
            return str(value)  # ~/... stays as written: portable between machines
        # a relative path given in code is the cwd's; normalised so that "a/../b" cannot
        # pass for a path inside the folder (lexically: symlinks are not followed)
        full = Path(os.path.normpath(Path.cwd() / value))
        try:
            return full.relative_to(folder).as_posix()  # beside the file: stays portable
        except ValueError:
            return str(full)

    @field_serializer("data", when_used="json-unless-none")
    def _data_b64(self, value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    @model_serializer(mode="wrap")
    def _with_type(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if (info.context or {}).get(FILE_FORM):  # a prompt file: the sources not given left out
            out = {k: v for k, v in out.items() if v is not None}
        return {"type": self.type, **out}  # type: ignore[attr-defined]

    def model_post_init(self, context: Any, /) -> None:
        given = [n for n in ("url", "path", "data") if getattr(self, n) is not None]
        if len(given) != 1:
            raise MediaError(
                f"A {self._kind} part takes exactly one of url=, path= or data= "
                f"(got {', '.join(given) or 'none'})."
            )
        if self.data is not None:
            object.__setattr__(self, "media_type", self._checked(self.data, "the bytes given"))
            self._bytes = self.data
        origin = _FILE_BASE.get()  # inside paths_from(): a relative path is the file's
        path = self.path
        if (origin is not None and path is not None and not path.is_absolute()
                and not home_relative(path)):  # ~/... is the home folder's, not the file's
            folder, where = origin
            self._written = (str(path), where, folder)
            object.__setattr__(self, "path", folder / path)

    # ------------------------------------------------------------------ bytes

    def _limit(self) -> int:
        return self.max_bytes if self.max_bytes is not None else self._default_limit

    def _allowed(self, media_type: str) -> bool:
        return True

    def _checked(self, data: bytes, where: str) -> str:
        """Size and media-type checks; returns the media type to use."""
        limit = self._limit()
        if len(data) > limit:
            raise MediaError(
                f"The {self._kind} from {where} is {len(data):,} bytes, over the limit of "
                f"{limit:,}: shrink or compress it, or pass max_bytes= if the backend takes more."
            )
        found = sniff(data)
        declared = _norm(self.media_type) if self.media_type else None
        if declared and found and declared != found:
            raise MediaError(
                f"The {self._kind} from {where} was declared {declared!r} but its bytes are "
                f"{found!r}: fix media_type= (or leave it out to use what the bytes say)."
            )
        media_type = declared or found
        if media_type is None and self.path is not None:
            media_type = mimetypes.guess_type(self.path.name)[0]
        if media_type is None:
            raise MediaError(
                f"Cannot tell the media type of the {self._kind} from {where}: pass media_type=."
            )
        if not self._allowed(media_type):
            raise MediaError(
                f"The {self._kind} from {where} is {media_type!r}, which is not an accepted "
                f"{self._kind} type: use {self._accepted()}."
            )
        return media_type

    def _accepted(self) -> str:
        return "any type"

    def read(self) -> bytes:
        """The part's bytes: a local file is read on first call, once, and checked.

        Raises :class:`~promptkit.MediaError` for a URL part (promptkit fetches nothing).
        """
        if self._bytes is not None:
            return self._bytes
        if self.path is None:
            raise MediaError(
                f"This {self._kind} is a URL ({self.url}); promptkit does not fetch URLs. "
                "Pass the bytes or a local path for a backend that needs inline data."
            )
        with _READ_LOCK:  # concurrent requests sharing a part read its file once
            if self._bytes is not None:
                return self._bytes
            return self._read_file(self.path)

    def _read_file(self, path: Path) -> bytes:
        try:
            data = expand_path(path).read_bytes()
        except OSError as exc:
            raise MediaError(
                f"Cannot read the {self._kind} file {self._whence(path)}: "
                f"{exc.strerror or exc}. Check the path: a relative path written in a file is "
                "taken from that file's folder, one given in code from the current directory."
            ) from None
        mt = self._checked(data, f"file {str(self.path)!r}")
        if self.media_type != mt:
            object.__setattr__(self, "media_type", mt)
        self._bytes = data
        return data

    def _whence(self, path: Path) -> str:
        """The path read, and what a relative one was taken from."""
        if self._written is not None:
            written, where, folder = self._written
            return f"{str(path)!r} ({written!r} in {where}, taken from {str(folder)!r})"
        full = expand_path(path)
        if full.is_absolute():
            return repr(str(full))
        return (f"{str(Path.cwd() / full)!r} ({str(path)!r} given in code, taken from the "
                "current directory)")

    def resolved_media_type(self) -> str | None:
        """The media type (reads a local file first); ``None`` for a URL without one."""
        if self.url is None:
            self.read()
        return _norm(self.media_type) if self.media_type else None

    def b64(self) -> str:
        """The bytes, base64-encoded."""
        return base64.b64encode(self.read()).decode("ascii")

    def data_url(self) -> str:
        """The URL as sent: a pass-through URL, or a ``data:`` URL of the bytes."""
        if self.url is not None:
            return self.url
        data = self.b64()
        return f"data:{self.media_type};base64,{data}"

    def digest(self) -> str:
        """What identifies the content in a cache key: sha256 of the bytes (never the
        path), or the URL itself."""
        if self.url is not None:
            return "url:" + self.url
        return "sha256:" + hashlib.sha256(self.read()).hexdigest()

    def source(self) -> str:
        """A short legible description of where the content is (for reprs and render())."""
        if self.url is not None:
            return f"url={self.url!r}"
        if self.path is not None:
            return f"path={str(self.path)!r}"
        assert self._bytes is not None
        return f"data={_summary(self._bytes)}"

    def __repr__(self) -> str:
        extra = [self.source()]
        if self.media_type:
            extra.append(f"media_type={self.media_type!r}")
        extra += self._repr_extra()
        return f"{type(self).__name__}({', '.join(extra)})"

    def _repr_extra(self) -> list[str]:
        return []

    __str__ = __repr__

    def _identity(self) -> tuple[Any, ...]:
        # the source and the options; not media_type/format, which a lazy read fills in
        return (type(self).__name__, self.url, self.path, self.data, self.max_bytes,
                getattr(self, "detail", None), getattr(self, "filename", None))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Media)
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())


class ImagePart(_Media):
    """An image: a URL passed through, a local path read lazily, or bytes.

    ``detail`` (``"auto"``, ``"low"``, ``"high"``) is OpenAI's resolution hint.

    >>> ImagePart(url="https://example.com/cat.png", detail="low")
    ImagePart(url='https://example.com/cat.png', detail='low')
    """

    type: Literal["image"] = "image"
    detail: Literal["auto", "low", "high"] | None = None
    _kind: ClassVar[str] = "image"
    _default_limit: ClassVar[int] = MAX_IMAGE_BYTES

    def _allowed(self, media_type: str) -> bool:
        return media_type.startswith("image/")

    def _accepted(self) -> str:
        return ", ".join(_IMAGE_TYPES)

    def _repr_extra(self) -> list[str]:
        return [f"detail={self.detail!r}"] if self.detail else []


class AudioPart(_Media):
    """A clip of audio from bytes or a local path; ``format`` is ``"wav"`` or ``"mp3"``
    (sniffed from the bytes when left out).

    >>> wav = b"RIFF" + bytes(4) + b"WAVEfmt " + bytes(8)
    >>> AudioPart(data=wav).format
    'wav'
    """

    type: Literal["audio"] = "audio"
    format: Literal["wav", "mp3"] | None = None
    _kind: ClassVar[str] = "audio clip"
    _default_limit: ClassVar[int] = MAX_AUDIO_BYTES

    def model_post_init(self, context: Any, /) -> None:
        if self.url is not None:
            raise MediaError(
                "An audio part takes bytes or a local path, not a URL (the chat APIs take "
                "audio inline): download it yourself and pass data= or path=."
            )
        if self.format is not None and self.media_type is None:
            object.__setattr__(self, "media_type", _AUDIO_FORMATS[self.format])
        super().model_post_init(context)
        if self.data is not None:
            self._set_format()

    def _set_format(self) -> None:
        fmt = {v: k for k, v in _AUDIO_FORMATS.items()}.get(_norm(self.media_type or ""))
        if self.format is None and fmt is not None:
            object.__setattr__(self, "format", fmt)

    def read(self) -> bytes:
        data = super().read()
        self._set_format()
        return data

    def _allowed(self, media_type: str) -> bool:
        return media_type in _AUDIO_FORMATS.values()

    def _accepted(self) -> str:
        return "WAV or MP3"

    def _repr_extra(self) -> list[str]:
        return [f"format={self.format!r}"] if self.format and not self.media_type else []


class FilePart(_Media):
    """A document (a PDF, say) for backends that take one (OpenAI's ``file`` part).

    >>> FilePart(data=b"%PDF-1.7 ...", filename="receipt.pdf").media_type
    'application/pdf'
    """

    type: Literal["file"] = "file"
    filename: str | None = None

    def _repr_extra(self) -> list[str]:
        return [f"filename={self.filename!r}"] if self.filename else []

    def name(self) -> str:
        """The filename sent: ``filename=``, else the path's name, else ``"document"``."""
        if self.filename:
            return self.filename
        return self.path.name if self.path is not None else "document"


Part = Annotated[TextPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")]
MediaPart = ImagePart | AudioPart | FilePart
_MediaT = TypeVar("_MediaT", bound=_Media)


# --------------------------------------------------------------------------- constructors


def _split_source(source: str | Path | bytes, media_type: str | None) -> dict[str, Any]:
    if isinstance(source, bytes | bytearray | memoryview):
        return {"data": bytes(source), "media_type": media_type}
    if isinstance(source, Path):
        return {"path": source, "media_type": media_type}
    if not isinstance(source, str):
        raise MediaError(
            f"A media source is a URL, a local path or bytes; got {type(source).__name__}."
        )
    low = source[:8].lower()
    if low.startswith("data:"):
        head, sep, payload = source.partition(",")
        if not sep or ";base64" not in head:
            raise MediaError("A data: URL must be base64 (data:<type>;base64,<data>).")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise MediaError("The data: URL's payload is not valid base64.") from None
        declared = head[5:].split(";")[0] or None
        return {"data": data, "media_type": media_type or declared}
    if low.startswith(("http://", "https://")):
        return {"url": source, "media_type": media_type}
    return {"path": Path(source), "media_type": media_type}


def Image(
    source: str | Path | bytes,
    *,
    media_type: str | None = None,
    detail: Literal["auto", "low", "high"] | None = None,
    max_bytes: int | None = None,
) -> ImagePart:
    """An image part from a URL (passed through), a ``data:`` URL, a local path or bytes.

    >>> Image("https://example.com/receipt.jpg", detail="high")
    ImagePart(url='https://example.com/receipt.jpg', detail='high')
    >>> Image("photos/cat.png")  # read lazily, when first sent
    ImagePart(path='photos/cat.png')
    """
    return ImagePart(**_split_source(source, media_type), detail=detail, max_bytes=max_bytes)


def Audio(
    source: str | Path | bytes,
    *,
    format: Literal["wav", "mp3"] | None = None,
    max_bytes: int | None = None,
) -> AudioPart:
    """An audio part from a local path or bytes (WAV or MP3; ``format`` sniffed if left out).

    >>> Audio("memo.wav")
    AudioPart(path='memo.wav')
    """
    fields = _split_source(source, None)
    if "url" in fields:
        fields = {"url": fields["url"]}
    return AudioPart(**fields, format=format, max_bytes=max_bytes)


def File(
    source: str | Path | bytes,
    *,
    media_type: str | None = None,
    filename: str | None = None,
    max_bytes: int | None = None,
) -> FilePart:
    """A document part (PDF, ...) from a local path or bytes.

    >>> File(b"%PDF-1.4 ...", filename="invoice.pdf").media_type
    'application/pdf'
    """
    return FilePart(**_split_source(source, media_type), filename=filename, max_bytes=max_bytes)


# --------------------------------------------------------------------------- helpers


def home_relative(path: str | Path) -> bool:
    """Whether ``path`` starts with ``~`` or ``~user`` (a home folder, not a relative path).

    >>> home_relative("~/pics/a.png"), home_relative("pics/~a.png")
    (True, False)
    """
    return str(path).startswith("~")


def expand_path(path: str | Path) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded to that home folder.

    Raises :class:`~promptkit.MediaError` naming the path when the home folder is unknown
    (no such user, or no home for the current one) instead of ``Path.expanduser``'s
    ``RuntimeError``.

    >>> expand_path("/data/a.png").as_posix()
    '/data/a.png'
    """
    p = Path(path)
    try:
        return p.expanduser()
    except RuntimeError as exc:
        raise MediaError(
            f"Cannot expand the path {str(p)!r}: {str(exc).rstrip('.')}. A path starting "
            "with '~name' is the home folder of the user 'name'; write the path in full (or "
            "~/... for your own home folder)."
        ) from None


def written_in(part: _MediaT, written: str, where: str, folder: Path) -> _MediaT:
    """``part`` (built from a checked full path) noted as written ``written`` in the file
    ``where`` and taken from ``folder``, so that its errors name the reference as written."""
    part._written = (written, where, folder)
    return part


@contextmanager
def paths_from(folder: str | Path, where: str) -> Iterator[None]:
    """Within the block, media parts built with a relative path take it from ``folder``
    (the folder of the file ``where`` being loaded) instead of the current directory.

    >>> with paths_from("/data/prompts", "/data/prompts/p.yaml"):
    ...     part = Image("img.png")
    >>> part.path.as_posix()
    '/data/prompts/img.png'
    """
    token = _FILE_BASE.set((expand_path(folder).resolve(), where))
    try:
        yield
    finally:
        _FILE_BASE.reset(token)


@contextmanager
def paths_saved_to(folder: str | Path) -> Iterator[None]:
    """Within the block, media paths serialise (``model_dump(mode="json")``) as a file in
    ``folder`` must write them to reach the same file: relative to ``folder`` when inside
    it, absolute otherwise."""
    token = _SAVE_DIR.set(expand_path(folder).resolve())
    try:
        yield
    finally:
        _SAVE_DIR.reset(token)


def as_parts(items: Iterable[Any]) -> tuple[Any, ...]:
    """A content list as parts: ``str`` items become :class:`TextPart`; parts stay."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            out.append(TextPart(text=item))
        else:
            out.append(item)
    return tuple(out)


def content_text(content: str | tuple[Any, ...]) -> str:
    """The text of a content: the string itself, or the text parts joined by newlines.

    >>> content_text(("a", ))
    'a'
    """
    if isinstance(content, str):
        return content
    return "\n".join(p.text if isinstance(p, TextPart) else p for p in content
                     if isinstance(p, TextPart | str))


def describe_content(content: str | tuple[Any, ...]) -> str:
    """A legible one-string view of a content: text as is, media as ``[image: ...]``.

    >>> describe_content((TextPart(text="Look:"), ImagePart(url="https://x.test/a.png")))
    "Look:\\n[image url='https://x.test/a.png']"
    """
    if isinstance(content, str):
        return content
    out = []
    for p in content:
        if isinstance(p, TextPart):
            out.append(p.text)
        else:
            label = repr(p).split("(", 1)[1][:-1]
            out.append(f"[{p.type} {label}]")
    return "\n".join(out)


def check_parts(
    content: str | tuple[Any, ...], accepted: frozenset[str], backend: str, hint: str = ""
) -> None:
    """Raise :class:`~promptkit.UnsupportedPartError` for the first part whose type is not
    in ``accepted`` (a no-op for ``str`` content)."""
    if isinstance(content, str):
        return
    for p in content:
        if p.type not in accepted:
            raise UnsupportedPartError(
                f"{backend} does not take {p.type} parts in a message"
                + (f": {hint}" if hint else
                   f" (it takes: {', '.join(sorted(accepted))}). Use a backend that does, or "
                   f"leave the {p.type} out.")
                , part_type=p.type, backend=backend,
            )


def openai_parts(content: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Parts in the OpenAI chat form: ``text``, ``image_url`` (an http(s) URL passed
    through or a ``data:`` URL), ``input_audio`` (base64 + format), ``file`` (``file_data``
    as a data: URL + ``filename``)."""
    out: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, TextPart):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            image: dict[str, Any] = {"url": p.data_url()}
            if p.detail:
                image["detail"] = p.detail
            out.append({"type": "image_url", "image_url": image})
        elif isinstance(p, AudioPart):
            data = p.b64()
            out.append({"type": "input_audio", "input_audio": {"data": data, "format": p.format}})
        elif isinstance(p, FilePart):
            if p.url is not None:
                raise UnsupportedPartError(
                    "OpenAI's file part takes inline data, not a URL: pass the document's "
                    "bytes or a local path.", part_type="file", backend="openai",
                )
            data_url = p.data_url()
            out.append({"type": "file", "file": {"filename": p.name(), "file_data": data_url}})
        else:  # pragma: no cover - the Part union is closed
            raise UnsupportedPartError(f"Unknown content part {p!r}.")
    return out


def key_form(content: str | tuple[Any, ...]) -> Any:
    """A content as it enters a cache key: text as is; a media part by the hash of its
    bytes (never its path, so a moved file keeps its key and an edited one does not)."""
    if isinstance(content, str):
        return content
    out: list[Any] = []
    for p in content:
        if isinstance(p, TextPart):
            out.append(["text", p.text])
        else:
            extra = [getattr(p, "detail", None), getattr(p, "format", None),
                     getattr(p, "filename", None)]
            out.append([p.type, p.digest(), p.resolved_media_type(), extra])
    return out


def telemetry_parts(content: str | tuple[Any, ...]) -> list[dict[str, Any]]:
    """OpenTelemetry GenAI message parts: text, ``uri`` for a URL, and ``blob`` summarised
    (media type, size, sha256; the bytes themselves are never put in a trace)."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    out: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, TextPart):
            out.append({"type": "text", "content": p.text})
        elif p.url is not None:
            out.append({"type": "uri", "modality": p.type, "uri": p.url})
        else:
            data = p.read()
            out.append({"type": "blob", "modality": p.type, "mime_type": p.media_type,
                        "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return out


#: The part class of each ``"type"`` a part object names (prompt files, datasets, batches).
PART_TYPES: dict[str, type[_Media]] = {"image": ImagePart, "audio": AudioPart, "file": FilePart}


def media_from_value(value: Any) -> Any:
    """A dict that describes a media part (``{"type": "image", "path": ...}``, as prompt
    files, datasets and batch inputs hold them) as that part; anything else unchanged."""
    if isinstance(value, dict) and value.get("type") in PART_TYPES:
        return PART_TYPES[value["type"]](**value)
    if isinstance(value, list) and value and all(
        isinstance(v, dict) and v.get("type") in PART_TYPES for v in value
    ):
        return [PART_TYPES[v["type"]](**v) for v in value]
    return value
