"""Evaluation: compare prompt variants on a labelled dataset, on your own model.

Which technique should I use? Measure it. :func:`evaluate` runs several variants (prompts
or strategies) over the scored items of a dataset, on one or several backends, scores each
prediction with a metric and reports accuracy with a confidence interval, tokens, calls,
latency and estimated cost per variant:

>>> import promptkit as pk
>>> from promptkit.evaluation import Dataset, evaluate, metrics
>>> data = Dataset.from_rows(
...     [{"question": f"What is {i} + {i}?", "answer": 2 * i} for i in range(1, 11)],
...     expected="answer",
... )
>>> train, test = data.split(holdout=0.4, seed=0)
>>> def reply(request):  # a scripted "model": right when it has seen examples
...     shots = len(request.messages) > 2
...     n = int(request.messages[-1].content.split()[2])
...     return str(2 * n) if shots else str(2 * n + 1)
>>> llm = pk.LLM(pk.FakeBackend(reply))
>>> report = evaluate(
...     {
...         "zero-shot": pk.ZeroShot(instruction="Reply with the number."),
...         "few-shot": pk.FewShot(instruction="Reply with the number.",
...                                examples=train.examples(2, input="question")),
...     },
...     test, llm, metric=metrics.numeric(), inputs={"input": "question"}, progress=False,
... )
>>> [(r.variant, r.accuracy) for r in report]
[('zero-shot', 0.0), ('few-shot', 1.0)]
>>> print(report.table())  # doctest: +ELLIPSIS
variant    accuracy         95% CI  answered  calls  tokens in  tokens out  latency p50 ...
---------  --------  -------------  --------  -----  ---------  ----------  ----------- ...
zero-shot      0.0%    [0.0, 49.0]       4/4      4         36           0  ...    $0
few-shot     100.0%  [51.0, 100.0]       4/4      4         64           0  ...    $0
4 items of dataset, metric numeric; 95% Wilson score intervals; ...

Pieces:

- :class:`Dataset` (:func:`load_dataset` reads ``.jsonl``/``.csv``), :func:`split` into
  train (few-shot pool) and test (scored); :func:`evaluate` refuses a variant whose
  examples are scored items (:class:`OverlapError`), the classic way to fool yourself.
- :mod:`~promptkit.evaluation.metrics`: ``exact_match``, ``contains``, ``regex``,
  ``numeric``, ``custom`` and ``judge`` (model-as-judge, counted apart).
- :class:`EvalReport`: ``table()``, ``to_json()``, ``save_png()`` (matplotlib, optional),
  ``save_html()`` (self-contained, with an SVG chart of accuracy against cost).
- ``promptkit eval CONFIG`` runs the same from a TOML or YAML file (see
  :mod:`promptkit.evaluation._config`).
"""

from . import metrics
from ._dataset import Dataset, Record, Split, load_dataset, split
from ._errors import DatasetError, EvaluationError, OverlapError
from ._report import EvalReport, ItemResult, VariantResult
from ._run import Price, Variant, aevaluate, evaluate
from ._stats import wilson_interval
from .metrics import Metric

__all__ = [
    "Dataset",
    "DatasetError",
    "EvalReport",
    "EvaluationError",
    "ItemResult",
    "Metric",
    "OverlapError",
    "Price",
    "Record",
    "Split",
    "Variant",
    "VariantResult",
    "aevaluate",
    "evaluate",
    "load_dataset",
    "metrics",
    "split",
    "wilson_interval",
]
