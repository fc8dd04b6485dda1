"""Few-shot classification: label product reviews from a handful of worked examples.

Technique: few-shot prompting. The examples go in as real user/assistant turns, so even a
small model sees exactly the shape of answer it should give.

Run:  python cookbook/few_shot.py   (the configured backend; the embedded model by default)
"""

from __future__ import annotations

import promptkit as pk

classify = pk.FewShot(
    role="a meticulous product analyst",
    instruction="Classify the sentiment of the review as positive or negative.",
    output_format="one word: positive or negative",
    avoid=["explanations"],
    examples=[
        pk.Example(input="I loved it, works exactly as described.", output="positive"),
        pk.Example(input="It broke after a day.", output="negative"),
        pk.Example(input="Five stars, would buy again.", output="positive"),
        pk.Example(input="Arrived scratched and the seller never answered.", output="negative"),
    ],
)

REVIEWS = [
    "The battery died in an hour.",
    "Setup took two minutes and the picture is stunning.",
    "Stopped charging after a week; support was useless.",
]

# Classification wants the most likely label, and only a word or two.
PARAMS = pk.PRECISE | pk.SamplingParams(max_tokens=4)


def label_of(text: str) -> str:
    """The first word of the reply, normalised ('Positive.' -> 'positive')."""
    words = text.strip().split()
    return words[0].strip(".,!:;\"'").lower() if words else ""


def main(llm: pk.LLM) -> list[tuple[str, str]]:
    results = []
    for review in REVIEWS:
        reply = classify.run(llm, input=review, params=PARAMS)
        results.append((review, label_of(reply.text)))
        print(f"{label_of(reply.text):>10}  {review}")
    return results


if __name__ == "__main__":
    main(pk.connect())
