"""The blocking entries evaluate() and optimize() run their async twins: they refuse a
running event loop (naming the twin), and optimize() has aoptimize()'s signature."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import promptkit as pk
from promptkit.optimization import aoptimize, optimize


def _llm() -> pk.LLM:
    return pk.LLM(pk.FakeBackend(lambda request: "x"))


def test_evaluate_refuses_a_running_loop() -> None:
    async def main() -> None:
        with pytest.raises(pk.ConfigurationError, match=r"await promptkit\.aevaluate"):
            pk.evaluate({"a": pk.ZeroShot(instruction="x")}, [{"input": "1"}], _llm())

    asyncio.run(main())


def test_optimize_refuses_a_running_loop() -> None:
    async def main() -> None:
        with pytest.raises(pk.ConfigurationError, match=r"^optimize\(\).*aoptimize"):
            pk.optimize(pk.ZeroShot(instruction="x"), [], _llm())

    asyncio.run(main())


def test_optimize_has_the_signature_of_aoptimize() -> None:
    # pk.optimize is the function itself (the package is promptkit.optimization)
    assert pk.optimize is optimize
    assert inspect.signature(optimize) == inspect.signature(aoptimize)
    assert optimize.__name__ == "optimize"
    assert optimize.__doc__ is not None
    assert optimize.__doc__.startswith("Search for a better prompt")
    with pytest.raises(TypeError):
        optimize(pk.ZeroShot(instruction="x"), [], _llm(), no_such_option=1)  # type: ignore[call-arg]
