"""Few-shot example selection: by similarity, by MMR, by a token budget; determinism,
exactly the chosen examples in the rendered messages, caching, async."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

import promptkit as pk
from promptkit._tokens import APPROX, message_cost
from promptkit.retrieval import (
    ExampleCandidates,
    ExampleSelector,
    LengthBudgetExamples,
    MMRExamples,
    SimilarExamples,
)

pytest.importorskip("numpy")

EXAMPLES = [
    pk.Example(input="Where is my parcel?", output="tracking"),
    pk.Example(input="I want a refund for my order", output="refund"),
    pk.Example(input="The lamp arrived broken", output="damaged"),
    pk.Example(input="Can I pay with a card?", output="payment"),
    pk.Example(input="Refund for the broken lamp please", output="refund-damaged"),
]


def shown(messages: Sequence[pk.Message]) -> list[str]:
    """The outputs of the examples in rendered messages (assistant turns)."""
    return [m.content for m in messages if m.role == "assistant"]


@pytest.fixture
def fake() -> pk.FakeBackend:
    return pk.FakeBackend(["ok"] * 20)


def prompt(selector: Any, **kw: Any) -> pk.FewShot:
    return pk.FewShot(
        instruction="Label the customer message.",
        examples=EXAMPLES,
        example_selector=selector,
        **kw,
    )


# --------------------------------------------------------------------------- similarity


def test_similar_examples_are_chosen_and_shown(fake: pk.FakeBackend) -> None:
    p = prompt(SimilarExamples(k=2, embedder=pk.LLM(fake)))
    messages = p.render(input="My lamp is broken, I want a refund")
    # "refund" and "damaged" are equally similar (0.577): the one listed first wins
    assert shown(messages) == ["refund-damaged", "refund"]
    users = [m.content for m in messages if m.role == "user"]
    assert users == [
        "Refund for the broken lamp please",
        "I want a refund for my order",
        "My lamp is broken, I want a refund",
    ]
    assert [e.output for e in p.select_examples(input="My lamp is broken, I want a refund")] == [
        "refund-damaged",
        "refund",
    ]
    assert shown(p.render(input="Where is the parcel I ordered?"))[0] == "tracking"


def test_selection_is_deterministic_across_selectors_and_processes(fake: pk.FakeBackend) -> None:
    picks = {
        tuple(shown(prompt(SimilarExamples(3, pk.LLM(pk.FakeBackend()))).render(input=q)))
        for q in ["refund please"] * 3
    }
    assert len(picks) == 1
    # equal similarity: the example listed first wins
    twins = [pk.Example(input="same words", output=str(i)) for i in range(4)]
    p = pk.FewShot(examples=twins, example_selector=SimilarExamples(2, pk.LLM(fake)))
    assert shown(p.render(input="same words")) == ["0", "1"]


def test_examples_are_embedded_once(fake: pk.FakeBackend) -> None:
    p = prompt(SimilarExamples(k=2, embedder=pk.LLM(fake)))
    for q in ["refund", "parcel", "refund", "card"]:
        p.render(input=q)
    batches = fake.embed_requests
    assert batches[0] == [e.input for e in EXAMPLES]
    assert [b for b in batches if len(b) > 1] == [batches[0]]  # the examples, once
    assert [b[0] for b in batches[1:]] == ["refund", "parcel", "card"]  # inputs remembered


def test_cached_example_messages_follow_the_selection(fake: pk.FakeBackend) -> None:
    p = prompt(SimilarExamples(k=1, embedder=pk.LLM(fake)))
    a = p.render(input="parcel where")
    b = p.render(input="pay by card")
    assert shown(a) == ["tracking"] and shown(b) == ["payment"]
    assert p.render(input="parcel where") == a  # nothing stale in the caches


def test_inline_layout_shows_the_selection_in_the_system_message(fake: pk.FakeBackend) -> None:
    p = prompt(SimilarExamples(k=1, embedder=pk.LLM(fake)), examples_layout="inline")
    first = p.render(input="parcel where")[0].content
    second = p.render(input="pay by card")[0].content
    assert "Where is my parcel?" in first and "Can I pay" not in first
    assert "Can I pay with a card?" in second and "parcel" not in second


def test_most_similar_last_k_zero_and_max_examples(fake: pk.FakeBackend) -> None:
    llm = pk.LLM(fake)
    q = "My lamp is broken, I want a refund"
    assert shown(prompt(SimilarExamples(2, llm, most_similar_last=True)).render(input=q)) == [
        "refund",
        "refund-damaged",
    ]
    assert shown(prompt(SimilarExamples(0, llm)).render(input=q)) == []
    assert len(shown(prompt(SimilarExamples(9, llm)).render(input=q))) == 5
    assert shown(prompt(SimilarExamples(3, llm), max_examples=1).render(input=q)) == [
        "refund-damaged"
    ]


def test_several_variables_are_compared_as_name_value_lines() -> None:
    seen: list[tuple[str, tuple[str, ...]]] = []

    class Spy:
        def select(self, c: ExampleCandidates) -> list[int]:
            seen.append((c.query, tuple(c.texts)))
            return [1]

    p = pk.FewShot(
        template="{{ product }}: {{ review }}",
        examples=[
            pk.Example(input={"product": "lamp", "review": "bright"}, output="positive"),
            pk.Example(input={"product": "mug", "review": "leaks"}, output="negative"),
        ],
        example_selector=Spy(),
    )
    assert shown(p.render(product="kettle", review="leaks")) == ["negative"]
    assert seen == [
        (
            "product: kettle\nreview: leaks",
            ("product: lamp\nreview: bright", "product: mug\nreview: leaks"),
        )
    ]


def test_a_custom_selector_and_bad_answers() -> None:
    class Last:
        def select(self, c: ExampleCandidates) -> list[int]:
            return [len(c.examples) - 1]

    assert isinstance(Last(), ExampleSelector)
    assert shown(prompt(Last()).render(input="x")) == ["refund-damaged"]
    for bad in ([7], [0, 0], ["a"], None):

        class Bad:
            def select(self, c: ExampleCandidates, bad: Any = bad) -> Any:
                return bad

        with pytest.raises(pk.PromptError, match="distinct indices from 0 to 4"):
            prompt(Bad()).render(input="x")


def test_all_examples_are_validated_when_a_selector_may_pick_any() -> None:
    bad = [*EXAMPLES, pk.Example(input={"wrong": "x"}, output="y")]
    with pytest.raises(pk.InvalidPromptError, match="example 5"):
        pk.FewShot(examples=bad, example_selector=SimilarExamples(1, lambda t: [[1.0]] * len(t)))
    pk.FewShot(examples=bad, max_examples=5)  # without a selector only the used ones count


def test_the_selector_is_not_serialised(fake: pk.FakeBackend) -> None:
    sel = SimilarExamples(2, pk.LLM(fake))
    p = prompt(sel)
    assert "example_selector" not in p.model_dump() and "example_selector" not in repr(p)
    assert p.model_copy(update={"role": "an agent"}).example_selector is sel
    persp = pk.Perspectives(
        perspectives=["A", "B"], examples=EXAMPLES, example_selector=sel, token_counter=APPROX
    )
    one = persp.viewpoint("A")
    assert one.example_selector is sel and one.token_counter is APPROX


# --------------------------------------------------------------------------- MMR


def test_mmr_trades_similarity_for_diversity(fake: pk.FakeBackend) -> None:
    examples = [
        pk.Example(input="refund for a lamp", output="a"),
        pk.Example(input="refund for a lamp please", output="b"),
        pk.Example(input="refund after a shipping delay", output="c"),
        pk.Example(input="card payment failed", output="d"),
    ]
    llm = pk.LLM(fake)

    def pick(selector: Any) -> list[str]:
        p = pk.FewShot(examples=examples, example_selector=selector)
        return shown(p.render(input="refund lamp shipping"))

    # similarity to the input: a 0.82, b 0.67 (a near copy of a), c 0.58, d 0
    assert pick(SimilarExamples(2, llm)) == ["a", "b"]
    assert pick(MMRExamples(2, llm, lambda_=0.5)) == ["a", "c"]  # relevant, unlike a
    assert pick(MMRExamples(2, llm, lambda_=0.3)) == ["a", "d"]  # diversity above all
    assert pick(MMRExamples(2, llm, lambda_=1.0)) == pick(SimilarExamples(2, llm))
    assert pick(MMRExamples(3, llm, lambda_=0.0, fetch_k=2)) == ["a", "b"]
    with pytest.raises(ValueError, match="lambda_"):
        MMRExamples(2, llm, lambda_=1.5)
    with pytest.raises(ValueError, match="k="):
        MMRExamples(-1, llm)


# --------------------------------------------------------------------------- length budget


def total_cost(messages: Sequence[pk.Message], counter: Any = None) -> int:
    cost = message_cost(counter)
    return sum(cost(m.content) for m in messages)


@pytest.mark.parametrize("budget", [0, 20, 40, 60, 80, 100, 120, 1000])
def test_the_budget_is_respected(budget: int) -> None:
    messages = prompt(LengthBudgetExamples(budget)).render(input="Hello there")
    # the oracle: every example rendered by a plain prompt, taken greedily in order
    everything = prompt(None).render(input="Hello there")
    left = budget - total_cost([everything[0], everything[-1]])
    expected = []
    for i in range(len(EXAMPLES)):
        pair = everything[1 + 2 * i : 3 + 2 * i]
        if total_cost(pair) <= left:
            expected.append(pair[1].content)
            left -= total_cost(pair)
    assert shown(messages) == expected
    if expected:
        assert total_cost(messages) <= budget
    assert (budget >= 120) == (len(expected) == 5) and (budget <= 20) == (not expected)


def test_a_longer_input_leaves_room_for_fewer_examples() -> None:
    p = prompt(LengthBudgetExamples(100))
    short = shown(p.render(input="Hi"))
    long = shown(p.render(input="Hi " + "very " * 40))
    assert len(long) < len(short)
    assert short == ["tracking", "refund", "damaged", "payment"]  # in order, while they fit


def test_examples_that_do_not_fit_are_skipped_in_order() -> None:
    examples = [
        pk.Example(input="x" * 400, output="long"),
        pk.Example(input="short one", output="short"),
        pk.Example(input="y" * 200, output="medium"),
        pk.Example(input="tiny", output="tiny"),
    ]
    p = pk.FewShot(examples=examples, example_selector=LengthBudgetExamples(60))
    assert shown(p.render(input="hello")) == ["short", "tiny"]
    assert (
        shown(p.model_copy(update={"example_selector": LengthBudgetExamples(0)}).render(input="a"))
        == []
    )


def test_budget_with_a_token_counter_and_a_ranking(fake: pk.FakeBackend) -> None:
    class Words:
        def count(self, text: str) -> int:
            return len(text.split())

    ranked = LengthBudgetExamples(60, counter=Words(), ranked_by=SimilarExamples(5, pk.LLM(fake)))
    p = prompt(ranked)
    messages = p.render(input="broken lamp refund")
    assert total_cost(messages, Words()) <= 60
    assert shown(messages)[0] == "refund-damaged"  # most similar first, then what fits
    with pytest.raises(ValueError, match="max_tokens"):
        LengthBudgetExamples(-1)


def test_history_counts_against_the_budget() -> None:
    base = pk.Conversation(
        examples=EXAMPLES, example_selector=LengthBudgetExamples(120), role="a support agent"
    )
    talk = base.with_turn("a " * 30, "b " * 30)
    without, with_history = base.render(input="hi"), talk.render(input="hi")
    assert len(shown(with_history)) - 1 < len(shown(without))  # the turn's answer is shown too
    assert total_cost(with_history) <= 120 and total_cost(without) <= 120


# --------------------------------------------------------------------------- async


def test_async_render_and_run_use_aselect(fake: pk.FakeBackend) -> None:
    llm = pk.LLM(fake)
    p = prompt(SimilarExamples(2, llm))
    q = "My lamp is broken, I want a refund"
    assert asyncio.run(p.arender(input=q)) == p.render(input=q)
    reply = asyncio.run(p.arun(llm, input=q))
    assert reply.text == "ok"
    assert shown(fake.requests[-1].messages or []) == ["refund-damaged", "refund"]
    ranked = prompt(LengthBudgetExamples(80, ranked_by=MMRExamples(3, llm)))
    assert asyncio.run(ranked.arender(input=q)) == ranked.render(input=q)
    plain = prompt(LengthBudgetExamples(80))
    assert asyncio.run(plain.arender(input=q)) == plain.render(input=q)


def test_async_render_runs_a_sync_only_selector_in_a_thread() -> None:
    class First:
        def select(self, c: ExampleCandidates) -> list[int]:
            return [0]

    p = prompt(First())
    assert shown(asyncio.run(p.arender(input="x"))) == ["tracking"]


def test_a_fresh_async_index_selector_embeds_through_aembed(fake: pk.FakeBackend) -> None:
    sel = MMRExamples(2, pk.LLM(fake))

    async def go() -> list[str]:
        return shown(await prompt(sel).arender(input="card payment"))

    assert asyncio.run(go())[0] == "payment"
    assert fake.embed_requests[0] == [e.input for e in EXAMPLES]
