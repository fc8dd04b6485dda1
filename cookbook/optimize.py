"""Optimise a prompt on data: examples, instruction and technique searched, kept only if better.

Technique: prompt optimisation with guardrails. `pk.optimize` starts from your prompt and
tries, on the train part of a labelled dataset, rewrites of the instruction (here one
variant of ours; pass `proposer=` to have a model propose some), demonstrations
bootstrapped from the model's own correct answers, labelled ones, and a reordered subset.
The best few go to separate validation items, where each is compared with the starting
prompt by an exact McNemar test on the same items (Holm-corrected): a change is kept
only when it is better at 95% confidence, otherwise the starting prompt stands. The
held-out test items are measured once, at the end. The result is a plain prompt file.

Run:  python cookbook/optimize.py   (the configured backend; the embedded model by default.
Sixteen problems and two examples keep it under a minute on 2 cores; with so few items a
real gain can be refused: that is the guardrail working, give it more data to decide.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import promptkit as pk

DATA = Path(__file__).resolve().parent / "data" / "arithmetic.jsonl"

data = pk.load_dataset(DATA, expected="answer")[:16]  # the optimiser splits it itself

START = pk.ZeroShot(
    instruction="Solve the word problem. Reply with the number only.",
    params=pk.PRECISE | pk.SamplingParams(max_tokens=8),  # a number, greedy
)


def main(llm: pk.LLM) -> pk.OptimizeReport:
    report = pk.optimize(
        START,
        data,
        llm,
        metric=pk.metrics.numeric(),  # the last number in the reply must equal the answer
        inputs={"input": "question"},  # the prompt's {{ input }} is the dataset's question
        instructions=["Read the problem, do the arithmetic and reply with just the number."],
        techniques=["few_shot"],  # chain of thought too, if you have the time
        max_examples=2,
        subsets=0,  # no reordered subset: fewer candidates, fewer calls
        seed=7,
        concurrency=1,
        budget=pk.Budget(calls=120),  # checked before each round; estimate printed first
    )
    print(report.table())
    saved = report.save_prompt(Path(tempfile.mkdtemp()) / "best.yaml")
    print(f"\nSaved {saved.name}:\n{saved.read_text(encoding='utf-8')}")
    return report


if __name__ == "__main__":
    main(pk.connect())
