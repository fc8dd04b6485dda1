"""How HTTP backends retry transient failures: :class:`RetryPolicy` (the rules, the
waits) on top of tenacity."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import tenacity

from .errors import Failure

__all__ = ["RetryPolicy"]


class _StopAt(tenacity.stop.stop_base):
    """Stop retrying once the monotonic clock passes ``deadline``."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return time.monotonic() >= self.deadline


@dataclass
class RetryPolicy:
    """How a backend retries transient failures.

    What is retried, in this order of precedence:

    1. A reply with ``x-should-retry: true`` or ``false`` (OpenAI's header): as it says,
       whatever its status (a 4xx too; a 5xx or 429 not).
    2. Never: a server refusing a feature by name (a 4xx, or a 5xx whose message names a
       field the request sent, such as llama-cpp-python's 500 "Input should be 'text' or
       'json_object'" for ``response_format``, or llama-server's "Only one completion
       choice is allowed" for ``n``): :class:`~promptkit.FeatureRefusedError` after one
       request, and the client falls back; a prompt over the context window; a server not
       started for embeddings; 501 Not Implemented; 429 ``insufficient_quota``.
    3. 408 (request timeout), 409 (conflict, e.g. a lock), 429, every other 5xx, timeouts,
       refused and dropped connections. Other 4xx are not retried.

    ``max_retries`` retries follow the first attempt (3 -> at most 4 attempts). The wait
    before retry *k* is ``base_delay * 2**(k-1)``, capped at ``max_delay``, with jitter
    (between half and all of it); a ``Retry-After`` header replaces it. A ``Retry-After``
    longer than ``retry_after_max`` is not waited for: the error is raised at once, with
    ``RateLimitError.retry_after`` for a 429 (the batch runner pauses for it). No retry
    starts after ``total_timeout`` seconds. ``sleep`` and ``asleep`` do the waiting
    (replace them in tests).

    >>> RetryPolicy(max_retries=0).max_retries
    0
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    retry_after_max: float = 60.0
    total_timeout: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        delay = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)

    def tenacity_options(self, started: float) -> dict[str, Any]:
        """Keyword arguments for a tenacity ``Retrying`` whose first attempt began at
        ``started`` (a ``time.monotonic()`` value)."""

        def wait(state: tenacity.RetryCallState) -> float:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            after = exc.retry_after if isinstance(exc, Failure) else None
            left = self.total_timeout - (time.monotonic() - started)
            return max(0.0, min(self.delay(state.attempt_number, after), left))

        return {
            "stop": tenacity.stop_after_attempt(self.max_retries + 1)
            | _StopAt(started + self.total_timeout),
            "wait": wait,
            "retry": tenacity.retry_if_exception(lambda e: isinstance(e, Failure) and e.retryable),
        }
