"""Self-consistency voting: sample several chains of thought and take the majority answer.

Technique: self-consistency. One reasoning path can go wrong; k sampled paths that agree
are more reliable. The vote reports the counts and the agreement, and every sample keeps
its reasoning. Cost: k samples (one request with n=k where the backend honours n).

Run:  python cookbook/self_consistency.py
"""

from __future__ import annotations

import promptkit as pk

solve = pk.ChainOfThought(
    instruction="Solve the word problem.",
    examples=[
        pk.Example(
            input="Tom has 3 bags with 4 apples each. How many apples does he have?",
            rationale="3 bags times 4 apples is 12 apples.",
            output="12",
        )
    ],
)

PROBLEM = "A shelf holds 5 rows of 6 books. 4 books are lent out. How many are on the shelf?"


def main(llm: pk.LLM) -> pk.Vote:
    vote = pk.SelfConsistency(
        solve, k=5, params=pk.SamplingParams(temperature=0.8, max_tokens=64, seed=11)
    ).run(llm, input=PROBLEM)
    for sample in vote.samples:
        print(f"sample {sample.index}: answer {sample.answer!r}")
    print(f"\nvote: {vote.answer!r}  counts {vote.counts}  agreement {vote.agreement:.0%}")
    return vote


if __name__ == "__main__":
    main(pk.connect())
