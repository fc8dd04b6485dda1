"""Negative prompting: explain a concept while ruling out what the reader does not want.

Technique: negative prompting. Constraints are listed explicitly under "Do not:".

Run:  python cookbook/negative.py
"""

from __future__ import annotations

import promptkit as pk

explain = pk.Negative(
    instruction="Explain the concept to a new employee in two sentences.",
    avoid=["jargon or acronyms", "analogies to cars", "mentioning competitors"],
    template="Concept: {{ concept }}",
)


def main(llm: pk.LLM) -> str:
    print(explain.render(concept="version control")[0].content, end="\n\n")
    reply = explain.run(
        llm, concept="version control", params=pk.PRECISE | pk.SamplingParams(max_tokens=60)
    )
    print(reply.text.strip())
    return reply.text.strip()


if __name__ == "__main__":
    main(pk.connect())
