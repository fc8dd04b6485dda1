"""What a backend returns: choices, usage, and an honest account of what was sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Choice", "Completion", "TokenLogprob", "Usage"]


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
    def finish_reason(self) -> str | None:
        """The first choice's finish reason."""
        return self.choices[0].finish_reason if self.choices else None

    @property
    def truncated(self) -> bool:
        """True when any choice stopped because it reached ``max_tokens``."""
        return any(c.finish_reason == "length" for c in self.choices)
