"""Chat messages: the exact unit every prompt renders to and every backend sends."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Message", "Role_"]

Role_ = Literal["system", "user", "assistant"]


class Message(BaseModel):
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
