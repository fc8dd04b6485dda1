"""History trimming for conversations: whole turns dropped from the oldest end.

>>> from promptkit import Message
>>> h = [Message.user("a"), Message.assistant("b"), Message.user("c"), Message.assistant("d")]
>>> [m.content for m in trim_history(h, max_turns=1)]
['c', 'd']
"""

from __future__ import annotations

from collections.abc import Callable

from .._media import Part, TextPart
from .._tokens import TokenCounter, message_cost
from .._types import Message

__all__ = ["trim_history"]


def trim_history(
    history: list[Message],
    *,
    max_turns: int | None = None,
    max_history_tokens: int | None = None,
    token_counter: TokenCounter | Callable[[str], int] | None = None,
) -> list[Message]:
    """``history`` cut to its last ``max_turns`` turns and then to ``max_history_tokens``
    tokens (each message costed by :func:`~promptkit._tokens.message_cost`, tool calls'
    names and arguments included). A turn is a user message and the messages after it up
    to the next user message, so an assistant's tool calls and the ``tool`` messages that
    answer them are always kept or dropped together."""
    turns: list[list[Message]] = []
    for m in history:
        if m.role == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    if max_turns is not None:
        turns = turns[len(turns) - max_turns :] if max_turns else []
    if max_history_tokens is not None:
        count = message_cost(token_counter)
        sizes = [sum(count(_costed_text(m)) for m in t) for t in turns]
        total = sum(sizes)
        start = 0
        while start < len(turns) and total > max_history_tokens:
            total -= sizes[start]
            start += 1
        turns = turns[start:]
    return [m for t in turns for m in t]


def _costed_text(m: Message) -> str | tuple[Part, ...]:
    """What a message costs: its content (text, or parts: media by their estimate), plus
    its tool calls' names and arguments as text."""
    if not m.tool_calls:
        return m.content
    calls = " ".join(f"{c.name} {c.raw_arguments}" for c in m.tool_calls)
    if isinstance(m.content, str):
        return f"{m.content} {calls}" if m.content else calls
    return (*m.content, TextPart(text=calls))
