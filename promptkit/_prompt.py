"""Compatibility shim: the prompt objects now live in :mod:`promptkit.prompts`.

Kept for the modules not yet moved to the new layout (``runner``, ``batchfiles``), which
import from here; import from :mod:`promptkit.prompts` (or ``promptkit``) instead.
"""

from ._tokens import approx_tokens
from .prompts import (
    LAYOUT_TEMPLATES,
    ChainOfThought,
    Context,
    Conversation,
    Delimited,
    Document,
    Example,
    FewShot,
    Instruction,
    Negative,
    Perspective,
    Perspectives,
    Prompt,
    PromptBase,
    Role,
    ZeroShot,
    arender_prompt,
)

__all__ = [
    "LAYOUT_TEMPLATES",
    "ChainOfThought",
    "Context",
    "Conversation",
    "Delimited",
    "Document",
    "Example",
    "FewShot",
    "Instruction",
    "Negative",
    "Perspective",
    "Perspectives",
    "Prompt",
    "PromptBase",
    "Role",
    "ZeroShot",
    "approx_tokens",
    "arender_prompt",
]
