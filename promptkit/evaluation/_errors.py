"""The errors of :mod:`promptkit.evaluation`; all derive from :class:`~promptkit.PromptkitError`."""

from __future__ import annotations

from .._errors import PromptkitError

__all__ = ["DatasetError", "EvaluationError", "OverlapError"]


class EvaluationError(PromptkitError):
    """An evaluation cannot run as asked (a variant, a metric or an option is wrong)."""


class DatasetError(EvaluationError, ValueError):
    """A dataset file or row is unusable. ``path``, ``line`` (1-based) and ``field`` say
    where, when known; the message names them too.

    >>> str(DatasetError("field 'answer' is missing", path="data.jsonl", line=3, field="answer"))
    "data.jsonl line 3: field 'answer' is missing"
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = " ".join(p for p in (path, f"line {line}" if line is not None else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class OverlapError(EvaluationError):
    """A variant's few-shot examples are among the scored items: its accuracy would be
    inflated by answers it was shown. ``variant`` names it; ``overlaps`` lists
    ``(example index, item id)`` pairs."""

    def __init__(self, message: str, *, variant: str, overlaps: list[tuple[int, str]]) -> None:
        self.variant = variant
        self.overlaps = overlaps
        super().__init__(message)
