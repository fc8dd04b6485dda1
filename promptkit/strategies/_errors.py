"""The errors the strategies raise; they live with every other error in
:mod:`promptkit._errors` (see its docstring for the whole tree)."""

from .._errors import ChainStepError, ChainWiringError, ExtractionError, StructuredOutputError

__all__ = [
    "ChainStepError",
    "ChainWiringError",
    "ExtractionError",
    "StructuredOutputError",
]
