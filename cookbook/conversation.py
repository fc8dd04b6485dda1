"""Multi-turn conversation: a support chat that keeps only the recent turns.

Technique: multi-turn history. `with_turn` appends an exchange; `max_turns` trims the
oldest turns so long chats fit the context window, never dropping the system message.

Run:  python cookbook/conversation.py
"""

from __future__ import annotations

import promptkit as pk

chat = pk.Conversation(
    role="a concise support agent for a bicycle shop",
    instruction="Answer in one or two sentences.",
    max_turns=4,
)

USER_TURNS = [
    "Hi, I bought a city bike last week.",
    "The rear brake squeaks when it rains.",
    "Can I fix that myself?",
]


def main(llm: pk.LLM) -> list[str]:
    convo = chat
    replies = []
    for text in USER_TURNS:
        reply = convo.run(llm, input=text, params=pk.PRECISE | pk.SamplingParams(max_tokens=48))
        answer = reply.text.strip()
        print(f"user:  {text}\nagent: {answer}\n")
        convo = convo.with_turn(text, answer)
        replies.append(answer)
    return replies


if __name__ == "__main__":
    main(pk.connect())
