"""Sampling parameters: the same prompt under the precise, creative and no-repetition presets.

Presets are plain SamplingParams and combine with `|`. Parameters a backend cannot honour
are not sent, and the Completion says which were dropped.

Run:  python cookbook/sampling_presets.py
"""

from __future__ import annotations

import promptkit as pk

tagline = pk.ZeroShot(
    instruction="Write a one-line tagline for the product.", template="Product: {{ product }}"
)

PRESETS = {"precise": pk.PRECISE, "creative": pk.CREATIVE, "no_repetition": pk.NO_REPETITION}


def main(llm: pk.LLM) -> dict[str, str]:
    out = {}
    for name, preset in PRESETS.items():
        params = preset | pk.SamplingParams(max_tokens=24, seed=7)
        reply = tagline.run(llm, product="a solar-powered bike light", params=params)
        out[name] = reply.text.strip()
        print(f"{name:<14} {params.set_fields()}\n{'':<14} -> {out[name]}")
        if reply.dropped:
            print(f"{'':<14} dropped by this backend: {sorted(reply.dropped)}")
    return out


if __name__ == "__main__":
    main(pk.connect())
