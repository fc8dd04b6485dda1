"""Statistics for reports: the Wilson score interval and percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

__all__ = ["percentile", "wilson_interval"]


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion: ``successes`` out of ``n`` trials.

    With ``p = successes / n`` and ``z`` the normal quantile for ``confidence`` (1.96 for
    95 %)::

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1 - p)/n + z²/4n²)

    Unlike the textbook ``p ± z·sqrt(p(1-p)/n)`` it stays within [0, 1] and does not shrink
    to zero width at 0 % or 100 %, which matters for the small samples evaluations use.
    For scores between 0 and 1 (partial credit) ``successes`` is their sum, and the
    interval treats the mean as a proportion: an approximation. ``n == 0`` gives (0, 1).
    At the ends the bound is exact: 0 % gives a lower bound of exactly 0.0 and 100 % an
    upper bound of exactly 1.0 (and the interval always contains ``p``).

    >>> [round(x, 4) for x in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    >>> [round(x, 4) for x in wilson_interval(0, 10)]
    [0.0, 0.2775]
    >>> wilson_interval(0, 40)[0], wilson_interval(40, 40)[1]
    (0.0, 1.0)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r}: expected a number between 0 and 1.")
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"successes={successes!r}, n={n!r}: expected 0 <= successes <= n.")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(max(p * (1.0 - p) / n + z2 / (4 * n * n), 0.0))
    # At 0 % and 100 % the bound is exactly the score (rounding would leave 1e-17 or
    # 0.9999999999999999, an interval that excludes its own point estimate).
    lo = 0.0 if successes <= 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if successes >= n else min(1.0, max(p, centre + half))
    return lo, hi


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks
    (numpy's default); ``None`` for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 95)
    (2.5, 3.85)
    """
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    value = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    return round(value, 12)
