"""Batch files moved to :mod:`promptkit.batch.files`; this module keeps the old imports
(``from promptkit.batchfiles import export_openai_batch``) working."""

from .batch.files import export_openai_batch, import_openai_batch_results

__all__ = ["export_openai_batch", "import_openai_batch_results"]
