"""Evaluation on the fake backend: datasets, the split and the overlap refusal, every metric,
the Wilson interval, running prompts and strategies, costs, several backends, the cache,
durable results, and the report (table, JSON, HTML, SVG, PNG)."""

from __future__ import annotations

import asyncio
import html.parser
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar

import pytest

import promptkit as pk
from promptkit import LLM, Cache, ChainOfThought, Example, FakeBackend, FewShot, Request, ZeroShot
from promptkit.evaluation import (
    Dataset,
    DatasetError,
    EvalReport,
    EvaluationError,
    ItemResult,
    OverlapError,
    Price,
    Record,
    Split,
    Variant,
    VariantResult,
    aevaluate,
    evaluate,
    load_dataset,
    metrics,
    split,
    wilson_interval,
)
from promptkit.strategies import SelfConsistency, extract

# --------------------------------------------------------------------------- helpers

ROWS = [
    {"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": 2 * i} for i in range(1, 11)
]


def data() -> Dataset:
    return Dataset.from_rows(ROWS, expected="answer", name="doubles")


def last_user(req: Request) -> str:
    return list(req.messages or [])[-1].content


def system_of(req: Request) -> str:
    return next(iter(req.messages or [])).content


def doubler(req: Request) -> str:
    """Right for every question: 'What is N plus N?' -> '2N'."""
    n = int(re.findall(r"\d+", last_user(req))[0])
    return str(2 * n)


def run(variants: dict[str, Any], dataset: Any, llm: Any, **kw: Any) -> EvalReport:
    kw.setdefault("inputs", {"input": "question"})
    kw.setdefault("progress", False)
    kw.setdefault("metric", "numeric")
    return evaluate(variants, dataset, llm, **kw)


ZS = ZeroShot(instruction="Reply with the number.")


# --------------------------------------------------------------------------- datasets


def test_load_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text(
        '\ufeff{"id": "a", "q": "1+1?", "answer": 2}\n\n{"q": "2+2?", "answer": [4, "four"]}\n',
        encoding="utf-8",
    )
    d = load_dataset(p, expected="answer")
    assert d.ids == ["a", "3"]  # rows without an id take their line number
    assert d[0] == Record("a", {"id": "a", "q": "1+1?"}, 2)
    assert d[1].expected == [4, "four"] and d[1].source == "d.jsonl:3"
    assert d.name == "d.jsonl" and isinstance(d[:1], Dataset) and len(d[:1]) == 1


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ('{"q": 1, "answer": 2}\n{"q": 2, "answer": }\n', 2, None, "invalid JSON"),
        ('{"q": 1, "answer": 2}\n[1, 2]\n', 2, None, "expected a JSON object"),
        ('{"q": 1, "answer": 2}\n\n{"q": 2}\n', 3, "answer", "field 'answer' (the expected"),
        ('{"q": 1, "answer": "  "}\n', 1, "answer", "is empty"),
        ('{"q": 1, "answer": 2, "id": [1]}\n', 1, "id", "must be a string or a whole number"),
    ],
)
def test_bad_jsonl_rows_name_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, words: str
) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_dataset(p, expected="answer")
    assert info.value.line == line and info.value.field == field
    assert str(info.value).startswith(f"{p} line {line}: ") and words in str(info.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "dup.jsonl"
    p.write_text('{"id": 1, "answer": 1}\n{"id": "1", "answer": 2}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"id '1' is used twice \(dup.jsonl:1 and dup.jsonl:2\)"):
        load_dataset(p, expected="answer")


def test_load_csv(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text('question,answer\n"Two, plus two?",4\n\n3+3?,6\n', encoding="utf-8")
    d = load_dataset(p, expected="answer")
    assert [r.fields["question"] for r in d] == ["Two, plus two?", "3+3?"]
    assert [r.expected for r in d] == ["4", "6"] and d.ids == ["2", "4"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("question,answer\n1+1?,2,extra\n", 2, "the row has 3 fields but the header has 2"),
        ("question,answer\n1+1?,\n", 2, "'answer' (the expected answer) is empty"),
        ("question,question\n1,2\n", 1, "the header row repeats ['question']"),
        ("question\n1+1?\n", 2, "field 'answer' (the expected answer) is missing"),
    ],
)
def test_bad_csv_rows_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_dataset(p, expected="answer")
    assert info.value.line == line and words in str(info.value)


def test_dataset_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"use \.jsonl or \.csv"):
        load_dataset(tmp_path / "d.txt")
    with pytest.raises(DatasetError, match="cannot read the file"):
        load_dataset(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="holds no records"):
        load_dataset(tmp_path / "empty.jsonl")
    with pytest.raises(DatasetError, match="row 2: field 'expected'"):
        Dataset.from_rows([{"expected": 1}, {"x": 2}])


def test_examples_from_records() -> None:
    d = Dataset.from_rows(
        [{"a": "x", "b": "y", "why": "because", "expected": 1}, {"a": "z", "b": "w", "expected": 2}]
    )
    assert d.examples(1, input={"first": "a", "second": "b"}, rationale="why") == [
        Example(input={"first": "x", "second": "y"}, output="1", rationale="because")
    ]
    with pytest.raises(DatasetError, match=r"record '2' .* has no field 'why'"):
        d.examples(input="a", rationale="why")
    with pytest.raises(DatasetError, match="only 2 records"):
        d.examples(3, input="a")


# --------------------------------------------------------------------------- the split


def test_split_is_deterministic_disjoint_and_ordered() -> None:
    d = data()
    first, again = split(d, holdout=0.3, seed=4), d.split(0.3, seed=4)
    assert isinstance(first, Split) and first.train.ids == again.train.ids
    assert len(first.test) == 3 and len(first.train) == 7
    assert set(first.train.ids).isdisjoint(first.test.ids)
    assert sorted(first.train.ids + first.test.ids) == sorted(d.ids)
    for part in first:  # each part keeps the dataset's order
        assert part.ids == [i for i in d.ids if i in part.ids]
    assert split(d, holdout=0.3, seed=5).test.ids != first.test.ids  # another seed, another cut
    assert len(split(d, holdout=4).test) == 4
    assert len(split(d, holdout=0.01).test) == 1  # at least one on each side


@pytest.mark.parametrize("holdout", [0, 10, 0.0, 1.0, True, "half"])
def test_split_refuses_bad_holdouts(holdout: Any) -> None:
    with pytest.raises(DatasetError, match="holdout"):
        split(data(), holdout=holdout)


def test_few_shot_examples_from_the_test_part_are_refused() -> None:
    train, test = data().split(holdout=0.5, seed=0)
    leaky = FewShot(instruction="Double it.", examples=test.examples(2, input="question"))
    fake = FakeBackend(doubler)
    llm = LLM(fake)
    with pytest.raises(OverlapError) as info:
        run({"leaky": leaky}, test, llm)
    err = info.value
    assert err.variant == "leaky" and err.overlaps == [(0, test[0].id), (1, test[1].id)]
    assert "example 1 is item" in str(err) and "allow_overlap=True" in str(err)
    assert not fake.requests  # refused before any call
    # a Split is scored on its test part; examples from its train part are fine
    clean = FewShot(instruction="Double it.", examples=train.examples(2, input="question"))
    assert run({"clean": clean}, Split(train, test), llm)["clean"].n == len(test)
    assert run({"leaky": leaky}, test, llm, allow_overlap=True)["leaky"].accuracy == 1.0


def test_overlap_is_found_inside_strategies_and_ignores_case_and_spacing() -> None:
    d = data()
    shouting = Example(input="  WHAT IS 3 PLUS   3? ", output="6")
    cot = ChainOfThought(instruction="Double it.", examples=[shouting])
    with pytest.raises(OverlapError, match="'sc': example 1 is item 'q3'"):
        run({"sc": SelfConsistency(cot, k=2)}, d, LLM(FakeBackend(doubler)))
    two_vars = ZeroShot(
        instruction="Add.",
        template="{{ a }} + {{ b }}",
        examples=[Example(input={"a": "1", "b": "2"}, output="3")],
    )
    rows = Dataset.from_rows(
        [{"a": "1", "b": "2", "expected": 3}, {"a": "1", "b": "5", "expected": 6}]
    )
    with pytest.raises(OverlapError) as info:
        evaluate({"v": two_vars}, rows, LLM(FakeBackend(["3", "6"])), progress=False)
    assert info.value.overlaps == [(0, "1")]


# --------------------------------------------------------------------------- metrics


def test_exact_match() -> None:
    m = metrics.exact_match()
    assert m("  The answer: PARIS! ", "the answer paris") == 1.0
    assert m("42.0", 42) == 1.0 and m("41", 42) == 0.0 and m(None, 42) == 0.0
    assert m("four", [4, "Four"]) == 1.0  # a list holds every acceptable answer
    assert metrics.exact_match(normalize=None)("Paris", "paris") == 0.0
    assert metrics.exact_match(normalize=[str.strip])(" Paris ", "Paris") == 1.0


def test_contains() -> None:
    assert metrics.contains()("It is PARIS,  France.", "paris,   france") == 1.0
    assert metrics.contains()("Lyon", "Paris") == 0.0
    assert metrics.contains(whole_word=True)("14 apples", "4") == 0.0
    assert metrics.contains(whole_word=True)("4 apples", "4") == 1.0


def test_regex() -> None:
    assert metrics.regex()("Order ORD-1234 shipped", r"ORD-\d{4}") == 1.0
    assert metrics.regex()("Order ORD-12", r"ORD-\d{4}") == 0.0
    anchored = metrics.regex(r"^\W*{expected}\W*$")
    assert anchored("(3.5)", "3.5") == 1.0 and anchored("3x5", "3.5") == 0.0  # escaped
    with pytest.raises(EvaluationError, match="invalid pattern"):
        metrics.regex("(unclosed")
    with pytest.raises(EvaluationError, match="not a valid pattern"):
        metrics.regex()("x", "(")


def test_numeric() -> None:
    m = metrics.numeric()
    assert m("There are 1,250 seats.", 1250) == 1.0
    assert m("3 boxes of 4 is 12", "12") == 1.0  # the last number
    assert m("12.0", 12) == 1.0 and m("-3", -3) == 1.0 and m("no idea", 3) == 0.0
    assert metrics.numeric(0.5)("3.4", 3) == 1.0 and metrics.numeric(0.5)("3.6", 3) == 0.0
    assert metrics.numeric(0.1, relative=True)("108", 100) == 1.0
    assert metrics.numeric(0.1, relative=True)("111", 100) == 0.0
    assert metrics.numeric(0.5).name == "numeric(±0.5)"
    with pytest.raises(EvaluationError, match=r"expected answer .* is not a number"):
        m("3", "three")
    with pytest.raises(EvaluationError, match="tolerance"):
        metrics.numeric(-1)


def test_custom_metrics_get_the_record_when_they_ask() -> None:
    seen: list[Any] = []

    def with_record(pred: str, expected: Any, record: Record | None) -> float:
        seen.append(record)
        return 0.5

    report = run({"v": ZS}, data()[:2], LLM(FakeBackend(doubler)), metric=with_record)
    assert report["v"].accuracy == 0.5 and report.metric == "with_record"
    assert [r.id for r in seen] == ["q1", "q2"]
    assert metrics.custom(lambda p, e: p == e)("a", ["a", "b"]) == 0.0  # the list as is
    with pytest.raises(EvaluationError, match="returned 3"):
        metrics.custom(lambda p, e: 3)("a", "b")

    def broken(pred: str, expected: Any) -> bool:
        raise KeyError("oops")

    with pytest.raises(EvaluationError, match=r"metric 'broken' failed on item 'q1' \(row 1\)"):
        run({"v": ZS}, data()[:1], LLM(FakeBackend(doubler)), metric=broken)


def test_metric_names() -> None:
    assert metrics.as_metric("contains").name == "contains"
    with pytest.raises(EvaluationError, match="Did you mean 'exact_match'"):
        metrics.as_metric("exact_mach")
    with pytest.raises(EvaluationError, match="expected a Metric"):
        metrics.as_metric(3)  # type: ignore[arg-type]


def test_judge_is_counted_apart_and_sees_delimited_answers() -> None:
    answers = {"What is 1 plus 1?": "2", "What is 2 plus 2?": "5", "What is 3 plus 3?": ""}
    model = FakeBackend(lambda r: answers[last_user(r)])
    grader = FakeBackend(lambda r: "yes" if "<<<PREDICTION>>>\n2\n" in last_user(r) else "No.")
    report = run(
        {"v": ZS},
        data()[:3],
        LLM(model),
        metric=metrics.judge(llm=LLM(grader, params=pk.SamplingParams(seed=1))),
        prices={"fake-model": (1.0, 2.0)},
    )
    r = report["v"]
    assert [i.score for i in r.items] == [1.0, 0.0, 0.0]
    assert [i.judge_text for i in r.items] == ["yes", "No.", None]  # no answer: not judged
    assert r.calls == 3 and r.judge_calls == 2 and len(grader.requests) == 2
    assert r.judge_usage.prompt_tokens and r.judge_cost_usd is not None
    assert r.judge_cost_usd > 0 and r.cost_usd is not None and r.cost_usd > 0
    assert r.judge_unparsed == 0 and report.to_dict()["results"][0]["judge"]["calls"] == 2
    first = list(grader.requests[0].messages or [])
    assert "Reply with one word: yes" in first[0].content
    assert last_user(grader.requests[0]) == (
        "<<<EXPECTED>>>\n2\n<<<END EXPECTED>>>\n\n<<<PREDICTION>>>\n2\n<<<END PREDICTION>>>"
    )
    assert grader.requests[0].params["temperature"] == 0.0
    assert "judge calls" in report.table()


def test_judge_on_a_scale_with_its_own_prompt_and_the_model_under_test() -> None:
    prompt = ZeroShot(instruction="Grade 1-5.", template="Q: {{ question }} A: {{ prediction }}")
    replies = {"v": "4", "Grade": "5"}
    fake = FakeBackend(lambda r: replies["Grade"] if system_of(r) == "Grade 1-5." else "4")
    report = run({"v": ZS}, data()[:2], LLM(fake), metric=metrics.judge(prompt, scale=(1, 5)))
    r = report["v"]
    assert [i.score for i in r.items] == [1.0, 1.0] and r.judge_calls == 2
    assert "Q: What is 1 plus 1? A: 4" in [last_user(q) for q in fake.requests]
    unsure = FakeBackend(lambda r: "hmm" if "Grade" in system_of(r) else "2")
    report = run({"v": ZS}, data()[:1], LLM(unsure), metric=metrics.judge(prompt, scale=(1, 5)))
    assert report["v"].judge_unparsed == 1 and report["v"].accuracy == 0.0
    direct = metrics.judge(llm=LLM(FakeBackend(["yes"])))
    assert direct("Paris", "paris") == 1.0
    with pytest.raises(EvaluationError, match="needs llm"):
        metrics.judge()("a", "b")
    with pytest.raises(EvaluationError, match="scale"):
        metrics.judge(scale=(5, 1))


# --------------------------------------------------------------------------- Wilson


@pytest.mark.parametrize(
    ("k", "n", "conf", "lo", "hi"),
    [
        (8, 10, 0.95, 0.4902, 0.9433),
        (50, 100, 0.95, 0.4038, 0.5962),
        (0, 10, 0.95, 0.0, 0.2775),
        (10, 10, 0.95, 0.7225, 1.0),
        (1, 1, 0.95, 0.2065, 1.0),
        (8, 10, 0.99, 0.4008, 0.9599),
    ],
)
def test_wilson_interval_known_values(k: int, n: int, conf: float, lo: float, hi: float) -> None:
    got = wilson_interval(k, n, conf)
    assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, 1.0)


# --------------------------------------------------------------------------- running


def test_prompts_run_through_the_batch_runner() -> None:
    fake = FakeBackend(doubler)
    report = run({"zero-shot": ZS}, data(), LLM(fake))
    r = report["zero-shot"]
    assert r.accuracy == 1.0 and r.n == 10 and r.answered == 10 and r.errors == 0
    assert r.calls == 10 == len(fake.requests)
    assert r.prompt_tokens == sum(i.usage.prompt_tokens or 0 for i in r.items) > 0
    assert r.latency_median_s is not None and r.latency_p95_s is not None and r.wall_s > 0
    assert r.cost_usd == 0.0  # a local backend
    assert r.ci == wilson_interval(10, 10)
    assert r.items[0].text == "2" and r.items[0].prediction == "2" and r.items[0].expected == 2


def test_chain_of_thought_predictions_come_from_the_answer_line() -> None:
    fake = FakeBackend(lambda r: f"First 1, then {doubler(r)}. The answer is {doubler(r)}.")
    cot = ChainOfThought(instruction="Double it.")
    report = run({"cot": cot, "last-number": Variant(cot, extract=extract.number())}, data()[:3],
                 LLM(fake), metric="exact_match")  # fmt: skip
    assert [i.prediction for i in report["cot"].items] == ["2", "4", "6"]
    assert report["cot"].accuracy == 1.0 and report["last-number"].accuracy == 1.0
    silent = run({"cot": cot}, data()[:2], LLM(FakeBackend(["I think 2", "maybe 4"])))
    assert silent["cot"].answered == 0 and silent["cot"].accuracy == 0.0


def test_strategies_run_with_their_calls_counted() -> None:
    votes = iter(["The answer is 2.", "The answer is 3.", "The answer is 2."] * 2)
    fake = FakeBackend(lambda r: next(votes), native_n=False)
    sc = SelfConsistency(ChainOfThought(instruction="Double it."), k=3, seed=1)
    report = run({"sc": sc}, data()[:2], LLM(fake), metric="exact_match")
    r = report["sc"]
    assert [i.prediction for i in r.items] == ["2", "2"] and r.calls == 6 == len(fake.requests)
    assert r.items[0].text is not None and r.items[0].text.count("\n---\n") == 2
    assert r.prompt_tokens and r.latency_median_s is not None and not r.items[0].cached
    failing = FakeBackend([pk.ServerError("boom")] * 3)
    r = run({"sc": sc}, data()[:1], LLM(failing))["sc"]
    assert r.errors == 1 and r.items[0].error == "ServerError: boom" and r.accuracy == 0.0


def test_params_inputs_and_missing_variables() -> None:
    fake = FakeBackend(doubler)
    q = ZeroShot(instruction="Double it.", template="Q: {{ q }}")
    report = run(
        {
            "global": ZS,
            "own": Variant(q, inputs={"q": "question"}, params=pk.SamplingParams(seed=3)),
        },
        data()[:1],
        LLM(fake),
        params=pk.SamplingParams(max_tokens=5, seed=1),
    )
    assert report["own"].accuracy == 1.0
    assert [r.params for r in fake.requests] == [
        {"max_tokens": 5, "seed": 1},
        {"max_tokens": 5, "seed": 3},
    ]
    assert last_user(fake.requests[1]) == "Q: What is 1 plus 1?"
    with pytest.raises(EvaluationError, match=r"variant 'q' needs variable\(s\) 'q'.*inputs=\{'q'"):
        run({"q": q}, data(), LLM(fake), inputs=None)
    with pytest.raises(EvaluationError, match="maps 'input' to field 'nope'"):
        run({"v": ZS}, data(), LLM(fake), inputs={"input": "nope"})
    by_function = Variant(ZS, inputs=lambda rec: {"input": rec.fields["question"]})
    assert run({"f": by_function}, data()[:2], LLM(fake))["f"].accuracy == 1.0


def test_failed_calls_score_zero_and_are_reported() -> None:
    fake = FakeBackend(
        lambda r: pk.BadRequestError("too long") if "3 plus" in last_user(r) else doubler(r)
    )
    r = run({"v": ZS}, data()[:4], LLM(fake))["v"]
    assert r.errors == 1 and r.answered == 3 and r.accuracy == 0.75
    assert r.items[2].error == "BadRequestError: too long" and r.items[2].prediction is None
    assert "errors" in run({"v": ZS}, data()[:4], LLM(fake)).table()


class RemoteBackend(FakeBackend):
    name: ClassVar[str] = "remote"


def test_costs_from_the_price_table() -> None:
    report = run(
        {"v": ZS},
        data()[:2],
        {
            "priced": LLM(RemoteBackend(doubler, model="gpt-x")),
            "by-label": LLM(RemoteBackend(doubler, model="other")),
            "unpriced": LLM(RemoteBackend(doubler, model="mystery")),
            "local": LLM(FakeBackend(doubler)),
        },
        prices={"gpt-x": Price(1.0, 2.0), "by-label": {"input": 10.0, "output": 0.0}},
    )
    priced = report["v", "priced"]
    u = priced.usage
    assert priced.cost_usd == pytest.approx(
        ((u.prompt_tokens or 0) + 2 * (u.completion_tokens or 0)) / 1e6
    )
    assert report["v", "by-label"].cost_usd == pytest.approx((u.prompt_tokens or 0) * 10 / 1e6)
    assert report["v", "unpriced"].cost_usd is None and report["v", "local"].cost_usd == 0.0
    assert Price(0.15, 0.6).cost(pk.Usage(1_000_000, 1_000_000, 2_000_000)) == 0.75
    assert Price(1, 1).cost(pk.Usage()) is None and Price(0, 0).cost(pk.Usage()) == 0.0
    with pytest.raises(EvaluationError, match="prices"):
        run({"v": ZS}, data(), LLM(FakeBackend(doubler)), prices={"m": (1.0,)})
    with pytest.raises(pk.ConfigurationError, match="Price input"):
        Price(-1, 0)


def test_several_backends_give_a_result_per_variant_and_backend() -> None:
    right, wrong = LLM(FakeBackend(doubler)), LLM(FakeBackend(lambda r: "0"))
    few = FewShot(
        instruction="Double it.", examples=[Example(input="What is 9 plus 9?", output="18")]
    )
    report = run({"zs": ZS, "fs": few}, data()[:4], {"good": right, "bad": wrong})
    assert [(r.variant, r.backend) for r in report] == [
        ("zs", "good"), ("zs", "bad"), ("fs", "good"), ("fs", "bad"),
    ]  # fmt: skip
    assert report["zs", "good"].accuracy == 1.0 and report["fs", "bad"].accuracy == 0.0
    assert report.variants == ["zs", "fs"] and report.backends == ["good", "bad"]
    assert report.best().backend == "good"
    with pytest.raises(KeyError, match="index by"):
        report["zs"]
    header = report.table().splitlines()[0].split()
    assert header[:3] == ["variant", "backend", "accuracy"]
    assert "zs @ bad" in report.svg()


def test_the_response_cache_serves_a_second_run(tmp_path: Path) -> None:
    fake = FakeBackend(doubler)
    llm = LLM(fake, cache=Cache(tmp_path / "cache.sqlite"))
    sc = SelfConsistency(ChainOfThought(instruction="Double it."), k=2, extract=extract.number())
    variants = {"zs": ZS, "sc": sc}
    first = run(variants, data()[:3], llm)
    sent = len(fake.requests)
    second = run(variants, data()[:3], llm)
    assert len(fake.requests) == sent  # nothing new was sent
    assert first["zs"].calls == 3 and second["zs"].calls == 0 and second["zs"].cache_hits == 3
    assert second["sc"].calls == 0 and second["sc"].cache_hits == 3
    assert second["zs"].prompt_tokens == first["zs"].prompt_tokens  # tokens of reused replies
    assert "reused" in second.table().splitlines()[0]


def test_durable_results_resume(tmp_path: Path) -> None:
    fake = FakeBackend(doubler)
    out = tmp_path / "results"
    variants = {"zero shot": ZS, "sc": SelfConsistency(ChainOfThought(), k=2)}
    first = run(variants, data()[:3], LLM(fake), out=out)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["zero_shot-" + files[0].split("-")[1].split("@")[0] + "@fake-model.jsonl"]
    assert len((out / files[0]).read_text().splitlines()) == 3
    sent = len(fake.requests)
    again = run({"zero shot": ZS}, data()[:3], LLM(fake), out=out)
    assert len(fake.requests) == sent and again["zero shot"].resumed == 3
    assert (
        again["zero shot"].calls == 0 and again["zero shot"].accuracy == first["zero shot"].accuracy
    )
    assert all(i.latency_s is None for i in again["zero shot"].items)
    with pytest.raises(pk.ConfigurationError, match="other arguments"):
        run({"zero shot": ZeroShot(instruction="Other.")}, data()[:3], LLM(fake), out=out)


def test_evaluate_inputs_and_event_loops(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("question,answer\nWhat is 1 plus 1?,2\n", encoding="utf-8")
    llm = LLM(FakeBackend(doubler))
    assert run({"v": ZS}, p, llm, expected="answer")["v"].accuracy == 1.0
    assert run({"v": ZS}, ROWS[:2], llm, expected="answer")["v"].n == 2
    assert run({"v": ZS}, list(data()[:2]), llm)["v"].n == 2

    async def inside() -> EvalReport:
        with pytest.raises(pk.ConfigurationError, match="aevaluate"):
            run({"v": ZS}, data(), llm)
        return await aevaluate({"v": ZS}, data()[:2], llm, metric="numeric",
                               inputs={"input": "question"}, progress=False)  # fmt: skip

    assert asyncio.run(inside())["v"].accuracy == 1.0
    with pytest.raises(EvaluationError, match="dict of name"):
        run({}, data(), llm)
    with pytest.raises(EvaluationError, match="needs a prompt or a strategy"):
        run({"v": "not a prompt"}, data(), llm)
    with pytest.raises(EvaluationError, match="LLM"):
        run({"v": ZS}, data(), {"x": "nope"})
    with pytest.raises(EvaluationError, match="concurrency"):
        run({"v": ZS}, data(), llm, concurrency=0)
    with pytest.raises(EvaluationError, match="dataset="):
        run({"v": ZS}, 42, llm)


def test_progress_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    llm = LLM(FakeBackend(doubler))
    sc = SelfConsistency(ChainOfThought(), k=2, extract=extract.number())
    run({"zs": ZS, "sc": sc}, data()[:2], llm, progress=True)
    err = capsys.readouterr().err
    assert "eval: zs @ fake-model (2 items)" in err and "eval: sc @ fake-model" in err
    assert "batch 2/2 100%" in err and "sc 2/2 100%" in err


# --------------------------------------------------------------------------- the report


def sample_report() -> EvalReport:
    fake = FakeBackend(lambda r: "<b>4</b>" if "2 plus" in last_user(r) else doubler(r))
    return run(
        {"<script>alert('x')</script>": ZS, "plain & simple": ZS},
        data()[:4],
        LLM(fake),
        metric="contains",
    )


def test_table_and_json() -> None:
    report = sample_report()
    lines = report.table().splitlines()
    assert lines[0].split()[:5] == ["variant", "accuracy", "95%", "CI", "answered"]
    assert lines[2].split()[4:6] == ["4/4", "4"]
    assert "100.0%" in lines[2] and "[51.0, 100.0]" in lines[2]
    assert lines[-1].startswith("4 items of doubles, metric contains; 95% Wilson score")
    assert str(report) == report.table()
    data_ = json.loads(report.to_json())
    assert data_["format"] == "promptkit-eval" and data_["interval"] == "wilson"
    first = data_["results"][0]
    assert first["variant"] == "<script>alert('x')</script>" and first["n"] == 4
    assert first["ci_low"] == pytest.approx(0.5101, abs=1e-4) and first["judge"] is None
    assert first["items"][1]["prediction"] == "<b>4</b>" and first["items"][1]["expected"] == 4
    assert "items" not in json.loads(report.to_json(items=False))["results"][0]
    back = EvalReport.from_dict(data_)
    assert [(r.variant, r.accuracy, r.ci, r.calls) for r in back] == [
        (r.variant, r.accuracy, r.ci, r.calls) for r in report
    ]
    assert back.table() == report.table()


def test_save_and_load_json(tmp_path: Path) -> None:
    report = sample_report()
    path = report.save_json(tmp_path / "r.json")
    assert EvalReport.load(path).to_dict() == report.to_dict()
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(EvaluationError, match="not a promptkit evaluation report"):
        EvalReport.load(tmp_path / "bad.json")


class _Collect(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    report = sample_report()
    path = report.save_html(tmp_path / "r.html")
    page = path.read_text(encoding="utf-8")
    parser = _Collect()
    parser.feed(page)
    assert parser.tags.count("script") == 0 and "b" not in parser.tags  # all text escaped
    text = "".join(parser.text)
    assert "<script>alert('x')</script>" in text and "<b>4</b>" in text and "plain & simple" in text
    assert "&lt;script&gt;" in page and "plain &amp; simple" in page
    assert "svg" in parser.tags and "table" in parser.tags and "details" in parser.tags
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # nothing to fetch
    assert report.to_html() == page


def test_svg_chart_is_valid_xml_with_escaped_labels() -> None:
    report = sample_report()
    root = ET.fromstring(report.svg())
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "<script>alert('x')</script>" in texts and "plain & simple" in texts
    assert any(t and t.startswith("Accuracy against tokens per item") for t in texts)


def test_chart_uses_cost_when_priced() -> None:
    fake = RemoteBackend(doubler, model="paid")
    report = run({"v": ZS}, data()[:2], LLM(fake), prices={"paid": (1.0, 1.0)})
    assert "Accuracy against estimated cost per item (USD)" in report.svg()
    assert "$" in report.svg()


def test_save_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = sample_report().save_png(tmp_path / "chart.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_save_png_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(pk.ConfigurationError, match=r'pip install "promptkit\[eval\]"'):
        sample_report().save_png(tmp_path / "chart.png")
    assert not (tmp_path / "chart.png").exists()


def test_report_by_hand() -> None:
    items = (ItemResult("a", 1, 1, 1.0, latency_s=0.2), ItemResult("b", 1, None, 0.0, error="X: y"))
    r = VariantResult("v", "b", "m", items, cost_usd=0.5)
    assert (r.accuracy, r.answered, r.errors, r.cost_per_item) == (0.5, 1, 1, 0.25)
    assert r.latency_median_s == 0.2 and r.tokens_per_item is None
    report = EvalReport([r], dataset="d", metric="m")
    assert report["v"] is r and report[0] is r and report.n == 2
    with pytest.raises(KeyError):
        report["w"]
    with pytest.raises(EvaluationError, match="empty"):
        EvalReport([]).best()
