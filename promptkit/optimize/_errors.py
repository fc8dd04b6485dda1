"""The errors of :mod:`promptkit.optimize`; all derive from :class:`~promptkit.PromptkitError`."""

from __future__ import annotations

from ..evaluation._errors import EvaluationError

__all__ = ["BudgetError", "OptimizeError"]


class OptimizeError(EvaluationError):
    """An optimisation cannot run as asked (a prompt, a dataset or an option is wrong)."""


class BudgetError(OptimizeError):
    """The budget cannot pay even for measuring the starting prompt on the validation and
    test items. ``needed`` and ``budget`` say what the estimate was and what was allowed."""

    def __init__(self, message: str, *, needed: str, budget: str) -> None:
        self.needed = needed
        self.budget = budget
        super().__init__(message)
