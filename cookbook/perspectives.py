"""Alternative perspectives: one decision seen by three stakeholders, then a synthesis.

Technique: alternative perspectives. One prompt asks for a section per viewpoint and a
final synthesis; `viewpoint(name)` gives the prompt for a single stakeholder.

Run:  python cookbook/perspectives.py
"""

from __future__ import annotations

import promptkit as pk

review = pk.Perspectives(
    instruction="Assess the proposal briefly.",
    perspectives=[
        pk.Perspective(name="Finance", description="cost and payback"),
        pk.Perspective(name="Engineering", description="effort and risk"),
        pk.Perspective(name="Customers", description="what changes for them"),
    ],
    synthesis="recommend go or no-go in one sentence.",
    length="at most two sentences per heading",
)

PROPOSAL = "Move the customer database from a self-hosted server to a managed cloud service."


def main(llm: pk.LLM) -> str:
    reply = review.run(
        llm, input=PROPOSAL, params=pk.BALANCED | pk.SamplingParams(max_tokens=160, seed=3)
    )
    print(reply.text.strip())
    return reply.text.strip()


if __name__ == "__main__":
    main(pk.connect())
