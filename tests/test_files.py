"""Prompt files: JSON and YAML dumps of prompt objects, loaded back identically."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptkit as pk
from promptkit._files import load_prompt, prompt_from_dict, save_prompt


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    p = pk.ChainOfThought(
        instruction="Solve {{ kind }} problems.",
        examples=[pk.Example(input="2+2", output="4", rationale="Two and two.")],
        avoid=["guessing"],
        params=pk.PRECISE | pk.SHORT,
    )
    path = save_prompt(p, tmp_path / f"solve{suffix}")
    loaded = load_prompt(path)
    assert isinstance(loaded, pk.ChainOfThought)
    assert loaded == p
    assert loaded.render(kind="maths", input="3+3") == p.render(kind="maths", input="3+3")


def test_yaml_written_by_hand(tmp_path: Path) -> None:
    f = tmp_path / "classify.yaml"
    f.write_text(
        "technique: FewShot\n"
        "instruction: Classify the sentiment.\n"
        "examples:\n"
        "  - {input: I loved it, output: positive}\n",
        encoding="utf-8",
    )
    p = load_prompt(f)
    assert [m.content for m in p.render(input="Meh")] == [
        "Classify the sentiment.",
        "I loved it",
        "positive",
        "Meh",
    ]


def test_errors_are_promptkit_errors(tmp_path: Path) -> None:
    with pytest.raises(pk.PromptError, match="Did you mean 'FewShot'"):
        prompt_from_dict({"technique": "Fewshot"})
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(pk.PromptError, match="invalid JSON on line 1"):
        load_prompt(bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("!!python/object/apply:os.system ['echo hi']\n", encoding="utf-8")
    with pytest.raises(pk.PromptError, match="invalid YAML"):
        load_prompt(evil)
    with pytest.raises(pk.PromptError, match="unknown prompt file type"):
        load_prompt(tmp_path / "x.txt")
    with pytest.raises(pk.InvalidPromptError, match="examples"):
        prompt_from_dict({"technique": "FewShot", "examples": []})


def test_prompty_through_the_same_functions(tmp_path: Path) -> None:
    p = pk.FewShot(instruction="Classify.", examples=[pk.Example(input="a", output="b")])
    path = save_prompt(p, tmp_path / "classify.prompty")
    loaded = load_prompt(path)
    assert loaded.render(input="c") == p.render(input="c")
    with pytest.raises(pk.PromptError, match=r"can be saved as \.prompty only"):
        save_prompt(loaded, tmp_path / "x.json")
