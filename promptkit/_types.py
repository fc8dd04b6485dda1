"""The data every layer shares: messages, requests, stream deltas, completions, embeddings.

A prompt renders to :class:`Message` objects; the client turns them into a :class:`Request`
for a backend; a backend answers with a :class:`Completion` (or streams :class:`Delta`
pieces, or returns :class:`Embeddings`). Nothing here sends anything.

>>> Message.user("Hi").to_dict()
{'role': 'user', 'content': 'Hi'}
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ._errors import InvalidPromptError, ToolArgumentsError
from ._media import Part, as_parts, content_text

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Choice",
    "Completion",
    "Delta",
    "Embeddings",
    "Message",
    "Request",
    "Role_",
    "StrictModel",
    "TokenLogprob",
    "ToolCall",
    "Usage",
]

# --------------------------------------------------------------------------- messages


def invalid(what: str, exc: ValidationError) -> InvalidPromptError:
    """pydantic's errors as one promptkit error naming each field and the problem."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return InvalidPromptError(
        f"Invalid {what}: " + "; ".join(lines) + ".", errors=[dict(e) for e in exc.errors()]
    )


class StrictModel(BaseModel):
    """A pydantic model whose validation errors are promptkit errors."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise invalid(type(self).__name__, exc) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        """Validate ``obj`` into this model; errors are :class:`~promptkit.InvalidPromptError`."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise invalid(cls.__name__, exc) from None


Role_ = Literal["system", "user", "assistant", "tool"]


class ToolCall(StrictModel):
    """One tool call the model asked for: its ``id`` (echoed back by the result message),
    the tool's ``name`` and its arguments, kept exactly as the model wrote them
    (``raw_arguments``) and parsed on demand (:attr:`arguments`).

    >>> call = ToolCall(id="call_1", name="add", arguments={"a": 1, "b": 2})
    >>> call.raw_arguments, call.arguments
    ('{"a": 1, "b": 2}', {'a': 1, 'b': 2})

    A malformed arguments string never fails here: reading :attr:`arguments` raises
    :class:`~promptkit.ToolArgumentsError`, which carries the raw text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = ""
    name: str
    raw_arguments: str = "{}"

    @model_validator(mode="before")
    @classmethod
    def _object_arguments(cls, data: Any) -> Any:
        if isinstance(data, dict) and "arguments" in data:
            data = dict(data)
            args = data.pop("arguments")
            data["raw_arguments"] = args if isinstance(args, str) else json.dumps(args)
        return data

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments as a JSON object (raises :class:`~promptkit.ToolArgumentsError`
        when ``raw_arguments`` is not one; an empty string counts as ``{}``)."""
        if not self.raw_arguments.strip():
            return {}
        try:
            value = json.loads(self.raw_arguments)
        except ValueError as exc:
            raise ToolArgumentsError(
                f"The arguments of the call to tool {self.name!r} are not valid JSON ({exc}); "
                "the model wrote them badly: feed the error back or retry.",
                tool=self.name,
                raw=self.raw_arguments,
                call_id=self.id or None,
            ) from None
        if not isinstance(value, dict):
            raise ToolArgumentsError(
                f"The arguments of the call to tool {self.name!r} are "
                f"{type(value).__name__}, not a JSON object.",
                tool=self.name,
                raw=self.raw_arguments,
                call_id=self.id or None,
            )
        return value

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``{"id", "name", "arguments"}``, arguments as the raw text)."""
        return {"id": self.id, "name": self.name, "arguments": self.raw_arguments}


class Message(StrictModel):
    """One chat message.

    >>> Message(role="user", content="Hi")
    Message(role='user', content='Hi')
    >>> Message(role="user", content="Hi").to_dict()
    {'role': 'user', 'content': 'Hi'}
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role_
    #: Text (the common, fast case) or a tuple of content parts (text, images, audio,
    #: files: see :mod:`promptkit._media`). A list is accepted; ``str`` items in it become
    #: :class:`~promptkit.TextPart`.
    content: str | tuple[Part, ...]
    #: On an assistant message: the tool calls it made (its ``content`` may be empty).
    tool_calls: tuple[ToolCall, ...] | None = None
    #: On a ``tool`` message: the id of the call whose result this is.
    tool_call_id: str | None = None
    #: On a ``tool`` message: the tool's name (Ollama's ``tool_name``).
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _parts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list | tuple):
            return as_parts(value)
        return value

    @model_validator(mode="after")
    def _tool_fields(self) -> Message:
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("tool_calls: only an assistant message makes tool calls")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("tool_call_id: a tool message needs the id of the call it answers")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError("tool_call_id: only a tool message answers a tool call")
        return self

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            if value is not None or key in ("role", "content"):
                yield key, value

    @property
    def text(self) -> str:
        """The text of the message: ``content`` itself, or its text parts joined by
        newlines (media parts left out)."""
        return content_text(self.content)

    @property
    def has_media(self) -> bool:
        """True when the content holds an image, audio or file part."""
        return not isinstance(self.content, str) and any(
            p.type != "text" for p in self.content
        )

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire form, ``{"role": ..., "content": ...}`` (parts as OpenAI content
        parts, bytes inlined as base64), plus the tool fields that are set (``tool_calls``
        as ``{"id", "name", "arguments"}`` dicts)."""
        if isinstance(self.content, str):
            out: dict[str, Any] = {"role": self.role, "content": self.content}
        else:
            from ._media import openai_parts

            out = {"role": self.role, "content": openai_parts(self.content)}
        out.update(tool_fields_dict(self))
        return out

    @classmethod
    def system(cls, content: str) -> Message:
        """A system message."""
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str | Sequence[Any]) -> Message:
        """A user message: text, or a list of text and parts.

        >>> import promptkit as pk
        >>> Message.user(["Describe:", pk.Image("https://example.com/a.png")]).content
        (TextPart(text='Describe:'), ImagePart(url='https://example.com/a.png'))
        """
        return cls(role="user", content=content)

    @classmethod
    def assistant(
        cls, content: str | Sequence[Any], *, tool_calls: Sequence[ToolCall] | None = None
    ) -> Message:
        """An assistant message (with the tool calls it made, if any)."""
        return cls(
            role="assistant",
            content=content,
            tool_calls=tuple(tool_calls) if tool_calls else None,
        )

    @classmethod
    def tool(cls, content: str, *, tool_call_id: str, name: str | None = None) -> Message:
        """A tool message: the result (as text) of the call ``tool_call_id``.

        >>> Message.tool("42", tool_call_id="call_1", name="add")
        Message(role='tool', content='42', tool_call_id='call_1', name='add')
        """
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)


def tool_fields_dict(message: Message) -> dict[str, Any]:
    """A message's tool fields that are set, as plain data (for files and cache keys)."""
    out: dict[str, Any] = {}
    if message.tool_calls is not None:
        out["tool_calls"] = [c.to_dict() for c in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


#: The other fields' defaults, for :func:`fast_message` (None when one has a factory).
_MESSAGE_REST: dict[str, Any] | None = (
    None
    if any(
        f.default_factory is not None
        for n, f in Message.model_fields.items()
        if n not in ("role", "content")
    )
    or Message.__pydantic_post_init__ is not None
    or Message.__private_attributes__
    else {n: f.default for n, f in Message.model_fields.items() if n not in ("role", "content")}
)


def fast_message(role: Role_, content: str | tuple[Part, ...]) -> Message:
    """Build a Message from values promptkit produced itself (already known to be valid).

    Skips pydantic's validation, which dominates the cost of rendering long prompts, and
    fills the instance the way ``model_construct`` does without its per-field loop (0.7 µs
    instead of 2.8 µs a message; equal to the validated message, tested).
    """
    rest = _MESSAGE_REST
    if rest is None:  # a field with a factory or private state: let pydantic fill it
        return Message.model_construct(role=role, content=content)
    m = _object_new(Message)
    _object_setattr(m, "__dict__", {"role": role, "content": content, **rest})
    _object_setattr(m, "__pydantic_fields_set__", {"role", "content"})
    _object_setattr(m, "__pydantic_extra__", None)
    _object_setattr(m, "__pydantic_private__", None)
    return m


_object_new = object.__new__
_object_setattr = object.__setattr__


# --------------------------------------------------------------------------- completions


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts. ``None`` where the backend did not report them.

    >>> Usage(3, 4, 7) + Usage(1, 1, 2)
    Usage(prompt_tokens=4, completion_tokens=5, total_tokens=9)

    ``cached_tokens``: how many of the prompt tokens the server read from its prompt cache
    (OpenAI and vLLM ``prompt_tokens_details.cached_tokens``, llama.cpp ``tokens_cached`` /
    ``timings.cache_n``); ``None`` when the server does not say.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None

    def __repr__(self) -> str:
        out = (
            f"Usage(prompt_tokens={self.prompt_tokens!r}, "
            f"completion_tokens={self.completion_tokens!r}, total_tokens={self.total_tokens!r}"
        )
        if self.cached_tokens is not None:
            out += f", cached_tokens={self.cached_tokens!r}"
        return out + ")"

    def __add__(self, other: Usage) -> Usage:
        def add(a: int | None, b: int | None) -> int | None:
            if a is None and b is None:
                return None
            return (a or 0) + (b or 0)

        return Usage(
            add(self.prompt_tokens, other.prompt_tokens),
            add(self.completion_tokens, other.completion_tokens),
            add(self.total_tokens, other.total_tokens),
            add(self.cached_tokens, other.cached_tokens),
        )


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One sampled token, its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Choice:
    """One generated reply. ``finish_reason`` is ``"stop"``, ``"length"``, ... as sent."""

    text: str
    index: int = 0
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    #: The tools the model asked to call (``finish_reason`` is then usually ``"tool_calls"``).
    tool_calls: tuple[ToolCall, ...] = ()

    def message(self) -> Message:
        """This reply as an assistant message for the history (tool calls included)."""
        return Message.assistant(self.text, tool_calls=self.tool_calls or None)


@dataclass(slots=True)
class Completion:
    """The result of one logical call (possibly several requests when ``n`` was topped up).

    >>> c = Completion(choices=[Choice("Paris", finish_reason="stop")], model="m")
    >>> c.text, c.truncated
    ('Paris', False)

    - ``params_sent``: the sampling parameters as they went on the wire (backend names).
    - ``dropped``: parameters not sent, each with the reason (the backend cannot honour it).
    - ``renamed``: promptkit name -> wire name, for parameters the backend calls otherwise.
    - ``requests``: how many HTTP requests / local calls produced the choices.
    - ``raw``: the last raw response body (parsed JSON, or a list of stream events).
    - ``cost``: US dollars, from the LLM's price table (see :class:`~promptkit.Price`); 0 on
      local backends, ``None`` when the model has no price or no tokens were reported.
    """

    choices: list[Choice]
    model: str | None = None
    backend: str | None = None
    usage: Usage = field(default_factory=Usage)
    params_sent: dict[str, Any] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    latency_s: float = 0.0
    requests: int = 1
    cached: bool = False
    raw: Any = field(default=None, repr=False)
    cost: float | None = None

    @property
    def text(self) -> str:
        """The first choice's text."""
        return self.choices[0].text if self.choices else ""

    @property
    def texts(self) -> list[str]:
        """Every choice's text, in order."""
        return [c.text for c in self.choices]

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The first choice's tool calls (empty when it answered in text)."""
        return self.choices[0].tool_calls if self.choices else ()

    @property
    def finish_reason(self) -> str | None:
        """The first choice's finish reason."""
        return self.choices[0].finish_reason if self.choices else None

    @property
    def truncated(self) -> bool:
        """True when any choice stopped because it reached ``max_tokens``."""
        return any(c.finish_reason == "length" for c in self.choices)


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """One call as a backend sees it.

    Exactly one of ``messages`` (chat endpoint) and ``prompt`` (completion endpoint) is set.
    ``params`` holds promptkit parameter names, already filtered to what the backend
    ``supports``; ``extra`` is copied into the body as is. ``response_format`` is
    ``{"name": str, "schema": dict, "strict": bool}`` for JSON-schema constrained output.
    ``sample`` is the index of the first choice this request yields within its call (top-up
    and emulated-``n`` requests count up), so that a response cache never collapses
    distinct samples into one.
    """

    messages: Sequence[Message] | None = None
    prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    response_format: dict[str, Any] | None = None
    timeout: float | None = None
    sample: int = 0
    #: ``params["seed"]`` was drawn by the client for an emulated sample (the user gave no
    #: seed): a response cache leaves it out of the key, so repeated calls still hit.
    auto_seed: bool = False
    #: The tools offered, each ``{"name", "description", "parameters"}`` (a JSON schema).
    tools: tuple[dict[str, Any], ...] = ()
    #: ``"auto"``, ``"required"``, ``"none"`` or a tool's name; ``None``: the server's default.
    tool_choice: str | None = None
    #: Whether the model may call several tools in one reply (``None``: server default).
    parallel_tool_calls: bool | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """One piece of a streamed reply. The last one carries ``finish_reason`` (and usage)."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    #: Whole tool calls (a backend assembles streamed pieces before it yields them).
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(slots=True)
class Embeddings:
    """Embedding vectors, one per input text and in input order, with their usage.

    >>> e = Embeddings([[1.0, 0.0], [0.6, 0.8]], model="m")
    >>> len(e), e.dim, e[1]
    (2, 2, [0.6, 0.8])

    - ``model``: the embedding model that made them, as the backend names it.
    - ``requests``: how many requests (batches) produced them.
    - ``usage``: input tokens (``prompt_tokens``), where the backend reports them.
    """

    vectors: list[list[float]]
    model: str | None = None
    backend: str | None = None
    usage: Usage = field(default_factory=Usage)
    requests: int = 1
    latency_s: float = 0.0

    def __len__(self) -> int:
        return len(self.vectors)

    def __iter__(self) -> Iterator[list[float]]:
        return iter(self.vectors)

    def __getitem__(self, i: int) -> list[float]:
        return self.vectors[i]

    @property
    def dim(self) -> int:
        """The vectors' length (0 when there are none)."""
        return len(self.vectors[0]) if self.vectors else 0

    def array(self) -> np.ndarray[Any, Any]:
        """The vectors as a float32 numpy array of shape ``(len, dim)`` (needs numpy)."""
        from .retrieval._protocols import require_numpy

        numpy = require_numpy()
        out: np.ndarray[Any, Any] = numpy.asarray(self.vectors, dtype=numpy.float32)
        return out.reshape(len(self.vectors), self.dim)
