"""Rate limits of a batch: a clock, token buckets (requests and tokens per minute), the
adaptive in-flight limiter that halves on a 429, and the rules for 429s (longest pause,
backoff, exhausted quota). Also used by :mod:`promptkit.integrations.ray`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from .._errors import RateLimitError
from .._params import SamplingParams

if TYPE_CHECKING:
    from .._types import Message

__all__ = [
    "MAX_BACKOFF",
    "MAX_RETRY_AFTER",
    "AdaptiveLimiter",
    "Clock",
    "RealClock",
    "TokenBucket",
    "estimate_tokens",
    "is_quota",
]

#: The longest backoff after a 429 without a Retry-After, in seconds.
MAX_BACKOFF = 60.0
#: The longest server-requested pause a batch waits for; longer is the input's failure.
MAX_RETRY_AFTER = 300.0


class Clock(Protocol):
    """What the rate limiter and the backoff use to tell and wait for time (replace it
    with a fake clock in tests)."""

    def monotonic(self) -> float:
        """Seconds, monotonically increasing."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up; waiters served in order.

    A request larger than the capacity waits for a full bucket and then takes the bucket
    into debt, so the long-run rate holds for any request size.
    """

    #: Longest single sleep, so that refunds (cache hits) wake waiters soon.
    POLL = 0.05

    def __init__(self, per_minute: float, clock: Clock) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)  # one second's worth
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        need = min(amount, self.capacity)
        async with self.lock:
            while True:
                self._refill()
                if self.tokens >= need - 1e-9:
                    self.tokens -= amount
                    return
                await self.clock.sleep(min((need - self.tokens) / self.rate, self.POLL))

    def give(self, amount: float) -> None:
        """Return tokens (or take more, when ``amount`` is negative)."""
        self._refill()
        self.tokens = min(self.capacity, self.tokens + amount)


class AdaptiveLimiter:
    """Adaptive concurrency: at most ``limit`` requests in flight; halved on a 429 (once per
    pause), grown back by one after ``limit`` successes in a row. Waiters are served in
    order."""

    def __init__(self, limit: int) -> None:
        self.max = limit
        self.limit = limit
        self.active = 0
        self.streak = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.active < self.limit and not self.waiters:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just before the cancellation: give it back
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(fut)
            raise

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        while self.waiters and self.active < self.limit:
            fut = self.waiters.popleft()
            if not fut.done():
                self.active += 1
                fut.set_result(None)

    def decrease(self) -> None:
        self.limit = max(1, self.limit // 2)
        self.streak = 0

    def success(self) -> None:
        if self.limit >= self.max:
            return
        self.streak += 1
        if self.streak >= self.limit:
            self.streak = 0
            self.limit += 1
            self._wake()


def estimate_tokens(messages: Sequence[Message], params: SamplingParams) -> int:
    from .._tokens import approx_tokens

    prompt = sum(approx_tokens(m.content) for m in messages)
    n = params.n or 1
    return prompt + (params.max_tokens or 0) * n


def is_quota(exc: RateLimitError) -> bool:
    text = f"{exc} {getattr(exc, 'body', '') or ''}".lower()
    return "insufficient_quota" in text or "quota is used up" in text
