"""Chain of thought: worked arithmetic with an answer line that code can extract.

Technique: chain-of-thought prompting. A reasoning trigger, one worked example with its
rationale, and an "End with: The answer is <answer>." line; `extract_answer` reads it.

Run:  python cookbook/chain_of_thought.py
"""

from __future__ import annotations

import promptkit as pk

solve = pk.ChainOfThought(
    instruction="Solve the word problem.",
    examples=[
        pk.Example(
            input="A box holds 6 eggs. How many eggs are in 4 boxes?",
            rationale="Each box holds 6 eggs and there are 4 boxes, so 6 * 4 = 24.",
            output="24",
        )
    ],
)

PROBLEM = "A train has 8 carriages with 40 seats each. How many seats does it have?"


def main(llm: pk.LLM) -> str | None:
    reply = solve.run(llm, input=PROBLEM, params=pk.PRECISE | pk.SamplingParams(max_tokens=80))
    print(reply.text.strip())
    answer = solve.extract_answer(reply.text)
    print("\nExtracted answer:", answer)
    return answer


if __name__ == "__main__":
    main(pk.connect())
