"""Chat messages: moved to :mod:`promptkit._types` (this name stays for old imports)."""

from ._types import Message, Role_, StrictModel, fast_message, invalid

__all__ = ["Message", "Role_", "StrictModel", "fast_message", "invalid"]
