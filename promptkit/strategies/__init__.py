"""Strategies: self-consistency voting, chains, iterative refinement, perspectives runs and
structured (pydantic) outputs, all on top of any backend, sync and async.

Every strategy runs a *plan* of model calls (see :mod:`promptkit.strategies._plan`): the
calls of one stage (k samples, each viewpoint) run concurrently, through threads for
``run`` and the event loop for ``arun``.

- :class:`SelfConsistency` -> :class:`Vote` (with every :class:`Sample`);
  extractors in :mod:`~promptkit.strategies.extract`, normalisers in
  :mod:`~promptkit.strategies.normalize`.
- :class:`Chain` of :class:`Step` -> :class:`ChainResult` (every :class:`StepResult`).
- :class:`Refine` -> :class:`RefineResult` (every :class:`RefineRound`).
- :class:`PerspectivesRun` / :func:`run_perspectives` -> :class:`PerspectivesResult`.
- :class:`ToolLoop` -> :class:`ToolLoopResult` (every :class:`ToolStep` and :class:`ToolRun`):
  the model calls tools, the loop runs them and feeds the results back.
- :func:`structured` / :func:`astructured` (what ``prompt.run(llm, output=Model)`` uses),
  :func:`structured_result` for the usage and attempts.
"""

from . import extract, normalize
from ._errors import ChainStepError, ChainWiringError, ExtractionError, StructuredOutputError
from ._plan import Strategy
from .chain import Chain, ChainResult, Step, StepResult
from .perspectives import PerspectivesResult, PerspectivesRun, arun_perspectives, run_perspectives
from .refine import Refine, RefineResult, RefineRound
from .self_consistency import Sample, SelfConsistency, Vote
from .structured import (
    StructuredResult,
    astructured,
    astructured_result,
    structured,
    structured_result,
)
from .tool_loop import ToolLoop, ToolLoopResult, ToolRun, ToolStep

__all__ = [
    "Chain",
    "ChainResult",
    "ChainStepError",
    "ChainWiringError",
    "ExtractionError",
    "PerspectivesResult",
    "PerspectivesRun",
    "Refine",
    "RefineResult",
    "RefineRound",
    "Sample",
    "SelfConsistency",
    "Step",
    "StepResult",
    "Strategy",
    "StructuredOutputError",
    "StructuredResult",
    "ToolLoop",
    "ToolLoopResult",
    "ToolRun",
    "ToolStep",
    "Vote",
    "arun_perspectives",
    "astructured",
    "astructured_result",
    "extract",
    "normalize",
    "run_perspectives",
    "structured",
    "structured_result",
]
