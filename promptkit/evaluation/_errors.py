"""The errors of :mod:`promptkit.evaluation`; they live with every other error in
:mod:`promptkit._errors` (see its docstring for the whole tree)."""

from .._errors import DatasetError, EvaluationError, OverlapError

__all__ = ["DatasetError", "EvaluationError", "OverlapError"]
