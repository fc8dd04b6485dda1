"""Retrieval-augmented answer with citations over a small knowledge base.

Technique: retrieved context. Documents become delimited, citable sections; the model is
told to cite ids like [returns] and to say so when the answer is not in the documents.
Retrieval here is a keyword overlap score, to keep the recipe self-contained.

Run:  python cookbook/rag_citations.py
"""

from __future__ import annotations

import re

import promptkit as pk

KNOWLEDGE_BASE = [
    pk.Document(
        id="returns",
        title="Returns",
        text="Items can be returned within 30 days of delivery for a full refund. "
        "Refunds reach the original payment method within 5 business days.",
    ),
    pk.Document(
        id="shipping",
        title="Shipping",
        text="Standard shipping takes 3-5 business days. "
        "Orders over 50 EUR ship free within the EU.",
    ),
    pk.Document(
        id="warranty",
        title="Warranty",
        text="Electronics carry a two-year warranty covering manufacturing defects, "
        "not accidental damage.",
    ),
]

answer = pk.Context(
    instruction="Answer the customer's question in one sentence.",
    template="Question: {{ question }}",
    not_found="I don't know based on our policies.",
)


def retrieve(question: str, k: int = 2) -> list[pk.Document]:
    words = set(re.findall(r"[a-z]+", question.lower()))

    def score(doc: pk.Document) -> int:
        return len(words & set(re.findall(r"[a-z]+", doc.text.lower())))

    return sorted(KNOWLEDGE_BASE, key=score, reverse=True)[:k]


QUESTIONS = ["How long does a refund take?", "Do you ship to Canada for free?"]


def main(llm: pk.LLM) -> list[str]:
    out = []
    for q in QUESTIONS:
        docs = retrieve(q)
        reply = answer.run(
            llm, question=q, documents=docs, params=pk.PRECISE | pk.SamplingParams(max_tokens=60)
        )
        cited = re.findall(r"\[([\w.:/#-]+)\]", reply.text)
        print(f"Q: {q}\nA: {reply.text.strip()}")
        print(f"   retrieved: {[d.id for d in docs]}, cited: {cited}\n")
        out.append(reply.text.strip())
    return out


if __name__ == "__main__":
    main(pk.connect())
