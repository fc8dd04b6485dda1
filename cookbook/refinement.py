"""Iterative refinement: draft a product description, critique it, revise, until approved.

Technique: iterative refinement (draft, critique, revise). The loop stops when the critic
approves or after the given number of rounds; every round is kept for inspection.

Run:  python cookbook/refinement.py
"""

from __future__ import annotations

import promptkit as pk

draft = pk.Instruction(
    instruction="Write a product description.",
    length="two sentences",
    template="Product: {{ product }}",
)
critique = pk.Instruction(
    instruction=(
        "Critique the product description for clarity and concrete details. "
        "If it needs no change, reply with just OK."
    ),
    length="one sentence",
    template="{{ draft }}",
)
revise = pk.Instruction(
    instruction="Rewrite the product description to address the critique.",
    length="two sentences",
    template="Description: {{ draft }}\n\nCritique: {{ critique }}",
)

refine = pk.Refine(
    draft,
    critique,
    revise,
    rounds=2,
    stop=lambda draft, critique: critique.strip().upper().startswith("OK"),
)

PRODUCT = "a 1-litre stainless steel insulated water bottle that keeps drinks cold for 24 hours"


def main(llm: pk.LLM) -> str:
    result = refine.run(llm, product=PRODUCT, params=pk.PRECISE | pk.SamplingParams(max_tokens=70))
    for r in result.rounds:
        print(f"--- round {r.number}\ndraft:    {r.draft.strip()}\ncritique: {r.critique.strip()}")
    print(f"\nfinal ({result.stopped_by}): {result.output.strip()}")
    return str(result.output).strip()


if __name__ == "__main__":
    main(pk.connect())
