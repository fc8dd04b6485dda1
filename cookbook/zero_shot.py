"""Zero-shot: extract the city from a support message with a clear instruction only.

Technique: zero-shot prompting. No examples: cheapest in tokens, works when the task is
common and the instruction is unambiguous.

Run:  python cookbook/zero_shot.py   (the configured backend; the embedded model by default)
"""

from __future__ import annotations

import promptkit as pk

extract_city = pk.ZeroShot(
    instruction=(
        "Which city is the customer writing about? Reply with the city name only, "
        "or 'unknown' if no city is mentioned."
    ),
    template="Message: {{ message }}",
)

MESSAGES = [
    "My parcel has been stuck in the Rotterdam depot since Monday.",
    "The technician never showed up at our office in Lyon.",
]


def main(llm: pk.LLM) -> list[str]:
    cities = []
    for message in MESSAGES:
        reply = extract_city.run(
            llm, message=message, params=pk.PRECISE | pk.SamplingParams(max_tokens=8)
        )
        cities.append(reply.text.strip())
        print(f"{reply.text.strip():<12} <- {message}")
    return cities


if __name__ == "__main__":
    main(pk.connect())
