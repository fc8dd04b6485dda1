"""Strategies have their prompts rendered by the driver: ``render()`` when run, ``await
arender()`` when awaited, so a retriever's I/O then runs off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel

import promptkit as pk
from promptkit import LLM, FakeBackend
from promptkit.strategies import Chain, Refine, SelfConsistency, Step


class ThreadRecorder:
    """A sync-only retriever that records the thread each retrieval runs on."""

    def __init__(self, found: bool = True) -> None:
        self.found = found
        self.threads: list[int] = []

    def retrieve(self, query: str, k: int) -> list[pk.Document]:
        self.threads.append(threading.get_ident())
        return [pk.Document(id="kb", text=f"About {query}.")] if self.found else []


class Answer(BaseModel):
    answer: str


def rag(recorder: ThreadRecorder) -> pk.Context:
    return pk.Context(instruction="Answer.", template="{{ question }}", retriever=recorder, k=1)


Sync = Callable[[LLM], Any]
Async = Callable[[LLM], Awaitable[Any]]


def self_consistency(prompt: pk.Context) -> tuple[Sync, Async]:
    sc = SelfConsistency(prompt, k=2)
    return (lambda llm: sc.run(llm, question="bees")), (lambda llm: sc.arun(llm, question="bees"))


def chain(prompt: pk.Context) -> tuple[Sync, Async]:
    c = Chain(Step(prompt, output="reply"), inputs=["question"])
    return (lambda llm: c.run(llm, question="bees")), (lambda llm: c.arun(llm, question="bees"))


def structured(prompt: pk.Context) -> tuple[Sync, Async]:
    return (
        lambda llm: prompt.run(llm, output=Answer, question="bees"),
        lambda llm: prompt.arun(llm, output=Answer, question="bees"),
    )


def refine(prompt: pk.Context) -> tuple[Sync, Async]:
    critique = pk.ZeroShot(instruction="Critique.", template="{{ draft }}")
    revise = pk.ZeroShot(instruction="Revise.", template="{{ draft }} {{ critique }}")
    r = Refine(prompt, critique, revise, rounds=1)
    return (lambda llm: r.run(llm, question="bees")), (lambda llm: r.arun(llm, question="bees"))


@pytest.mark.parametrize("make", [self_consistency, chain, structured, refine])
def test_run_renders_on_the_callers_thread_arun_off_the_event_loop(
    make: Callable[[pk.Context], tuple[Sync, Async]],
) -> None:
    recorder = ThreadRecorder()
    fake = FakeBackend(lambda request: '{"answer": "B"}')
    run, arun = make(rag(recorder))
    run(LLM(fake))
    assert recorder.threads == [threading.get_ident()]

    async def go() -> int:
        await arun(LLM(fake))
        return threading.get_ident()

    loop_thread = asyncio.run(go())
    assert len(recorder.threads) == 2 and recorder.threads[1] != loop_thread
    with_documents = [r for r in fake.requests if "<<<DOCUMENT kb>>>" in str(r.messages)]
    assert len(with_documents) >= 2 and len(with_documents) % 2 == 0


def test_a_render_failure_reaches_the_plan_as_before() -> None:
    """A failing arender is thrown into the plan at the same point as a failing render:
    a chain wraps it in ChainStepError either way."""
    c = Chain(Step(rag(ThreadRecorder(found=False)), output="reply"), inputs=["question"])
    llm = LLM(FakeBackend(lambda request: "x"))
    with pytest.raises(pk.ChainStepError, match="found no documents") as sync_info:
        c.run(llm, question="bees")
    with pytest.raises(pk.ChainStepError, match="found no documents") as async_info:
        asyncio.run(c.arun(llm, question="bees"))
    assert type(sync_info.value.error) is type(async_info.value.error) is pk.PromptError
    sc = SelfConsistency(rag(ThreadRecorder()), k=2)
    with pytest.raises(pk.MissingVariablesError):
        asyncio.run(sc.arun(llm))
