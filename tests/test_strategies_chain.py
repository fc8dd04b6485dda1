"""Chains: wiring checked at build time, intermediate results, failing steps, composition."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

import promptkit as pk
from promptkit import FakeBackend
from promptkit.strategies import (
    Chain,
    ChainResult,
    ChainStepError,
    ChainWiringError,
    ExtractionError,
    Refine,
    SelfConsistency,
    Step,
    StructuredOutputError,
    extract,
)

OUTLINE = pk.ZeroShot(instruction="Outline an essay.", template="Topic: {{ topic }}")
ESSAY = pk.ZeroShot(instruction="Write the essay.", template="{{ outline }} ({{ tone }})")
TITLE = pk.ZeroShot(instruction="Title the essay.", template="{{ essay }}")


def make_chain() -> Chain:
    return Chain(
        Step(OUTLINE, output="outline"),
        Step(ESSAY, output="essay"),
        Step(TITLE, output="title"),
        inputs=["topic", "tone"],
    )


def test_outputs_flow_into_later_steps() -> None:
    fake = FakeBackend(["1. Bees", "Bees are great.", "On Bees"])
    result = make_chain().run(pk.LLM(fake), topic="bees", tone="warm")
    assert [r.messages[-1].content for r in fake.requests if r.messages] == [
        "Topic: bees",
        "1. Bees (warm)",
        "Bees are great.",
    ]
    assert result.output == "On Bees" and result.text == "On Bees"
    assert result["outline"] == "1. Bees" and result["essay"] == "Bees are great."
    assert result.values == {
        "topic": "bees",
        "tone": "warm",
        "outline": "1. Bees",
        "essay": "Bees are great.",
        "title": "On Bees",
    }


def test_every_intermediate_result_is_kept() -> None:
    fake = FakeBackend(["1. Bees", "Bees are great.", "On Bees"])
    result = make_chain().run(pk.LLM(fake), topic="bees", tone="warm")
    essay = result.step("essay")
    assert essay.index == 1
    assert essay.variables == {"outline": "1. Bees", "tone": "warm"}
    assert essay.text == "Bees are great." and essay.outputs == {"essay": "Bees are great."}
    assert isinstance(essay.result, pk.Completion)
    total = sum(s.usage.total_tokens or 0 for s in result.steps)
    assert result.usage.total_tokens == total > 0
    with pytest.raises(KeyError, match="Did you mean 'essay'"):
        result["esay"]
    with pytest.raises(KeyError, match="No step named"):
        result.step("nope")


def test_inputs_mapping_renames_variables() -> None:
    summary = pk.ZeroShot(instruction="Summarise.", template="{{ text }}")
    chain = Chain(
        Step(OUTLINE, output="outline"),
        Step(summary, output="summary", inputs={"text": "outline"}),
        inputs=["topic"],
    )
    fake = FakeBackend(["1. Bees", "Bees."])
    result = chain.run(pk.LLM(fake), topic="bees")
    assert result.step("summary").variables == {"text": "1. Bees"}
    assert result.output == "Bees."


def test_extract_and_more_outputs() -> None:
    ask = pk.ZeroShot(instruction="Answer.", template="{{ question }}")
    use = pk.ZeroShot(instruction="Use it.", template="{{ answer }} / {{ confidence }}")
    chain = Chain(
        Step(
            ask,
            output="answer",
            extract=extract.regex(r"Answer: (\w+)"),
            outputs={"confidence": extract.regex(r"Confidence: (\d+)")},
        ),
        Step(use, output="final"),
        inputs=["question"],
    )
    fake = FakeBackend(["Hmm. Answer: Paris\nConfidence: 90", "ok"])
    result = chain.run(pk.LLM(fake), question="Capital?")
    assert result["answer"] == "Paris" and result["confidence"] == "90"
    assert fake.requests[1].messages is not None
    assert fake.requests[1].messages[-1].content == "Paris / 90"


class Plan(BaseModel):
    title: str
    points: list[str]


def test_structured_step_feeds_a_model_to_templates() -> None:
    plan = pk.ZeroShot(instruction="Plan the talk.", template="{{ topic }}")
    talk = pk.ZeroShot(
        instruction="Give the talk.", template="{{ plan.title }}: {{ plan.points | join(', ') }}"
    )
    chain = Chain(
        Step(plan, output="plan", model=Plan), Step(talk, output="talk"), inputs=["topic"]
    )
    fake = FakeBackend(
        ['{"title": "Bees", "points": "x"}', '{"title": "Bees", "points": ["a", "b"]}', "..."]
    )
    result = chain.run(pk.LLM(fake), topic="bees")
    assert result["plan"] == Plan(title="Bees", points=["a", "b"])
    assert fake.requests[2].messages is not None
    assert fake.requests[2].messages[-1].content == "Bees: a, b"
    assert result.step("plan").result.attempts == 2


def test_bare_prompts_are_steps() -> None:
    a = pk.ZeroShot(instruction="A.", template="{{ x }}", name="first")
    b = pk.ZeroShot(instruction="B.", template="{{ first }}")
    chain = Chain(a, b, inputs=["x"])
    assert [s.name for s in chain.steps] == ["first", "step2"]
    assert chain.run(pk.LLM(FakeBackend(["1", "2"])), x="0").values["step2"] == "2"


# --------------------------------------------------------------------------- wiring errors


def test_a_variable_nothing_provides_is_an_error_at_build_time() -> None:
    with pytest.raises(ChainWiringError) as info:
        Chain(Step(OUTLINE, output="outline"), Step(ESSAY, output="essay"), inputs=["topic"])
    assert info.value.problems == [
        "step 'essay' needs 'tone', which nothing provides (the chain's inputs: 'topic'; "
        "earlier outputs: 'outline'). Add it to Chain(inputs=[...]) or map it with "
        "Step(inputs={'tone': ...})."
    ]
    assert isinstance(info.value, pk.PromptError)


def test_a_typo_gets_a_hint() -> None:
    with pytest.raises(ChainWiringError, match="Is 'topik' a misspelling of it"):
        Chain(Step(OUTLINE), inputs=["topik"])


def test_a_variable_from_a_later_step_is_an_ordering_error() -> None:
    with pytest.raises(ChainWiringError, match="only the later step 'outline' provides"):
        Chain(
            Step(ESSAY, output="essay"), Step(OUTLINE, output="outline"), inputs=["topic", "tone"]
        )


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ChainWiringError) as info:
        Chain(
            Step(OUTLINE, output="topic"),
            Step(ESSAY, output="essay", inputs={"outlin": "topic"}),
            Step(TITLE, output="essay"),
            inputs=["topic"],
        )
    problems = info.value.problems
    assert len(problems) == 6, problems
    assert "two steps are named 'essay'" in problems[0]
    text = str(info.value)
    assert "writes 'topic', which the chain's inputs already provide" in text
    assert "maps 'outlin' (did you mean 'outline'?)" in text
    assert "needs 'outline'" in text and "needs 'tone'" in text
    assert "writes 'essay', which step 'essay' already provides" in text


def test_duplicate_step_names() -> None:
    with pytest.raises(ChainWiringError, match="two steps are named 'x'"):
        Chain(Step(OUTLINE, name="x", output="a"), Step(TITLE, name="x", output="b"),
              inputs=["topic", "essay"])  # fmt: skip


def test_no_steps() -> None:
    with pytest.raises(ChainWiringError, match="at least one step"):
        Chain(inputs=["x"])


def test_step_options_are_checked() -> None:
    with pytest.raises(pk.ParameterError, match="not both"):
        Step(OUTLINE, extract=extract.last_line(), model=Plan)
    with pytest.raises(pk.ParameterError, match="prompt or a strategy"):
        Step("not a prompt")  # type: ignore[arg-type]
    with pytest.raises(pk.ParameterError, match="apply to prompt steps"):
        Step(SelfConsistency(OUTLINE), extract=extract.last_line())


def test_missing_and_unexpected_run_variables_fail_before_any_call() -> None:
    fake = FakeBackend([])
    with pytest.raises(pk.MissingVariablesError, match="tone"):
        make_chain().run(pk.LLM(fake), topic="bees")
    with pytest.raises(pk.UnexpectedVariablesError, match="did you mean 'tone'"):
        make_chain().run(pk.LLM(fake), topic="bees", tone="x", tome="y")
    assert fake.requests == []


# --------------------------------------------------------------------------- failures


def test_a_failing_step_names_itself_and_keeps_earlier_results() -> None:
    fake = FakeBackend(["1. Bees", pk.ServerError("boom", status=503)])
    with pytest.raises(ChainStepError) as info:
        make_chain().run(pk.LLM(fake), topic="bees", tone="warm")
    err = info.value
    assert err.step == "essay" and err.index == 1
    assert isinstance(err.error, pk.ServerError) and err.__cause__ is err.error
    assert isinstance(err.result, ChainResult)
    assert [s.name for s in err.result.steps] == ["outline"]
    assert err.result["outline"] == "1. Bees"
    assert "step 'essay' (2 of 3) failed: ServerError: boom" in str(err)


def test_an_extraction_failure_fails_the_step() -> None:
    chain = Chain(Step(OUTLINE, output="n", extract=extract.number()), inputs=["topic"])
    with pytest.raises(ChainStepError) as info:
        chain.run(pk.LLM(FakeBackend(["no digits"])), topic="x")
    assert isinstance(info.value.error, ExtractionError)
    assert info.value.error.text == "no digits"


def test_a_structured_step_running_out_of_attempts() -> None:
    chain = Chain(Step(OUTLINE, output="plan", model=Plan, max_attempts=1), inputs=["topic"])
    with pytest.raises(ChainStepError) as info:
        chain.run(pk.LLM(FakeBackend(["{}"])), topic="x")
    assert isinstance(info.value.error, StructuredOutputError)


def test_failure_in_async_run() -> None:
    fake = FakeBackend(["1. Bees", "Essay", pk.BackendTimeoutError("slow")])

    async def main() -> None:
        await make_chain().arun(pk.LLM(fake), topic="bees", tone="warm")

    with pytest.raises(ChainStepError) as info:
        asyncio.run(main())
    assert info.value.step == "title" and len(info.value.result.steps) == 2


# --------------------------------------------------------------------------- composition


def test_async_run() -> None:
    fake = FakeBackend(["1. Bees", "Bees are great.", "On Bees"])
    result = asyncio.run(make_chain().arun(pk.LLM(fake), topic="bees", tone="warm"))
    assert result.output == "On Bees"


def test_self_consistency_step_passes_on_the_winning_answer() -> None:
    cot = pk.ChainOfThought(instruction="Solve.", template="{{ problem }}")
    check = pk.ZeroShot(instruction="Check.", template="{{ answer }}")
    chain = Chain(
        Step(SelfConsistency(cot, k=3), output="answer"),
        Step(check, output="checked"),
        inputs=["problem"],
    )
    fake = FakeBackend(["The answer is 4.", "The answer is 5.", "The answer is 4.", "fine"])
    result = chain.run(pk.LLM(fake), problem="2+2")
    assert result["answer"] == "4"
    assert result.step("answer").result.counts == {"4": 2, "5": 1}
    assert result.step("answer").usage.total_tokens


def test_nested_chain_and_refine_steps() -> None:
    inner = Chain(Step(OUTLINE, output="outline"), inputs=["topic"], name="inner")
    critique = pk.ZeroShot(instruction="Critique.", template="{{ draft }}")
    revise = pk.ZeroShot(instruction="Revise.", template="{{ draft }} / {{ critique }}")
    refine = Refine(
        pk.ZeroShot(instruction="Draft.", template="{{ outline }}"), critique, revise, rounds=1
    )
    chain = Chain(Step(inner, output="outline"), Step(refine, output="text"), inputs=["topic"])
    fake = FakeBackend(["1. Bees", "draft", "too short", "longer draft"])
    result = chain.run(pk.LLM(fake), topic="bees")
    assert result["outline"] == "1. Bees" and result["text"] == "longer draft"
    assert result.step("text").text == "longer draft"


def test_step_params_and_run_params() -> None:
    chain = Chain(
        Step(OUTLINE, output="outline", params=pk.SamplingParams(max_tokens=5, temperature=0.5)),
        inputs=["topic"],
    )
    fake = FakeBackend(["x"])
    chain.run(pk.LLM(fake), params=pk.SamplingParams(temperature=0.1), topic="t")
    assert fake.requests[0].params == {"max_tokens": 5, "temperature": 0.1}


def test_documents_pass_through_when_mapped() -> None:
    ctx = pk.Context(instruction="Answer.", template="{{ question }}")
    chain = Chain(
        Step(ctx, output="answer", inputs={"documents": "docs"}), inputs=["question", "docs"]
    )
    fake = FakeBackend(["5 days [kb-1]"])
    chain.run(pk.LLM(fake), question="Refunds?", docs=[pk.Document(id="kb-1", text="5 days.")])
    assert fake.requests[0].messages is not None
    assert "<<<DOCUMENT kb-1>>>" in fake.requests[0].messages[-1].content
    with pytest.raises(pk.UnexpectedVariablesError):  # not declared: an error, not ignored
        chain.run(pk.LLM(fake), question="?", docs=[], documents=[])


def test_repr() -> None:
    assert repr(make_chain()) == "Chain('outline', 'essay', 'title', inputs=['topic', 'tone'])"
