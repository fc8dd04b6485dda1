"""Compare techniques: zero-shot, few-shot, chain of thought and self-consistency, measured.

Technique: evaluation. Which technique works best depends on the model, so measure it on
yours: the four variants answer the same held-out arithmetic word problems
(cookbook/data/arithmetic.jsonl), and the table shows accuracy with a 95% confidence
interval, calls, tokens, latency and cost for each. The few-shot examples come from the
train part of a seeded split and the scored items from the test part, so no variant is
scored on an example it was shown.

Run:  python cookbook/compare_techniques.py   (the configured backend; the embedded model
by default). What it costs: about 1 s of CPU per reasoning call and 0.3 s per short answer
on 2 cores, and self-consistency makes 2-3 reasoning calls per item, so four scored items
take about 20 s of CPU (six took 31 s). With so few items the 95% intervals are wide and
the script says when they overlap: raise SCORED (up to 20) for a verdict you can trust.
"""

from __future__ import annotations

from pathlib import Path

import promptkit as pk

DATA = Path(__file__).resolve().parent / "data" / "arithmetic.jsonl"
SCORED = 4  # test items scored (of the 20 in the test part); each costs about 5 s of CPU

data = pk.load_dataset(DATA, expected="answer")
train, test = data.split(holdout=0.5, seed=7)  # train: few-shot pool; test: scored

INSTRUCTION = "Solve the word problem."
ANSWER = pk.PRECISE | pk.SamplingParams(max_tokens=8)  # a number, greedy
REASONING = pk.PRECISE | pk.SamplingParams(max_tokens=40)  # room for a few short steps

cot = pk.ChainOfThought(
    instruction=INSTRUCTION, examples=train.examples(1, input="question", rationale="rationale")
)

VARIANTS = {
    "zero-shot": pk.Variant(
        pk.ZeroShot(instruction=f"{INSTRUCTION} Reply with the number only."), params=ANSWER
    ),
    "few-shot": pk.Variant(
        pk.FewShot(
            instruction=f"{INSTRUCTION} Reply with the number only.",
            examples=train.examples(2, input="question"),
        ),
        params=ANSWER,
    ),
    "chain-of-thought": pk.Variant(cot, params=REASONING),
    # three samples at temperature 0.7 (seeded, so runs repeat), majority vote on the answer
    "self-consistency": pk.Variant(
        pk.SelfConsistency(cot, k=3, seed=1, early_stop=True),
        params=pk.SamplingParams(temperature=0.7, max_tokens=40),
    ),
}


def main(llm: pk.LLM) -> pk.EvalReport:
    report = pk.evaluate(
        VARIANTS,
        test[:SCORED],
        llm,
        metric=pk.metrics.numeric(),  # the last number in the prediction must equal the answer
        inputs={"input": "question"},  # the prompts' {{ input }} is the dataset's question
        concurrency=1,  # one item at a time: latency is the model's, not a queue's
    )
    print(report.table())
    best = report.best()
    print(f"\nMost accurate here: {best.variant} ({best.accuracy:.0%} of {best.n}).")
    tied = [r.variant for r in report if r is not best and r.ci[1] >= best.ci[0]]
    if tied:
        print(
            f"Its interval overlaps those of {', '.join(tied)}: with {best.n} items that is "
            "no verdict; raise SCORED to separate them."
        )
    return report


if __name__ == "__main__":
    main(pk.connect())
