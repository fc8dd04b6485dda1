"""The errors of :mod:`promptkit.optimization`; they live with every other error in
:mod:`promptkit._errors` (see its docstring for the whole tree)."""

from .._errors import BudgetError, OptimizeError

__all__ = ["BudgetError", "OptimizeError"]
