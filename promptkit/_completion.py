"""Completions: moved to :mod:`promptkit._types` (this name stays for old imports)."""

from ._types import Choice, Completion, TokenLogprob, Usage

__all__ = ["Choice", "Completion", "TokenLogprob", "Usage"]
