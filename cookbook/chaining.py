"""Prompt chaining: triage a support ticket in three small steps instead of one big prompt.

Technique: prompt chaining. Each step's named output becomes a variable of the next; the
wiring is checked when the chain is built, and every intermediate result is kept.

Run:  python cookbook/chaining.py
"""

from __future__ import annotations

import promptkit as pk

facts = pk.Delimited(
    instruction="List the customer's problem and what they ask for, in two short lines.",
    delimit=["ticket"],
)
reply = pk.Instruction(
    instruction="Write a polite reply to the customer that addresses these points.",
    length="at most three sentences",
    template="Points:\n{{ facts }}",
)
subject = pk.ZeroShot(
    instruction="Write an email subject line for this reply. Reply with the subject only.",
    template="{{ reply }}",
)

triage = pk.Chain(
    pk.Step(facts, name="facts", output="facts"),
    pk.Step(reply, name="reply", output="reply"),
    pk.Step(subject, name="subject", output="subject"),
    inputs=["ticket"],
)

TICKET = (
    "Hello, I ordered the blue kettle (order 5521) but received a red one. "
    "I'd like to swap it, not get a refund. Thanks, Priya"
)


def main(llm: pk.LLM) -> dict[str, str]:
    result = triage.run(llm, ticket=TICKET, params=pk.PRECISE | pk.SamplingParams(max_tokens=60))
    for step in result.steps:
        print(f"--- {step.name}\n{step.text.strip()}\n")
    return {name: str(result.values[name]).strip() for name in ("facts", "reply", "subject")}


if __name__ == "__main__":
    main(pk.connect())
