"""Chat messages: the exact unit every prompt renders to and every backend sends."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ._errors import InvalidPromptError

__all__ = ["Message", "Role_", "StrictModel"]


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


Role_ = Literal["system", "user", "assistant"]


class Message(StrictModel):
    """One chat message.

    >>> Message(role="user", content="Hi")
    Message(role='user', content='Hi')
    >>> Message(role="user", content="Hi").to_dict()
    {'role': 'user', 'content': 'Hi'}
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role_
    content: str

    def to_dict(self) -> dict[str, str]:
        """The OpenAI wire form, ``{"role": ..., "content": ...}``."""
        return {"role": self.role, "content": self.content}

    @classmethod
    def system(cls, content: str) -> Message:
        """A system message."""
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Message:
        """A user message."""
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str) -> Message:
        """An assistant message."""
        return cls(role="assistant", content=content)


def fast_message(role: Role_, content: str) -> Message:
    """Build a Message from values promptkit produced itself (already known to be valid).

    Skips pydantic's validation, which dominates the cost of rendering long prompts.
    """
    return Message.model_construct(role=role, content=content)
