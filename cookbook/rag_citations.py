"""Retrieval-augmented answers with citations over a small knowledge base.

Technique: retrieved context. The documents are embedded once into a vector index (with
the configured backend's embeddings: the embedded model by default); for each question
the index finds the closest documents, which become delimited, citable sections. The
model is told to cite ids like [returns] and to say so when the answer is not in the
documents; the recipe checks that every citation names a document it was given.

Run:  python cookbook/rag_citations.py
"""

from __future__ import annotations

import re

import promptkit as pk

# The knowledge base of a made-up online shop, written for this recipe.
KNOWLEDGE_BASE = [
    pk.Document(
        id="returns",
        title="Returns",
        text="Items can be returned within 30 days of delivery for a full refund. "
        "Refunds reach the original payment method within 5 business days.",
    ),
    pk.Document(
        id="shipping",
        title="Shipping in the EU",
        text="Standard shipping within the EU takes 3-5 business days. "
        "Orders over 50 EUR ship free within the EU; smaller orders pay 4.90 EUR.",
    ),
    pk.Document(
        id="international",
        title="Shipping outside the EU",
        text="We ship to the United Kingdom, Switzerland, Norway, Canada and the United "
        "States for 15 EUR per order, whatever its value. Customs duties are paid by the "
        "customer.",
    ),
    pk.Document(
        id="warranty",
        title="Warranty",
        text="Electronics carry a two-year warranty covering manufacturing defects, "
        "not accidental damage such as a dropped or water-damaged device.",
    ),
    pk.Document(
        id="repairs",
        title="Repairs",
        text="Devices out of warranty can be repaired at our workshop in Lyon. "
        "We send a quote before starting any work.",
    ),
    pk.Document(
        id="payment",
        title="Payment",
        text="We accept Visa, Mastercard, PayPal and bank transfer. "
        "Cards are charged when the order ships, not when it is placed.",
    ),
    pk.Document(
        id="gift-cards",
        title="Gift cards",
        text="Gift cards are valid for three years from purchase and cannot be exchanged for cash.",
    ),
    pk.Document(
        id="account",
        title="Account and privacy",
        text="You can delete your account and your personal data at any time from the "
        "Privacy page of your account settings.",
    ),
]

answer = pk.Context(
    instruction="Answer the customer's question in one sentence.",
    template="Question: {{ question }}",
    not_found="I don't know based on our policies.",
    k=2,
)

QUESTIONS = ["How long does a refund take?", "Do you ship to Canada for free?"]
PARAMS = pk.PRECISE | pk.SamplingParams(max_tokens=60)


def main(llm: pk.LLM) -> list[str]:
    # Embed the knowledge base once (index.save(path) and VectorIndex.load(path, llm) keep it).
    index = pk.VectorIndex.from_documents(KNOWLEDGE_BASE, llm)
    rag = answer.model_copy(update={"retriever": index})
    out = []
    for q in QUESTIONS:
        messages = rag.render(question=q)  # retrieves the k closest documents for q
        retrieved = re.findall(r"^<<<DOCUMENT (\S+)>>>$", messages[-1].content, flags=re.M)
        reply = llm.complete(messages, params=PARAMS)  # rag.run(llm, question=q) does both
        cited = re.findall(r"\[([\w.:/#-]+)\]", reply.text)
        unknown = sorted(set(cited) - set(retrieved))
        print(f"Q: {q}\nA: {reply.text.strip()}")
        print(f"   retrieved: {retrieved}, cited: {cited}")
        if unknown:
            print(f"   warning: cites documents it was not given: {unknown}")
        print()
        out.append(reply.text.strip())
    return out


if __name__ == "__main__":
    main(pk.connect())
