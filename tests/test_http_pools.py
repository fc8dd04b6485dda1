"""Async calls spread over several connection pools, so that many requests in flight reuse
their connections (httpcore 1.0 closes a returned connection once one pool holds 20)."""

from __future__ import annotations

import asyncio

from promptkit.backends._http import _ASYNC_POOLS
from promptkit.backends.openai import OpenAIBackend


def test_async_requests_take_the_pools_in_turn_and_aclose_closes_all() -> None:
    backend = OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1")

    async def go() -> None:
        seen = [backend._async_client() for _ in range(2 * _ASYNC_POOLS)]
        assert len({id(c) for c in seen}) == _ASYNC_POOLS
        assert seen[:_ASYNC_POOLS] == seen[_ASYNC_POOLS:]  # round robin
        await backend.aclose()
        assert all(c.is_closed for c in seen)

    asyncio.run(go())
    # a new event loop gets new pools (connections belong to the loop that opened them)
    first: list[object] = []

    async def grab() -> None:
        first.append(backend._async_client())

    asyncio.run(grab())
    asyncio.run(grab())
    assert first[0] is not first[1]
