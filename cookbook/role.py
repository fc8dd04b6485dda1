"""Role prompting: the same question answered by two personas.

Technique: role (persona) prompting. The persona opens the system message and steers
vocabulary, depth and tone.

Run:  python cookbook/role.py
"""

from __future__ import annotations

import promptkit as pk

QUESTION = "Why does my sourdough bread come out dense?"

baker = pk.Role(role="an experienced artisan baker who explains things simply")
chemist = pk.Role(role="a food chemist who explains the underlying chemistry")


def main(llm: pk.LLM) -> dict[str, str]:
    answers = {}
    for name, prompt in [("baker", baker), ("chemist", chemist)]:
        reply = prompt.run(
            llm, input=QUESTION, params=pk.BALANCED | pk.SamplingParams(max_tokens=60, seed=1)
        )
        answers[name] = reply.text.strip()
        print(f"--- {name}\n{answers[name]}\n")
    return answers


if __name__ == "__main__":
    main(pk.connect())
