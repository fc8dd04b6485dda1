"""Optimise a prompt on data, with guardrails.

:func:`optimize` searches, on the train part of a dataset, over demonstrations
(bootstrapped from the model's own correct answers, labelled, subsets and orderings),
instructions (your variants and rewrites proposed by a model) and techniques (zero-shot,
few-shot, chain of thought, self-consistency, role) composed onto your prompt. A change
is kept only when a one-sided *paired* test on separate validation items (exact McNemar,
Holm-corrected over the finalists) says it is better at the chosen confidence; the final
figure is measured once on held-out test items. The chosen prompt saves as a plain prompt
file; the :class:`OptimizeReport` renders as a table, JSON and HTML.

>>> import promptkit as pk
>>> rows = [{"input": f"item {i}", "expected": "yes"} for i in range(30)]
>>> llm = pk.LLM(pk.FakeBackend(lambda r: "yes" if "Reply yes" in r.messages[0].content else "no"))
>>> report = pk.optimize(pk.ZeroShot(instruction="Answer."), rows, llm,
...                      instructions=["Reply yes or no."], verbose=False)
>>> report.improved, report.prompt.instruction
(True, 'Reply yes or no.')
>>> print(report.diff())
instruction:
  - Answer.
  + Reply yes or no.

Budget (:class:`Budget`), durable journal (``out=``), determinism and the statistics are
described in :func:`optimize` and :mod:`promptkit.optimization._stats`; ``promptkit optimize
CONFIG`` runs the same from a TOML or YAML file (see :mod:`promptkit.optimization._config`).
"""


from ._errors import BudgetError, OptimizeError
from ._report import Budget, Candidate, OptimizeReport, Spend
from ._search import aoptimize, optimize
from ._stats import PairedTest, holm, mcnemar_exact, paired_bootstrap, paired_test

__all__ = [
    "Budget",
    "BudgetError",
    "Candidate",
    "OptimizeError",
    "OptimizeReport",
    "PairedTest",
    "Spend",
    "aoptimize",
    "holm",
    "mcnemar_exact",
    "optimize",
    "paired_bootstrap",
    "paired_test",
]
