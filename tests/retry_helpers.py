"""Shared by the retry and fault tests: a reply, a recorder of backoff waits, and an HTTP
backend whose retry policy records its waits instead of sleeping."""

from __future__ import annotations

from typing import Any

from promptkit.backends._http import HTTPBackend
from promptkit.backends.openai import OpenAIBackend

BASE = "http://testserver/v1"

OK = {
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


class Sleeps:
    """Records the waits instead of waiting (sync and async)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def make(cls: type[HTTPBackend] = OpenAIBackend, **kw: Any) -> tuple[HTTPBackend, Sleeps]:
    """A backend on ``BASE`` (model "m") whose retry waits go to the returned ``Sleeps``."""
    kw.setdefault("model", "m")
    kw.setdefault("base_url", BASE)
    backend = cls(**kw)
    sleeps = Sleeps()
    backend.retry.sleep = sleeps
    backend.retry.asleep = sleeps.asleep
    return backend, sleeps
