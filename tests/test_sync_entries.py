"""The blocking entries evaluate(), optimize() and run_batch() run their async twins
(made by _sync.blocking_twin): they refuse a running event loop (naming the twin), have
their twins' signatures, and close the async HTTP clients bound to the loop that ends."""

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


@pytest.mark.parametrize(
    ("entry", "twin", "doc"),
    [
        ("promptkit.evaluation:evaluate", "promptkit.evaluation:aevaluate", "Run every variant"),
        ("promptkit.batch:run_batch", "promptkit.batch:arun_batch", "Run ``prompt`` over"),
        ("promptkit.optimization:optimize", "promptkit.optimization:aoptimize", "Search for"),
    ],
)
def test_blocking_entries_show_their_twins_parameters(entry: str, twin: str, doc: str) -> None:
    import importlib

    def get(spec: str) -> object:
        module, name = spec.split(":")
        return getattr(importlib.import_module(module), name)

    fn, afn = get(entry), get(twin)
    assert inspect.signature(fn) == inspect.signature(afn)  # type: ignore[arg-type]
    assert "concurrency" in inspect.signature(fn).parameters  # type: ignore[arg-type]
    assert not inspect.iscoroutinefunction(fn)
    assert fn.__name__ == entry.split(":")[1]  # type: ignore[attr-defined]
    assert fn.__module__ == afn.__module__  # doctest collects the examples with the module
    assert (fn.__doc__ or "").startswith(doc)
    with pytest.raises(TypeError, match=rf"^{fn.__name__}\(\) .*'no_such_option'"):  # type: ignore[attr-defined]
        fn(pk.ZeroShot(instruction="x"), [], _llm(), no_such_option=1)  # type: ignore[operator]


def test_blocking_entries_close_the_async_clients_they_used() -> None:
    import httpx
    import respx

    from promptkit.backends.openai import OpenAIBackend
    from promptkit.batch import run_batch

    reply = {"choices": [{"index": 0, "message": {"content": "C-1"}, "finish_reason": "stop"}]}

    def backend() -> OpenAIBackend:
        return OpenAIBackend(model="m", base_url="http://testserver/v1", max_retries=0)

    prompt = pk.ZeroShot(instruction="Give the code.")
    rows = [{"input": f"code {i}", "expected": "C-1"} for i in range(12)]
    with respx.mock(base_url="http://testserver/v1") as router:
        router.post("/chat/completions").mock(return_value=httpx.Response(200, json=reply))
        one = backend()
        inputs = [{"input": "code 1"}, {"input": "code 2"}]
        assert run_batch(prompt, pk.LLM(one), inputs, progress=False).texts == ["C-1"] * 2
        assert one._aclients is None
        first, second, judge = backend(), backend(), backend()
        report = pk.evaluate(
            {"z": prompt}, rows[:2], {"a": pk.LLM(first), "b": pk.LLM(second)},
            metric=pk.evaluation.metrics.Judge(llm=pk.LLM(judge)), progress=False,
        )  # fmt: skip
        assert len(report.results) == 2
        assert first._aclients is None and second._aclients is None and judge._aclients is None
        main, proposer = backend(), backend()
        pk.optimize(prompt, rows, pk.LLM(main), proposer=pk.LLM(proposer), verbose=False)
        assert main._aclients is None and proposer._aclients is None
