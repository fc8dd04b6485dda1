"""A value that must never show itself: API keys in backends, configuration and errors.

The HTTP transport and the configuration loader both hold keys in a :class:`Secret`;
it lives here so that neither has to import the other.
"""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """A string that never shows itself in a repr, str or log line.

    >>> s = Secret("sk-123")
    >>> s, str(s), s.get()
    (Secret('***'), '***', 'sk-123')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    #: Shorter values are not redacted from text (see :meth:`redact`).
    MIN_REDACTED = 8

    def get(self) -> str:
        """The secret value itself."""
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the exact secret replaced by ``***``.

        Only a secret of at least :attr:`MIN_REDACTED` (8) characters is redacted: a
        shorter one (``"x"``, ``"none"``, the placeholder keys local servers are given)
        guards nothing and would turn ordinary letters of a server's message into stars.

        >>> Secret("sk-abcdef123456").redact("bad key sk-abcdef123456!")
        'bad key ***!'
        >>> Secret("x").redact("Input should be 'text'")
        "Input should be 'text'"
        """
        value = self._value
        if len(value) < self.MIN_REDACTED:
            return text
        return text.replace(value, "***")

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
