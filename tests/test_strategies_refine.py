"""Iterative refinement (draft, critique, revise) and perspectives runs."""

from __future__ import annotations

import asyncio
import time

import pytest

import promptkit as pk
from promptkit import FakeBackend, Request
from promptkit.strategies import (
    ChainWiringError,
    PerspectivesRun,
    Refine,
    arun_perspectives,
    run_perspectives,
)
from promptkit.strategies.refine import accepts

DRAFT = pk.ZeroShot(instruction="Write a haiku.", template="{{ topic }}")
CRITIQUE = pk.ZeroShot(instruction="Critique the haiku.", template="{{ draft }}")
REVISE = pk.ZeroShot(
    instruction="Revise the haiku.", template="{{ draft }}\n---\n{{ critique }}\n({{ topic }})"
)
JUDGE = pk.ZeroShot(instruction="Is it good? Answer yes or no.", template="{{ draft }}")


def contents(fake: FakeBackend) -> list[str]:
    return [r.messages[-1].content for r in fake.requests if r.messages]


def test_runs_every_round_without_a_stop_condition() -> None:
    fake = FakeBackend(["d0", "c1", "d1", "c2", "d2"])
    result = Refine(DRAFT, CRITIQUE, REVISE, rounds=2).run(pk.LLM(fake), topic="rain")
    assert result.output == "d2" and result.first_draft == "d0"
    assert result.stopped_by == "rounds"
    assert result.drafts == ["d0", "d1", "d2"]
    assert [(r.number, r.draft, r.critique, r.revision) for r in result.rounds] == [
        (1, "d0", "c1", "d1"),
        (2, "d1", "c2", "d2"),
    ]
    assert contents(fake) == ["rain", "d0", "d0\n---\nc1\n(rain)", "d1", "d1\n---\nc2\n(rain)"]
    assert result.usage.total_tokens == sum(c.usage.total_tokens or 0 for c in result.completions)


def test_stop_callable_ends_the_loop_after_a_critique() -> None:
    fake = FakeBackend(["d0", "c1", "d1", "no issues"])
    seen: list[tuple[str, str]] = []

    def stop(draft: str, critique: str) -> bool:
        seen.append((draft, critique))
        return critique == "no issues"

    result = Refine(DRAFT, CRITIQUE, REVISE, rounds=5, stop=stop).run(pk.LLM(fake), topic="x")
    assert result.output == "d1" and result.stopped_by == "stop"
    assert seen == [("d0", "c1"), ("d1", "no issues")]
    assert result.rounds[-1].stopped and result.rounds[-1].revision is None
    assert len(fake.requests) == 4


def test_judge_prompt_stops_when_it_accepts() -> None:
    fake = FakeBackend(["d0", "c1", "No, too long.", "d1", "c2", "Yes."])
    result = Refine(DRAFT, CRITIQUE, REVISE, rounds=4, judge=JUDGE).run(pk.LLM(fake), topic="x")
    assert result.output == "d1" and result.stopped_by == "judge"
    assert [r.verdict for r in result.rounds] == ["No, too long.", "Yes."]
    assert contents(fake)[2] == "d0"  # the judge sees the draft


def test_custom_accept() -> None:
    fake = FakeBackend(["d0", "c1", "score: 9"])
    result = Refine(DRAFT, CRITIQUE, REVISE, judge=JUDGE, accept=lambda v: v.endswith("9")).run(
        pk.LLM(fake), topic="x"
    )
    assert result.stopped_by == "judge" and result.output == "d0"


def test_zero_rounds_is_just_the_draft() -> None:
    fake = FakeBackend(["d0"])
    result = Refine(DRAFT, CRITIQUE, REVISE, rounds=0).run(pk.LLM(fake), topic="x")
    assert result.output == "d0" and result.rounds == ()


def test_default_accept() -> None:
    assert accepts("YES") and accepts("**Pass**") and accepts("LGTM!") and accepts(" ok.")
    assert not accepts("No") and not accepts("yesterday it was bad") and not accepts("")


def test_wiring_is_checked_at_build_time() -> None:
    blind = pk.ZeroShot(instruction="Critique.", template="{{ topic }}")
    with pytest.raises(ChainWiringError, match="critique prompt does not use"):
        Refine(DRAFT, blind, REVISE)
    deaf = pk.ZeroShot(instruction="Revise.", template="{{ draft }}")
    with pytest.raises(ChainWiringError, match="revise prompt does not use"):
        Refine(DRAFT, CRITIQUE, deaf)


def test_renamed_variables() -> None:
    crit = pk.ZeroShot(instruction="Critique.", template="{{ text }}")
    rev = pk.ZeroShot(instruction="Revise.", template="{{ text }} {{ notes }}")
    refine = Refine(DRAFT, crit, rev, rounds=1, draft_var="text", critique_var="notes")
    fake = FakeBackend(["d0", "c1", "d1"])
    assert refine.run(pk.LLM(fake), topic="x").output == "d1"
    assert refine.variables == frozenset({"topic"})


def test_missing_variables_fail_before_any_call() -> None:
    fake = FakeBackend([])
    with pytest.raises(pk.MissingVariablesError, match="topic"):
        Refine(DRAFT, CRITIQUE, REVISE).run(pk.LLM(fake))
    assert fake.requests == []


def test_params_layers() -> None:
    fake = FakeBackend(["d0"])
    refine = Refine(DRAFT, CRITIQUE, REVISE, rounds=0, params=pk.SamplingParams(max_tokens=7))
    refine.run(pk.LLM(fake), params=pk.SamplingParams(temperature=0.2), topic="x")
    assert fake.requests[0].params == {"max_tokens": 7, "temperature": 0.2}


def test_async_refine() -> None:
    fake = FakeBackend(["d0", "c1", "d1"])
    result = asyncio.run(Refine(DRAFT, CRITIQUE, REVISE, rounds=1).arun(pk.LLM(fake), topic="x"))
    assert result.output == "d1"


def test_rounds_are_validated() -> None:
    with pytest.raises(pk.ParameterError, match="rounds"):
        Refine(DRAFT, CRITIQUE, REVISE, rounds=-1)


# --------------------------------------------------------------------------- perspectives

DAM = pk.Perspectives(
    perspectives=["Economist", pk.Perspective(name="Ecologist", description="rivers")],
    synthesis="Weigh both and decide.",
    role="a policy adviser",
)


def by_role(request: Request) -> str:
    assert request.messages is not None
    system = request.messages[0].content
    if "Economist" in system:
        return "Cheap power."
    if "Ecologist" in system:
        return "Fish lose habitat."
    return "Build, with fish ladders."


def test_each_viewpoint_then_a_synthesis() -> None:
    fake = FakeBackend(by_role)
    result = run_perspectives(DAM, pk.LLM(fake), input="Build the dam?")
    assert result.answers == {"Economist": "Cheap power.", "Ecologist": "Fish lose habitat."}
    assert result.synthesis == result.output == "Build, with fish ladders."
    assert len(fake.requests) == 3
    synth = fake.requests[-1].messages
    assert synth is not None
    assert synth[0].content.startswith("You are a policy adviser.")
    assert "Weigh both and decide." in synth[0].content
    user = synth[-1].content
    assert "## Economist\nCheap power." in user and "## Ecologist\nFish lose habitat." in user
    assert user.endswith("Build the dam?")
    viewpoint = fake.requests[0].messages
    assert viewpoint is not None and viewpoint[-1].content == "Build the dam?"
    assert result.usage.total_tokens == sum(
        c.usage.total_tokens or 0 for c in [*result.completions.values()]
    ) + (result.synthesis_completion.usage.total_tokens or 0 if result.synthesis_completion else 0)


def test_viewpoints_run_concurrently() -> None:
    fake = FakeBackend(by_role, latency=0.3)
    started = time.perf_counter()
    PerspectivesRun(DAM, synthesize=False).run(pk.LLM(fake), input="?")
    assert time.perf_counter() - started < 0.5  # one after the other: 0.6 s


def test_without_synthesis() -> None:
    result = PerspectivesRun(DAM, synthesize=False).run(pk.LLM(FakeBackend(by_role)), input="?")
    assert result.synthesis is None
    assert result.output == "## Economist\nCheap power.\n\n## Ecologist\nFish lose habitat."


def test_custom_synthesis_prompt() -> None:
    synth = pk.ZeroShot(instruction="Pick one.", template="{{ answers }} | {{ question }}")
    fake = FakeBackend(by_role)
    result = PerspectivesRun(DAM, synthesis=synth).run(pk.LLM(fake), input="Q?")
    assert result.synthesis == "Build, with fish ladders."
    last = fake.requests[-1].messages
    assert last is not None and last[-1].content.endswith("| Q?")


def test_async_perspectives() -> None:
    result = asyncio.run(arun_perspectives(DAM, pk.LLM(FakeBackend(by_role)), input="?"))
    assert result.synthesis == "Build, with fish ladders."


def test_needs_a_perspectives_prompt() -> None:
    with pytest.raises(pk.ParameterError, match="Perspectives prompt"):
        PerspectivesRun(pk.ZeroShot(instruction="x"))  # type: ignore[arg-type]
