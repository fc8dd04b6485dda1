"""Timing helpers shared by the benchmark scripts in this folder (not part of promptkit).

Each script puts this folder on ``sys.path`` and imports what it needs from here, so
``python benchmarks/NAME.py`` works from any directory.

How timing is done, everywhere:

- ``time.perf_counter_ns``; every case is warmed up before it is timed;
- a *sample* times a batch of calls (the batch size is calibrated per case so that one
  sample lasts about ``target_ms``) and records the time per call;
- the cases are sampled round-robin (A, B, C, A, B, C, ...), so a slow patch of the machine
  hits all of them alike instead of one;
- the figure reported is the median of the samples; the spread is the interquartile range
  relative to the median. The process CPU time of each sample (``time.process_time_ns``,
  every thread of this process) is recorded beside the wall time: on a shared machine it
  is the steadier of the two, as it leaves out the time spent waiting for a core.

Nothing here asserts on a time: the scripts report figures, they do not pass or fail.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Stats",
    "bench",
    "fmt_ns",
    "fmt_ratio",
    "header",
    "parse_args",
    "print_table",
    "summarize",
]


@dataclass(frozen=True)
class Stats:
    """Summary of one case's samples (nanoseconds per call)."""

    median: float
    p25: float
    p75: float
    samples: int
    batch: int
    cpu: float | None = None

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 = 5 %)."""
        return (self.p75 - self.p25) / self.median if self.median else 0.0


def summarize(values: Sequence[float], batch: int = 1, cpu: Sequence[float] | None = None) -> Stats:
    """Median and quartiles of ``values`` (needs at least one value); ``cpu``, if given,
    is summarised by its median."""
    ordered = sorted(values)
    if len(ordered) >= 4:
        q = statistics.quantiles(ordered, n=4)
        p25, p75 = q[0], q[2]
    else:
        p25, p75 = ordered[0], ordered[-1]
    cpu_median = statistics.median(cpu) if cpu else None
    return Stats(statistics.median(ordered), p25, p75, len(ordered), batch, cpu_median)


def _time_batch(fn: Callable[[], object], batch: int) -> tuple[float, float]:
    """(wall ns, process CPU ns) per call, over ``batch`` calls."""
    cpu = time.process_time_ns()
    start = time.perf_counter_ns()
    for _ in range(batch):
        fn()
    wall = time.perf_counter_ns() - start
    return wall / batch, (time.process_time_ns() - cpu) / batch


def _calibrate(fn: Callable[[], object], target_ns: float, max_batch: int) -> int:
    batch = 1
    while batch < max_batch:
        took = _time_batch(fn, batch)[0] * batch
        if took >= target_ns / 4:
            scaled = int(batch * target_ns / max(took, 1.0))
            return max(1, min(max_batch, scaled))
        batch *= 4
    return max_batch


def bench(
    cases: dict[str, Callable[[], object]],
    *,
    samples: int,
    target_ms: float = 20.0,
    warmup: int = 3,
    max_batch: int = 100_000,
) -> dict[str, Stats]:
    """Time every case round-robin; per-call statistics by case name."""
    target_ns = target_ms * 1e6
    batches: dict[str, int] = {}
    for name, fn in cases.items():
        for _ in range(warmup):
            fn()
        batches[name] = _calibrate(fn, target_ns, max_batch)
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    gc.collect()
    for i in range(samples):
        # rotate the order so that no case always runs right after the same other one
        k = i % len(names)
        for name in names[k:] + names[:k]:
            w, c = _time_batch(cases[name], batches[name])
            wall[name].append(w)
            cpu[name].append(c)
    return {name: summarize(wall[name], batches[name], cpu[name]) for name in cases}


def fmt_ns(ns: float) -> str:
    """A duration in the most readable unit."""
    if ns < 10_000:
        return f"{ns / 1e3:.2f} µs"
    if ns < 1_000_000:
        return f"{ns / 1e3:,.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:,.2f} ms"
    return f"{ns / 1e9:,.2f} s"


def fmt_ratio(value: float, base: float) -> str:
    """``value / base`` as ``1.23x``."""
    return f"{value / base:.2f}x" if base else "n/a"


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)
) -> None:
    """A plain-text table; the columns in ``left`` are left-aligned, the others right."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def header(title: str, quick: bool) -> None:
    """The title line and what machine this ran on."""
    import os

    mode = "quick (smoke run: figures are rough)" if quick else "full"
    try:
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    print(f"== {title}")
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}, mode: {mode}"
    )
    print(f"load average before the run (1/5/15 min): {load}; other work skews the figures")
    print()


def parse_args(doc: str | None, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--quick`` for every script (fewer repeats, for smoke tests)."""
    first = (doc or "").strip().splitlines()[0] if doc else None
    parser = argparse.ArgumentParser(description=first)
    parser.add_argument(
        "--quick", action="store_true", help="few repeats: a smoke run of a few seconds"
    )
    return parser.parse_args(sys.argv[1:] if argv is None else argv)
