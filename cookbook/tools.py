"""Tool calling: a unit-converter assistant with two tools, run by a bounded tool loop.

Technique: tool use (the model asks for a function call, the program runs it and feeds the
result back). The tools are typed Python functions: their signatures and docstrings become
the JSON schemas the model sees, and the model's arguments are validated before a tool
runs. `pk.ToolLoop` runs the calls of one reply concurrently, feeds bad arguments back as
an error the model can correct (a bounded number of times) and stops at the model's final
answer or after `max_steps` model calls.

Needs a backend with tool calling: an OpenAI-compatible server (the llama.cpp server
started with --jinja, vLLM with --enable-auto-tool-choice), Ollama, or the OpenAI API. The
embedded SmolLM2 backend refuses tools with a ParameterError before sending anything.

Run:  PROMPTKIT_BACKEND=ollama:llama3.2 python cookbook/tools.py
"""

from __future__ import annotations

from typing import Literal

import promptkit as pk

LENGTH_IN_METRES = {"m": 1.0, "km": 1000.0, "mi": 1609.344, "ft": 0.3048}
Length = Literal["m", "km", "mi", "ft"]
Scale = Literal["C", "F"]


def convert_length(value: float, from_unit: Length, to_unit: Length) -> str:
    """Convert a length between metres, kilometres, miles and feet.

    Args:
        value: the length to convert
        from_unit: the unit of value
        to_unit: the unit wanted
    """
    result = value * LENGTH_IN_METRES[from_unit] / LENGTH_IN_METRES[to_unit]
    return f"{result:.3f} {to_unit}"


def convert_temperature(value: float, from_unit: Scale, to_unit: Scale) -> str:
    """Convert a temperature between degrees Celsius (C) and Fahrenheit (F).

    Args:
        value: the temperature to convert
        from_unit: the scale of value
        to_unit: the scale wanted
    """
    if from_unit == to_unit:
        result = value
    elif from_unit == "C":
        result = value * 9 / 5 + 32
    else:
        result = (value - 32) * 5 / 9
    return f"{result:.1f} {to_unit}"


assistant = pk.ToolLoop(
    pk.Instruction(
        instruction=(
            "Answer the question. Use the tools for every conversion; never convert in "
            "your head. Give the converted values in one short sentence."
        ),
    ),
    tools=[convert_length, convert_temperature],
    max_steps=4,
)

QUESTION = "I ran 10 km at 30 degrees Celsius. How far is that in miles, and how hot in F?"


def main(llm: pk.LLM) -> str:
    result = assistant.run(llm, input=QUESTION, params=pk.PRECISE)
    for step in result.steps:
        for run in step.runs:
            print(f"step {step.number}: {run.call.name}({run.call.raw_arguments}) -> {run.text}")
    print(f"\n{result.output.strip()}  [{result.stopped_by}, {result.usage.total_tokens} tokens]")
    return result.output.strip()


if __name__ == "__main__":
    main(pk.connect())
