"""Paired tests for comparing a candidate prompt with the starting one on the same items.

Which test, and why:

- **Exact McNemar test** when every score is 0 or 1 (right or wrong; the usual case).
  Both prompts answer the *same* items, so only the items where they disagree carry
  information: ``b`` items the candidate gets right and the start wrong, ``c`` the other
  way round. Under "no difference" each disagreement goes either way with probability
  1/2, so the one-sided p-value is ``P(X >= b)`` for ``X ~ Binomial(b + c, 1/2)``. It is
  exact (no normal approximation), which matters at the few dozen items an optimiser
  validates on, and pairing removes the item-difficulty noise that two independent
  intervals would carry (two overlapping Wilson intervals can still hide a real gain,
  and two disjoint ones computed on 10 items are common by chance).
- **Paired bootstrap** when scores are partial credit (between 0 and 1): the mean of the
  per-item differences is resampled ``resamples`` times with a seeded generator; the
  one-sided p-value is the share of resampled means ``<= 0`` (with the usual +1
  correction so that it is never exactly 0).

Both are *one-sided*: the optimiser only ever asks "is the candidate better?".

Several candidates compared with the same start on the same validation items are several
tests: :func:`holm` adjusts their p-values (Holm-Bonferroni), which keeps the chance of
accepting *any* false improvement at most ``1 - confidence`` and is never less powerful
than plain Bonferroni.

>>> mcnemar_exact([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]).p_value
0.03125
>>> [round(p, 4) for p in holm([0.01, 0.04, 0.03])]
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PairedTest", "holm", "mcnemar_exact", "paired_bootstrap", "paired_test"]


@dataclass(frozen=True)
class PairedTest:
    """The result of a one-sided paired test of ``candidate > start`` on ``n`` items.

    ``method`` is ``"mcnemar-exact"`` or ``"paired-bootstrap"``; ``wins`` / ``losses``
    count items where the candidate scored higher / lower than the start; ``diff`` is the
    mean score difference (candidate - start); ``p_value`` the one-sided p-value before
    any multiple-comparison adjustment."""

    method: str
    n: int
    wins: int
    losses: int
    diff: float
    p_value: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready data."""
        return {
            "method": self.method,
            "n": self.n,
            "wins": self.wins,
            "losses": self.losses,
            "diff": self.diff,
            "p_value": self.p_value,
        }


def _check(candidate: Sequence[float], start: Sequence[float]) -> None:
    if len(candidate) != len(start):
        raise ValueError(
            f"a paired test needs the same items: {len(candidate)} scores against {len(start)}."
        )


def _counts(candidate: Sequence[float], start: Sequence[float]) -> tuple[int, int, float]:
    wins = sum(c > s for c, s in zip(candidate, start, strict=True))
    losses = sum(c < s for c, s in zip(candidate, start, strict=True))
    n = len(candidate)
    diff = (sum(candidate) - sum(start)) / n if n else 0.0
    return wins, losses, diff


def mcnemar_exact(candidate: Sequence[float], start: Sequence[float]) -> PairedTest:
    """One-sided exact McNemar test on 0/1 scores of the same items (see the module docs).

    >>> t = mcnemar_exact([1, 1, 0, 1], [0, 1, 0, 0])
    >>> t.wins, t.losses, t.p_value
    (2, 0, 0.25)
    """
    _check(candidate, start)
    wins, losses, diff = _counts(candidate, start)
    m = wins + losses
    p = sum(math.comb(m, i) for i in range(wins, m + 1)) / 2**m if m else 1.0
    return PairedTest("mcnemar-exact", len(candidate), wins, losses, diff, min(1.0, p))


def paired_bootstrap(
    candidate: Sequence[float], start: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> PairedTest:
    """One-sided paired bootstrap of the mean score difference (see the module docs).

    >>> paired_bootstrap([0.5, 0.5], [0.5, 0.5]).p_value
    1.0
    """
    _check(candidate, start)
    wins, losses, diff = _counts(candidate, start)
    diffs = [c - s for c, s in zip(candidate, start, strict=True)]
    n = len(diffs)
    if not n or not any(diffs):
        return PairedTest("paired-bootstrap", n, wins, losses, diff, 1.0)
    rng = random.Random(seed)
    at_most_zero = 0
    for _ in range(resamples):
        mean = sum(diffs[rng.randrange(n)] for _ in range(n)) / n
        at_most_zero += mean <= 0
    p = (at_most_zero + 1) / (resamples + 1)
    return PairedTest("paired-bootstrap", n, wins, losses, diff, min(1.0, p))


def paired_test(candidate: Sequence[float], start: Sequence[float], *, seed: int = 0) -> PairedTest:
    """McNemar's exact test when every score is 0 or 1, else the paired bootstrap."""
    binary = all(x in (0.0, 1.0) for x in (*candidate, *start))
    if binary:
        return mcnemar_exact(candidate, start)
    return paired_bootstrap(candidate, start, seed=seed)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the given order: reject hypothesis ``i`` at
    level ``alpha`` when ``adjusted[i] <= alpha``."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
