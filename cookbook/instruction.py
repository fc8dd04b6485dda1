"""Instruction prompting: the same text rewritten to an explicit format, length and audience.

Technique: instruction prompting. Say exactly what the output must look like; the
requirements are rendered as separate lines after the task.

Run:  python cookbook/instruction.py
"""

from __future__ import annotations

import promptkit as pk

release_note = pk.Instruction(
    instruction="Rewrite the change description as a release note.",
    output_format="a single bullet point starting with '- '",
    length="at most 20 words",
    style="plain, no marketing language",
    audience="system administrators",
    template="Change: {{ change }}",
)

CHANGE = (
    "Refactored the connection pool so idle connections are closed after 30 seconds "
    "instead of being kept forever, which fixes the file-descriptor leak reported by ops."
)


def main(llm: pk.LLM) -> str:
    print(release_note.render(change=CHANGE)[0].content, end="\n\n")
    reply = release_note.run(
        llm, change=CHANGE, params=pk.PRECISE | pk.SamplingParams(max_tokens=40)
    )
    print(reply.text.strip())
    return reply.text.strip()


if __name__ == "__main__":
    main(pk.connect())
