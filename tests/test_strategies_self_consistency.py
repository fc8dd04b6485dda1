"""SelfConsistency: sampling (native n, emulated n, top-up), extraction, voting, early stop."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import promptkit as pk
from promptkit import Choice, FakeBackend, Request, SamplingParams
from promptkit.strategies import SelfConsistency, Vote, extract, normalize
from promptkit.strategies.self_consistency import DEFAULT_TEMPERATURE, _decided

COT = pk.ChainOfThought(instruction="Solve the problem.")


def answers(*values: str) -> list[str]:
    return [f"Reasoning {i}. The answer is {v}." for i, v in enumerate(values)]


def same(text: str) -> Callable[[Request], list[str | Choice | BaseException]]:
    """A script giving every choice asked for (n of them) the same text."""
    return lambda request: [text] * int(request.params.get("n", 1))


def by_seed(texts: list[str], base: int) -> Callable[[Request], str]:
    """A script for emulated n: the reply is chosen by the request's seed (so the order of
    concurrent requests does not matter)."""

    def reply(request: Request) -> str:
        return texts[int(request.params["seed"]) - base]

    return reply


# --------------------------------------------------------------------------- sampling


def test_native_n_is_one_request_with_n_k() -> None:
    fake = FakeBackend(answers("42", "42", "41", "42", "40"))
    vote = SelfConsistency(COT, k=5).run(pk.LLM(fake), input="6 x 7?")
    assert len(fake.requests) == 1
    assert fake.requests[0].params["n"] == 5
    assert vote.answer == "42"
    assert vote.counts == {"42": 3, "41": 1, "40": 1}
    assert vote.agreement == pytest.approx(0.6)
    assert vote.requests == 1
    assert len(vote.samples) == 5 and vote.k == 5
    assert not vote.tie and vote.tied == ("42",)


def test_emulated_n_sends_k_requests_with_distinct_seeds() -> None:
    texts = answers("7", "7", "8", "7")
    fake = FakeBackend(by_seed(texts, 100), native_n=False)
    vote = SelfConsistency(COT, k=4, seed=100).run(pk.LLM(fake), input="3 + 4?")
    assert len(fake.requests) == 4
    assert sorted(r.params["seed"] for r in fake.requests) == [100, 101, 102, 103]
    assert all("n" not in r.params for r in fake.requests)
    # sample i is the reply to seed 100 + i: the order is the seeds' order, not arrival's
    assert [s.text for s in vote.samples] == texts
    assert vote.answer == "7" and vote.counts == {"7": 3, "8": 1}
    assert vote.seed == 100


def test_emulated_n_async_uses_distinct_seeds() -> None:
    texts = answers("a", "b", "a")
    fake = FakeBackend(by_seed(texts, 5), native_n=False)
    vote = asyncio.run(SelfConsistency(COT, k=3, seed=5).arun(pk.LLM(fake), input="?"))
    assert sorted(r.params["seed"] for r in fake.requests) == [5, 6, 7]
    assert [s.text for s in vote.samples] == texts
    assert vote.answer == "a"


def test_random_first_seed_when_none_is_given() -> None:
    fake = FakeBackend(lambda r: "The answer is 1.", native_n=False)
    vote = SelfConsistency(COT, k=3).run(pk.LLM(fake), input="?")
    seeds = sorted(r.params["seed"] for r in fake.requests)
    assert vote.seed is not None
    assert seeds == [vote.seed, vote.seed + 1, vote.seed + 2]


class DictCache:
    """A response cache keyed like promptkit's: messages, params and the sample index."""

    def __init__(self) -> None:
        self.store: dict[str, pk.Completion] = {}

    def _key(self, request: Request) -> str:
        messages = [m.to_dict() for m in request.messages or ()]
        # like promptkit's Cache: a seed the client drew for a sample is not in the key
        params = {
            k: v for k, v in request.params.items() if not (request.auto_seed and k == "seed")
        }
        return repr((messages, sorted(params.items()), request.sample))

    def get(self, backend: pk.Backend, request: Request) -> pk.Completion | None:
        return self.store.get(self._key(request))

    def put(self, backend: pk.Backend, request: Request, completion: pk.Completion) -> None:
        self.store[self._key(request)] = completion


@pytest.mark.parametrize("asynchronous", [False, True])
def test_cached_samples_stay_distinct_and_repeat(asynchronous: bool) -> None:
    fake = FakeBackend(lambda r: f"The answer is {r.sample}.", native_n=False)
    llm = pk.LLM(fake, cache=DictCache())
    sc = SelfConsistency(COT, k=4)

    def run() -> Vote[str]:
        if asynchronous:
            return asyncio.run(sc.arun(llm, input="?"))
        return sc.run(llm, input="?")

    first = run()
    assert first.counts == {"0": 1, "1": 1, "2": 1, "3": 1}
    assert first.seed is None  # no random seed with a cache: runs repeat
    second = run()
    assert [s.text for s in second.samples] == [s.text for s in first.samples]
    assert len(fake.requests) == 4


def test_no_seed_sent_to_a_backend_that_takes_none() -> None:
    fake = FakeBackend(lambda r: "The answer is 1.", native_n=False, supports=["temperature"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vote = SelfConsistency(COT, k=3).run(pk.LLM(fake), input="?")
    assert all("seed" not in r.params for r in fake.requests)
    assert vote.seed is None and len(vote.samples) == 3


@pytest.mark.parametrize("native_n", [True, False])
def test_sync_run_is_concurrent(native_n: bool) -> None:
    fake = FakeBackend(same("The answer is 1."), native_n=native_n, latency=0.2)
    started = time.perf_counter()
    vote = SelfConsistency(COT, k=8).run(pk.LLM(fake), input="?")
    took = time.perf_counter() - started
    assert len(vote.samples) == 8
    assert took < 0.6, f"8 samples took {took:.2f}s: not concurrent"


@pytest.mark.parametrize("native_n", [True, False])
def test_async_run_is_concurrent(native_n: bool) -> None:
    fake = FakeBackend(same("The answer is 1."), native_n=native_n, latency=0.2)
    started = time.perf_counter()
    vote = asyncio.run(SelfConsistency(COT, k=8).arun(pk.LLM(fake), input="?"))
    assert time.perf_counter() - started < 0.6
    assert len(vote.samples) == 8


def test_concurrency_is_bounded_by_llm_max_concurrency() -> None:
    fake = FakeBackend(lambda r: "The answer is 1.", native_n=False, latency=0.1)
    llm = pk.LLM(fake, max_concurrency=2)
    started = time.perf_counter()
    SelfConsistency(COT, k=6).run(llm, input="?")
    assert time.perf_counter() - started >= 0.28  # 3 waves of 2


def test_sync_run_works_inside_a_running_event_loop() -> None:
    async def main() -> Vote[str]:
        fake = FakeBackend(lambda r: "The answer is 9.", native_n=False)
        return SelfConsistency(COT, k=3).run(pk.LLM(fake), input="?")

    assert asyncio.run(main()).answer == "9"


# --------------------------------------------------------------------------- top-up


def test_top_up_when_a_native_server_returns_fewer_choices() -> None:
    fake = FakeBackend(answers("1", "2", "1", "1", "3"), native_n=True, max_choices=2)
    vote = SelfConsistency(COT, k=5).run(pk.LLM(fake), input="?")
    assert len(vote.samples) == 5
    # the server kept n to 2, so it does not honour n: the rest come as single requests
    assert [r.params.get("n", 1) for r in fake.requests] == [5, 1, 1, 1]
    assert vote.requests == 4
    assert vote.counts == {"1": 3, "2": 1, "3": 1}


def test_top_up_async_when_the_server_returns_fewer_choices() -> None:
    fake = FakeBackend(answers("1", "2", "1", "1", "3"), native_n=True, max_choices=2)
    vote = asyncio.run(SelfConsistency(COT, k=5).arun(pk.LLM(fake), input="?"))
    assert len(vote.samples) == 5 and vote.requests == 4


def test_server_ignoring_n_is_topped_up_to_k_samples() -> None:
    """A llama.cpp-like server: one choice per request whatever n says."""
    fake = FakeBackend(lambda r: "The answer is 4.", native_n=True, max_choices=1)
    vote = SelfConsistency(COT, k=4).run(pk.LLM(fake), input="?")
    assert len(vote.samples) == 4 and vote.counts == {"4": 4}
    assert len(fake.requests) == 4


def test_no_choices_is_an_error_not_a_hang() -> None:
    llm = pk.LLM(FakeBackend(lambda r: []))
    with pytest.raises(pk.MalformedResponseError):
        SelfConsistency(COT, k=3).run(llm, input="?")


# --------------------------------------------------------------------------- voting rules


def test_tie_goes_to_the_answer_that_appeared_first() -> None:
    fake = FakeBackend(answers("B", "A", "A", "B"))
    vote = SelfConsistency(COT, k=4).run(pk.LLM(fake), input="?")
    assert vote.tie is True
    assert vote.tied == ("b", "a")
    assert vote.answer == "B"  # as extracted from the first sample that gave it
    assert vote.key == "b"
    assert vote.agreement == 0.5


def test_tie_rule_with_a_later_leader_in_counts() -> None:
    vote = SelfConsistency(COT, k=5).vote(answers("x", "y", "y", "x", "z"))
    assert vote.answer == "x" and vote.tied == ("x", "y")
    assert list(vote.counts) == ["x", "y", "z"]


def test_unextractable_samples_are_kept_and_counted_under_none() -> None:
    texts = [*answers("5", "5"), "I am not sure.", "Hmm", *answers("6")]
    fake = FakeBackend(texts)
    vote = SelfConsistency(COT, k=5).run(pk.LLM(fake), input="?")
    assert len(vote.samples) == 5
    assert vote.counts == {"5": 2, "6": 1, None: 2}
    assert vote.unextracted == 2
    assert vote.agreement == pytest.approx(2 / 5)
    bad = [s for s in vote.samples if not s.extracted]
    assert [s.text for s in bad] == ["I am not sure.", "Hmm"]
    assert all(s.answer is None and s.key is None and s.error for s in bad)


def test_no_extractable_answer_at_all() -> None:
    vote = SelfConsistency(COT, k=3).vote(["no", "idea", "sorry"])
    assert vote.answer is None and vote.key is None
    assert vote.counts == {None: 3}
    assert vote.agreement == 0.0 and not vote.tie and vote.tied == ()


def test_unextracted_never_wins_even_as_the_majority() -> None:
    vote = SelfConsistency(COT, k=3).vote(["?", "??", "The answer is 3."])
    assert vote.answer == "3" and vote.counts == {"3": 1, None: 2}
    assert vote.agreement == pytest.approx(1 / 3)


def test_samples_keep_reasoning_answer_and_finish_reason() -> None:
    fake = FakeBackend(
        [Choice("2+2 is 4. The answer is 4.", 0, "stop"), Choice("The ans", 1, "length")]
    )
    vote = SelfConsistency(COT, k=2).run(pk.LLM(fake), input="?")
    first, second = vote.samples
    assert first.reasoning == "2+2 is 4. The answer is 4." and first.answer == "4"
    assert first.finish_reason == "stop" and first.index == 0
    assert second.finish_reason == "length" and second.answer is None


def test_usage_is_summed_over_every_call() -> None:
    fake = FakeBackend(lambda r: "x" * 40 + " The answer is 1.", native_n=False)
    vote = SelfConsistency(COT, k=3).run(pk.LLM(fake), input="?")
    one = pk.LLM(FakeBackend(lambda r: "x" * 40 + " The answer is 1.")).complete(
        COT.render(input="?")
    )
    assert one.usage.total_tokens is not None
    assert vote.usage.total_tokens == 3 * one.usage.total_tokens
    assert vote.requests == 3


# --------------------------------------------------------------------------- normalising


def test_default_normaliser_merges_spellings() -> None:
    vote = SelfConsistency(COT, k=5).vote(answers("42", "42.0", " **42** ", "forty-two", "42.00"))
    assert vote.counts == {"42": 4, "fortytwo": 1}
    assert vote.answer == "42"


def test_normalisers_are_replaceable() -> None:
    sc = SelfConsistency(COT, k=3, normalize=normalize.identity)
    assert sc.vote(answers("Paris", "paris", "Paris")).counts == {"Paris": 2, "paris": 1}
    sc2 = SelfConsistency(COT, k=3, normalize=[normalize.whitespace, str.upper])
    assert sc2.vote(answers("Paris", "paris", "Rome")).counts == {"PARIS": 2, "ROME": 1}
    sc3 = SelfConsistency(COT, k=2, normalize=lambda s: s[:1])
    assert sc3.vote(answers("Paris", "Prague")).counts == {"P": 2}


def test_an_answer_empty_once_normalised_counts_as_unextracted() -> None:
    vote = SelfConsistency(COT, k=2).vote(answers("?!", "3"))
    assert vote.counts == {"3": 1, None: 1}
    assert vote.samples[0].error == "the answer is empty once normalised"


# --------------------------------------------------------------------------- extractors


def test_default_extractor_without_answer_format_is_the_last_line() -> None:
    p = pk.ZeroShot(instruction="Answer.")
    vote = SelfConsistency(p, k=2).vote(["thinking\nParis", "Paris\n"])
    assert vote.answer == "Paris" and vote.counts == {"paris": 2}


def test_regex_extractor_first_group() -> None:
    sc = SelfConsistency(pk.ZeroShot(instruction="x"), k=3, extract=extract.regex(r"ANSWER: (\w+)"))
    vote = sc.vote(["ANSWER: yes", "so ANSWER: no", "nothing"])
    assert vote.counts == {"yes": 1, "no": 1, None: 1}


def test_json_field_extractor_keys_numbers_canonically() -> None:
    sc = SelfConsistency(COT, k=4, extract=extract.json_field("result.value"))
    vote = sc.vote(
        [
            '{"result": {"value": 42}}',
            'Here: {"result": {"value": 42.0}}',
            '{"result": {"other": 1}}',
            '{"result": {"value": "42"}}',
        ]
    )
    assert vote.counts == {"42": 3, None: 1}
    assert vote.answer == 42
    assert "value" in (vote.samples[2].error or "")


class Verdict(BaseModel):
    label: str
    score: int


def test_model_extractor_votes_on_whole_models() -> None:
    sc = SelfConsistency(COT, k=4, extract=extract.model(Verdict))
    vote = sc.vote(
        [
            '{"label": "ok", "score": 1}',
            '{"score": 1, "label": "ok"}',
            '{"label": "ok"}',
            '{"label": "bad", "score": 0}',
        ]
    )
    assert vote.answer == Verdict(label="ok", score=1)
    assert vote.counts == {'{"label":"ok","score":1}': 2, '{"label":"bad","score":0}': 1, None: 1}
    assert "score" in (vote.samples[2].error or "")


def test_any_callable_extracts_and_value_error_means_unextracted() -> None:
    def first_word(text: str) -> str:
        if not text:
            raise ValueError("empty reply")
        return text.split()[0]

    vote = SelfConsistency(COT, k=3, extract=first_word).vote(["yes sir", "", "yes"])
    assert vote.counts == {"yes": 2, None: 1}
    assert vote.samples[1].error == "empty reply"


def test_other_extractor_exceptions_propagate() -> None:
    def broken(text: str) -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        SelfConsistency(COT, k=1, extract=broken).vote(["x"])


# --------------------------------------------------------------------------- early stop


def test_early_stop_when_the_first_half_agrees() -> None:
    fake = FakeBackend(answers(*["9"] * 10))
    vote = SelfConsistency(COT, k=10, early_stop=True).run(pk.LLM(fake), input="?")
    assert [r.params["n"] for r in fake.requests] == [5]
    assert len(vote.samples) == 5
    assert vote.calls_saved == 5 and vote.stopped_early
    assert vote.answer == "9" and vote.agreement == 1.0


def test_early_stop_keeps_sampling_while_the_winner_could_change() -> None:
    seq = ["1", "2", "1", "2", "1", "1", "1", "2", "2", "2"]
    fake = FakeBackend(answers(*seq))
    vote = SelfConsistency(COT, k=10, early_stop=True).run(pk.LLM(fake), input="?")
    full = SelfConsistency(COT, k=10).vote(answers(*seq))
    assert vote.answer == full.answer == "1"
    # 5 samples (3-2), then 2 more (5-2 with 3 left: "2" could only tie, and came later)
    assert [r.params.get("n", 1) for r in fake.requests] == [5, 2]
    assert vote.calls_saved == 3


def test_early_stop_off_asks_for_all_k_at_once() -> None:
    fake = FakeBackend(answers(*["9"] * 6))
    vote = SelfConsistency(COT, k=6).run(pk.LLM(fake), input="?")
    assert [r.params["n"] for r in fake.requests] == [6]
    assert vote.calls_saved == 0 and not vote.stopped_early


def test_early_stop_with_emulated_n_saves_requests() -> None:
    fake = FakeBackend(lambda r: "The answer is 3.", native_n=False)
    vote = SelfConsistency(COT, k=7, early_stop=True).run(pk.LLM(fake), input="?")
    assert len(fake.requests) == 4 and vote.calls_saved == 3


def test_early_stop_fixed_batches() -> None:
    fake = FakeBackend(answers(*["9"] * 10))
    vote = SelfConsistency(COT, k=10, early_stop=True, batch=2).run(pk.LLM(fake), input="?")
    assert [r.params["n"] for r in fake.requests] == [2, 2, 2]
    assert vote.calls_saved == 4


def test_early_stop_seeds_continue_across_rounds() -> None:
    fake = FakeBackend(lambda r: "The answer is 3.", native_n=False)
    SelfConsistency(COT, k=7, early_stop=True, batch=3, seed=10).run(pk.LLM(fake), input="?")
    assert sorted(r.params["seed"] for r in fake.requests) == [10, 11, 12, 13, 14, 15]


def test_early_stop_async() -> None:
    fake = FakeBackend(answers(*["9"] * 10))
    vote = asyncio.run(SelfConsistency(COT, k=10, early_stop=True).arun(pk.LLM(fake), input="?"))
    assert vote.calls_saved == 5


def test_decided_rule() -> None:
    assert _decided({"a": 3}, {"a": 0}, 3)  # a new answer could only tie, and comes later
    assert not _decided({"a": 3}, {"a": 0}, 4)
    assert not _decided({"a": 3, "b": 1}, {"a": 1, "b": 0}, 2)  # b could tie and came first
    assert _decided({"a": 3, "b": 1}, {"a": 0, "b": 1}, 2)
    assert not _decided({}, {}, 1)
    assert _decided({}, {}, 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "?"]), min_size=1, max_size=12), st.data())
def test_early_stop_never_changes_the_winner(seq: list[str], data: st.DataObject) -> None:
    texts = [f"The answer is {x}." if x != "?" else "no idea" for x in seq]
    batch = data.draw(st.one_of(st.none(), st.integers(1, 4)))
    fake = FakeBackend(texts)
    early = SelfConsistency(COT, k=len(texts), early_stop=True, batch=batch).run(
        pk.LLM(fake), input="?"
    )
    full = SelfConsistency(COT, k=len(texts)).vote(texts)
    assert early.answer == full.answer
    assert len(early.samples) + early.calls_saved == len(texts)


# --------------------------------------------------------------------------- parameters


def test_default_temperature_is_set_only_when_unset() -> None:
    fake = FakeBackend(answers("1", "1", "1"))
    SelfConsistency(COT, k=3).run(pk.LLM(fake), input="?")
    assert fake.requests[0].params["temperature"] == DEFAULT_TEMPERATURE

    fake2 = FakeBackend(answers("1", "1", "1"))
    SelfConsistency(COT, k=3).run(pk.LLM(fake2, params=SamplingParams(temperature=1.0)), input="?")
    assert fake2.requests[0].params["temperature"] == 1.0

    fake3 = FakeBackend(answers("1", "1", "1"))
    SelfConsistency(COT, k=3, temperature=0.3).run(pk.LLM(fake3), input="?")
    assert fake3.requests[0].params["temperature"] == 0.3


def test_params_layers() -> None:
    prompt = COT.model_copy(update={"params": SamplingParams(max_tokens=10, top_p=0.5)})
    fake = FakeBackend(answers("1", "1"))
    sc = SelfConsistency(prompt, k=2, params=SamplingParams(max_tokens=20, temperature=0.9))
    sc.run(pk.LLM(fake), params=SamplingParams(temperature=0.1), input="?")
    sent = fake.requests[0].params
    assert sent["max_tokens"] == 20 and sent["top_p"] == 0.5 and sent["temperature"] == 0.1


@pytest.mark.parametrize("k", [0, -1, 129, 2.5, True])
def test_k_is_validated(k: object) -> None:
    with pytest.raises(pk.ParameterError, match="k="):
        SelfConsistency(COT, k=k)  # type: ignore[call-overload]


def test_missing_variables_fail_before_any_call() -> None:
    fake = FakeBackend([])
    with pytest.raises(pk.MissingVariablesError):
        SelfConsistency(COT, k=3).run(pk.LLM(fake))
    assert fake.requests == []


def test_repr_and_vote_repr() -> None:
    sc = SelfConsistency(COT, k=3, early_stop=True)
    assert repr(sc) == "SelfConsistency(ChainOfThought, k=3, early_stop=True)"
    vote = sc.vote(answers("1", "1", "2"))
    assert "samples" not in repr(vote) and "answer='1'" in repr(vote)
