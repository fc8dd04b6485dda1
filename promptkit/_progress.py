"""A small progress bar for batch runs: no dependency, on stderr, throttled redraws.

On a terminal it redraws one line in place (at most ``interval`` times a second)::

    batch  532/1000  53% [##########----------]  48.2/s  ETA 9s  failed 3  cached 12

Elsewhere (a log file, CI output) it prints a plain line every ``log_interval`` seconds
instead, so logs are not filled with carriage returns.

>>> import io
>>> out = io.StringIO()
>>> bar = Progress(total=2, stream=out, tty=False, clock=lambda: 0.0)
>>> bar.update(ok=True)
>>> bar.update(ok=False)
>>> bar.close()
>>> print(out.getvalue().strip())
batch 2/2 100% | failed 1
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """A short human duration.

    >>> format_duration(9.4), format_duration(75), format_duration(7300)
    ('9s', '1m15s', '2h01m')
    """
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """Counts finished inputs and draws them.

    ``total`` is the number of inputs when known (else only counts are shown);
    ``resumed`` items already done before this run count towards ``done`` but not towards
    the rate. ``clock`` returns seconds (``time.monotonic`` by default; replace it in
    tests).
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float = 0.1,
        log_interval: float = 10.0,
        label: str = "batch",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
        self.tty = tty
        self.interval = interval if tty else log_interval
        self.label = label
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.resumed = 0
        self.failed = 0
        self.cached = 0
        self._last_draw = self.started
        self._width = 0
        self._closed = False

    # ------------------------------------------------------------------ counting

    def update(self, *, ok: bool, cached: bool = False, resumed: bool = False) -> None:
        """One more input finished (``ok=False``: it failed)."""
        self.done += 1
        if resumed:
            self.resumed += 1
        if not ok:
            self.failed += 1
        if cached:
            self.cached += 1
        now = self.clock()
        if now - self._last_draw >= self.interval:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._closed:
            return
        self._closed = True
        self._draw(self.clock(), final=True)

    # ------------------------------------------------------------------ drawing

    def render(self, now: float | None = None) -> str:
        """The progress line (without carriage return or newline)."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 0.0)
        live = self.done - self.resumed
        parts = [self.label]
        if self.total is not None:
            pct = 100.0 * self.done / self.total if self.total else 100.0
            parts.append(f"{self.done}/{self.total} {pct:3.0f}%")
            if self.tty:
                filled = int(20 * self.done / self.total) if self.total else 20
                parts.append("[" + "#" * filled + "-" * (20 - filled) + "]")
        else:
            parts.append(f"{self.done} done")
        if live and elapsed > 0:
            rate = live / elapsed
            parts.append(f"| {rate:.1f}/s")
            if self.total is not None and self.done < self.total:
                parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        if self.failed:
            parts.append(f"| failed {self.failed}")
        if self.cached:
            parts.append(f"| cached {self.cached}")
        if self.resumed:
            parts.append(f"| resumed {self.resumed}")
        return " ".join(parts)

    def _draw(self, now: float, *, final: bool = False) -> None:
        self._last_draw = now
        line = self.render(now)
        try:
            if self.tty:
                pad = " " * max(0, self._width - len(line))
                self.stream.write("\r" + line + pad + ("\n" if final else ""))
                self._width = len(line)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not fail the batch
            pass
