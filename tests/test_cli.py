"""The command line: recipes, run, render, backends; errors are one line, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import promptkit as pk
from promptkit._cli import main
from promptkit._files import save_prompt


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("PROMPTKIT_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_recipes_lists_the_cookbook(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTKIT_COOKBOOK", str(Path(__file__).parent.parent / "cookbook"))
    assert main(["recipes", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in listed}
    assert {"few_shot", "delimited", "chain_of_thought"} <= names
    assert all(r["summary"] for r in listed)


def test_run_a_recipe_with_backend_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "hello.py").write_text(
        '"""Say which backend connect() built."""\n'
        "import promptkit as pk\n"
        'if __name__ == "__main__":\n'
        "    llm = pk.connect()\n"
        "    print(llm.backend.name, llm.model)\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PROMPTKIT_COOKBOOK", str(book))
    assert main(["run", "hello", "--backend", "fake", "--model", "m1"]) == 0
    assert capsys.readouterr().out.strip() == "fake m1"
    assert main(["run", "helo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Did you mean 'hello'?" in err


def test_render_prompt_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = save_prompt(
        pk.FewShot(
            instruction="Translate to {{ language }}.",
            examples=[pk.Example(input="cat", output="chat")],
        ),
        tmp_path / "translate.json",
    )
    (tmp_path / "input.txt").write_text("dog {{ 7*7 }}", encoding="utf-8")
    assert main(["render", str(f), "--var", "language=French", "--var", "input=@input.txt"]) == 0
    assert capsys.readouterr().out == (
        "[system]\nTranslate to French.\n\n[user]\ncat\n\n[assistant]\nchat\n\n"
        "[user]\ndog {{ 7*7 }}\n"
    )
    assert (
        main(["render", str(f), "--json", "--vars-json", '{"language": "German", "input": "x"}'])
        == 0
    )
    assert json.loads(capsys.readouterr().out)[0] == {
        "role": "system",
        "content": "Translate to German.",
    }
    assert main(["render", str(f), "--text", "--var", "language=x", "--var", "input=y"]) == 0
    assert capsys.readouterr().out.endswith("### User:\ny\n\n### Assistant:\n")


def test_errors_are_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = save_prompt(pk.ZeroShot(instruction="To {{ language }}."), tmp_path / "p.yaml")
    assert main(["render", str(f), "--var", "langauge=fr", "--var", "input=x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("promptkit: error: ZeroShot is missing variable(s) 'language'")
    assert "did you mean 'language'" in err and "Traceback" not in err
    assert err.count("\n") == 1
    with pytest.raises(pk.MissingVariablesError):
        main(["--debug", "render", str(f), "--var", "input=x"])


def test_backends_reports_reachability(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "promptkit.toml").write_text(
        'backend = "fake"\n'
        "[profiles.down]\n"
        'backend = "openai"\n'
        'base_url = "http://127.0.0.1:9/v1"\n',
        encoding="utf-8",
    )
    assert main(["backends", "--json"]) == 1  # one backend does not answer
    rows = {r["profile"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["(default)"]["backend"] == "fake" and rows["(default)"]["reachable"] is True
    assert rows["down"]["reachable"] is False and "127.0.0.1:9" in rows["down"]["detail"]


def test_python_dash_m_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "promptkit", "--help"], capture_output=True, text=True, check=True
    )
    assert "recipes" in out.stdout and "render" in out.stdout and "backends" in out.stdout


def test_render_shows_parts_legibly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = bytes.fromhex("89504e470d0a1a0a") + bytes(16)
    (tmp_path / "r.png").write_bytes(png)
    f = tmp_path / "p.json"
    save_prompt(pk.Prompt(instruction="Read receipts.", template="Total of {{ photo }}?"), f)
    photo = json.dumps({"photo": {"type": "image", "path": str(tmp_path / "r.png")}})
    assert main(["render", str(f), "--vars-json", photo]) == 0
    out = capsys.readouterr().out
    assert f"Total of \n[image path='{tmp_path / 'r.png'}']\n?" in out
    inline = json.dumps({"photo": {"type": "image", "data": "iVBORw0KGgoAAAAAAAAAAAAAAAAAAAAA"}})
    assert main(["render", str(f), "--json", "--vars-json", inline]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown[-1]["content"][1] == {
        "type": "image",
        "source": "ImagePart(data=<24 bytes, sha256 f731c2528f41>, media_type='image/png')",
    }
    assert "iVBOR" not in json.dumps(shown)  # bytes are summarised, never dumped
