"""Smoke test: an evaluation on the embedded model (SmolLM2-135M in-process), through the
Python API and the `promptkit eval` command. A 135M model's accuracy is not asserted, only
that every number a report promises is there. Generations are short (max_tokens <= 24)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import promptkit as pk
from promptkit._cli import main
from promptkit.evaluation import evaluate, load_dataset, metrics
from promptkit.strategies import SelfConsistency

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent.parent.parent / "cookbook" / "data" / "arithmetic.jsonl"


@pytest.fixture(scope="module")
def embedded(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[pk.LLM]:
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("PROMPTKIT_", "OPENAI_")):
                mp.delenv(name)
        mp.chdir(tmp_path_factory.mktemp("no-config"))
        yield pk.connect()


def test_evaluate_on_the_embedded_model(embedded: pk.LLM, tmp_path: Path) -> None:
    train, test = load_dataset(DATA, expected="answer").split(holdout=0.5, seed=7)
    cot = pk.ChainOfThought(
        instruction="Solve the word problem.",
        examples=train.examples(1, input="question", rationale="rationale"),
    )
    report = evaluate(
        {
            "zero-shot": pk.ZeroShot(instruction="Solve the word problem. Reply with the number."),
            "vote": SelfConsistency(cot, k=2, seed=1),
        },
        test[:2],
        embedded,
        metric=metrics.numeric(),
        inputs={"input": "question"},
        params=pk.SamplingParams(max_tokens=24, temperature=0.5),
        concurrency=1,
        progress=False,
        out=tmp_path / "results",
    )
    assert report.backends == ["SmolLM2-135M-Instruct"]
    for r in report:
        assert r.n == 2 and 0.0 <= r.accuracy <= 1.0 and r.errors == 0
        lo, hi = r.ci
        assert 0.0 <= lo <= r.accuracy <= hi <= 1.0
        assert r.prompt_tokens and r.completion_tokens and r.cost_usd == 0.0
        assert r.latency_median_s is not None and r.latency_median_s > 0
        assert all(i.text for i in r.items)
    assert report["zero-shot"].calls == 2 and report["vote"].calls == 4  # one call per sample
    assert (tmp_path / "results" / "zero-shot@SmolLM2-135M-Instruct.jsonl").is_file()
    page = report.save_html(tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<svg" in page and "vote" in page
    assert json.loads(report.to_json())["results"][1]["variant"] == "vote"


def test_promptkit_eval_on_the_embedded_model(
    embedded: pk.LLM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "eval.toml"
    config.write_text(
        f"""
dataset = {json.dumps(str(DATA))}
expected = "answer"
inputs = {{ input = "question" }}
metric = "numeric"
split = {{ holdout = 0.5, seed = 7 }}
limit = 2
params = {{ preset = "precise", max_tokens = 8 }}

[backends.local]
backend = "llamacpp"

[variants.few-shot]
technique = "FewShot"
instruction = "Solve the word problem. Reply with the number only."
examples_from_train = 2
""",
        encoding="utf-8",
    )
    assert main(["eval", str(config), "--no-progress", "--html", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].startswith("few-shot") and "2/2" in out
    assert (tmp_path / "r.html").is_file()
