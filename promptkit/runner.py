"""The batch runner moved to :mod:`promptkit.batch`; this module keeps the old imports
(``from promptkit.runner import run_batch``) working."""

from .batch import BatchItem, BatchResult, BatchSummary, Clock, arun_batch, run_batch

__all__ = ["BatchItem", "BatchResult", "BatchSummary", "Clock", "arun_batch", "run_batch"]
