"""Structured output: extract a validated pydantic object from a free-text support message.

`prompt.run(llm, ..., output=Model)` asks for JSON matching the model's schema (constrained
decoding where the backend supports it: OpenAI, vLLM, llama.cpp, Ollama), validates it,
and retries with the validation errors fed back to the model when it does not fit.

Run:  python cookbook/structured_output.py
"""

from typing import Literal

from pydantic import BaseModel, Field

import promptkit as pk


class Ticket(BaseModel):
    product: str = Field(description="the product the customer writes about")
    category: Literal["billing", "delivery", "defect", "other"]
    urgent: bool


extract = pk.ZeroShot(
    instruction="Extract the ticket fields from the customer's message.",
    template="Message: {{ message }}",
)

MESSAGE = "My new headphones stopped charging after two days and I fly out tomorrow morning!"


def main(llm: pk.LLM) -> Ticket:
    ticket = extract.run(
        llm, message=MESSAGE, output=Ticket, params=pk.PRECISE | pk.SamplingParams(max_tokens=80)
    )
    print(repr(ticket))
    return ticket


if __name__ == "__main__":
    main(pk.connect())
