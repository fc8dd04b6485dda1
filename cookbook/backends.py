"""The same prompt on several backends, chosen by configuration, not code.

Which backends: the comma-separated targets in PROMPTKIT_RECIPE_BACKENDS (for example
"llamacpp,ollama:llama3.2,openai:gpt-4o-mini"), else every profile of promptkit.toml, else
the default connect() (the embedded model). Each reply shows the backend, the model and
the sampling parameters the backend could not honour (never sent, always reported).

Run:  python cookbook/backends.py
      PROMPTKIT_RECIPE_BACKENDS=llamacpp,ollama:llama3.2 python cookbook/backends.py
"""

from __future__ import annotations

import os

import promptkit as pk

summarise = pk.Instruction(
    instruction="Summarise the text.", length="one sentence", template="{{ text }}"
)

TEXT = (
    "The city council approved a plan to plant 5,000 trees over three years, prioritising "
    "neighbourhoods with the least shade, funded by a mix of grants and the parks budget."
)

# top_k is honoured by llama.cpp, vLLM and Ollama, not by the OpenAI API: there it is dropped.
PARAMS = pk.PRECISE | pk.SamplingParams(max_tokens=40, top_k=20)


def main(llm: pk.LLM) -> pk.Completion:
    reply = summarise.run(llm, text=TEXT, params=PARAMS)
    print(f"[{reply.backend} / {reply.model}] {reply.text.strip()}")
    if reply.dropped:
        print(f"    not honoured here: {sorted(reply.dropped)}")
    return reply


def targets() -> list[dict[str, str]]:
    """connect() arguments for each configured backend."""
    listed = os.environ.get("PROMPTKIT_RECIPE_BACKENDS", "")
    if listed.strip():
        return [{"backend": t.strip()} for t in listed.split(",") if t.strip()]
    return [{"profile": p} for p in pk.config_profiles()] or [{}]


if __name__ == "__main__":
    for target in targets():
        main(pk.connect(**target, on_unsupported="drop"))
