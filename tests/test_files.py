"""Prompt files: JSON and YAML dumps of prompt objects, loaded back identically."""

from __future__ import annotations

import base64
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


# ------------------------------------------------------------- media paths in prompt files

PNG = bytes.fromhex("89504e470d0a1a0a") + bytes(16)
WAV = b"RIFF" + bytes(4) + b"WAVEfmt " + bytes(8)

MEDIA_YAML = """\
technique: Context
template: "{{ photo }}"
examples:
  - input: {photo: {type: image, path: img.png}}
    output: a square
documents:
  - id: kb-1
    text: A scanned page.
    media: [{type: image, path: pages/p1.png}]
history:
  - role: user
    content: [{type: text, text: Listen}, {type: audio, path: clip.wav}]
  - {role: assistant, content: ok}
"""


def _media_paths(p: pk.PromptBase) -> list[Path]:
    assert isinstance(p, pk.Prompt)
    parts = [p.examples[0].input["photo"], *p.documents[0].media, p.history[0].content[1]]
    return [part.path for part in parts]  # type: ignore[union-attr]


def test_relative_media_paths_in_a_prompt_file_are_taken_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "prompts"
    (folder / "pages").mkdir(parents=True)
    (folder / "img.png").write_bytes(PNG)
    (folder / "pages" / "p1.png").write_bytes(PNG + b"\x01")
    (folder / "clip.wav").write_bytes(WAV)
    f = folder / "scan.yaml"
    f.write_text(MEDIA_YAML, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # Python started somewhere else: the file still works
    for loaded in (load_prompt(f), load_prompt(Path("..") / "prompts" / "scan.yaml")):
        assert _media_paths(loaded) == [
            folder / "img.png", folder / "pages" / "p1.png", folder / "clip.wav"
        ]
        assert isinstance(loaded, pk.Prompt)
        assert loaded.examples[0].input["photo"].read() == PNG
        assert loaded.history[0].content[1].read() == WAV  # type: ignore[union-attr]
        assert loaded.documents[0].media[0].read() == PNG + b"\x01"
        last = loaded.render(photo=pk.Image(PNG))[-1].content  # the page is sent from there
        assert next(part.read() for part in last if isinstance(part, pk.ImagePart)) == (
            PNG + b"\x01"
        )
    # absolute paths, URLs and data: URIs are unchanged; a path given in code keeps the cwd
    absolute = str(folder / "img.png")
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    given = {"a": {"type": "image", "path": absolute},
             "u": {"type": "image", "url": "https://x.test/a.png"},
             "d": {"type": "image", "url": data_url}}
    p = prompt_from_dict(
        {"technique": "FewShot", "template": "{{ a }}{{ u }}{{ d }}",
         "examples": [{"input": given, "output": "x"}]},
        base_dir=tmp_path / "other",
    )
    assert p.examples[0].input["a"].path == Path(absolute)
    assert p.examples[0].input["u"].url == "https://x.test/a.png"
    assert p.examples[0].input["d"].url == data_url
    assert pk.Image("img.png").path == Path("img.png")


def test_a_missing_media_file_names_the_path_read_and_what_it_was_relative_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "scan.yaml"
    f.write_text(MEDIA_YAML, encoding="utf-8")
    monkeypatch.chdir(tmp_path.parent)
    loaded = load_prompt(f)
    assert isinstance(loaded, pk.Prompt)
    with pytest.raises(pk.MediaError) as err:
        loaded.examples[0].input["photo"].read()
    message = str(err.value)
    assert repr(str(tmp_path / "img.png")) in message  # the path it tried
    assert f"'img.png' in {f}" in message and repr(str(tmp_path)) in message
    assert "taken from that file's folder" in message
    # a relative path given in code: the resolved path, and the current directory
    with pytest.raises(pk.MediaError, match="current directory") as err:
        pk.Image("nope/x.png").read()
    assert repr(str(tmp_path.parent / "nope" / "x.png")) in str(err.value)


def test_media_paths_in_inline_config_prompts_are_taken_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptkit.evaluation._config import load_config

    (tmp_path / "img.png").write_bytes(PNG)
    (tmp_path / "data.jsonl").write_text('{"photo": "x", "expected": "a square"}\n')
    (tmp_path / "eval.toml").write_text(
        'dataset = "data.jsonl"\n'
        '[variants.shots]\ntechnique = "FewShot"\ntemplate = "{{ photo }}"\n'
        '[[variants.shots.examples]]\noutput = "a square"\n'
        'input = {photo = {type = "image", path = "img.png"}}\n'
    )
    monkeypatch.chdir(tmp_path.parent)
    config = load_config(tmp_path / "eval.toml")
    prompt = config.variants["shots"].prompt
    assert isinstance(prompt, pk.Prompt)
    assert prompt.examples[0].input["photo"].read() == PNG


def test_prompty_images_are_taken_from_the_prompty_folder_and_errors_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "look.prompty"
    f.write_text(
        "---\nname: look\nmodel:\n  api: chat\n---\nuser:\nLook ![a cat](img/cat.png) here\n",
        "utf-8",
    )
    monkeypatch.chdir(tmp_path.parent)
    content = load_prompt(f).render()[0].content
    assert isinstance(content, tuple)
    image = content[1]
    assert isinstance(image, pk.ImagePart) and image.path == tmp_path / "img" / "cat.png"
    with pytest.raises(pk.MediaError) as err:
        image.read()
    assert repr(str(tmp_path / "img" / "cat.png")) in str(err.value)
    assert "'img/cat.png' in the .prompty 'look'" in str(err.value)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "cat.png").write_bytes(PNG)
    assert load_prompt(f).render()[0].content[1].read() == PNG  # type: ignore[union-attr]


def _prompty_with_image(folder: Path, ref: str) -> Path:
    f = folder / "look.prompty"
    f.write_text(f"---\nname: look\nmodel:\n  api: chat\n---\nuser:\nLook ![x]({ref}) here\n",
                 "utf-8")
    return f


def test_a_prompty_image_never_reaches_outside_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / "pics").mkdir(parents=True)
    (home / "pics" / "private.png").write_bytes(PNG)
    monkeypatch.setenv("HOME", str(home))  # ~ is this folder, holding a readable image
    folder = tmp_path / "prompts"
    (folder / "pics").mkdir(parents=True)
    (folder / "link").symlink_to(home)
    refused = {
        "~/pics/private.png": "starts with '~'",
        "~": "starts with '~'",
        "../home/pics/private.png": "points outside",
        "pics/../../home/pics/private.png": "points outside",
        str(home / "pics" / "private.png"): "points outside",
        "link/pics/private.png": "points outside",
    }
    for ref, rule in refused.items():
        prompt = load_prompt(_prompty_with_image(folder, ref))
        for attempt in (prompt.render, prompt.prepare):
            with pytest.raises(pk.PromptError) as err:
                attempt()
            assert repr(ref) in str(err.value) and rule in str(err.value)
            assert str(folder) in str(err.value)  # the folder it must stay inside
    # a literal folder named "~" beside the file is refused too (one rule, no guessing)
    (folder / "~" / "pics").mkdir(parents=True)
    (folder / "~" / "pics" / "private.png").write_bytes(PNG + b"\x01")
    with pytest.raises(pk.PromptError, match="starts with '~'"):
        load_prompt(_prompty_with_image(folder, "~/pics/private.png")).render()
    # a reference that stays inside is read from exactly the path checked
    (folder / "pics" / "ok.png").write_bytes(PNG + b"\x02")
    content = load_prompt(_prompty_with_image(folder, "pics/../pics/ok.png")).render()[0].content
    image = content[1]
    assert isinstance(image, pk.ImagePart) and image.path == (folder / "pics" / "ok.png").resolve()
    assert image.read() == PNG + b"\x02"
    # its errors still name the reference as written
    content = load_prompt(_prompty_with_image(folder, "pics/../pics/gone.png")).render()[0].content
    with pytest.raises(pk.MediaError) as merr:
        content[1].read()  # type: ignore[union-attr]
    assert "'pics/../pics/gone.png' in the .prompty 'look'" in str(merr.value)


def test_save_prompt_writes_relative_paths_only_inside_the_folder_and_keeps_home_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    top = tmp_path.resolve()
    (top / "sub" / "deep").mkdir(parents=True)
    (top / "sq.png").write_bytes(PNG)
    (top / "sub" / "sq.png").write_bytes(PNG + b"\x01")
    monkeypatch.setenv("HOME", str(top))
    monkeypatch.chdir(top / "sub")
    given = {  # as given in code -> as written in sub/s.yaml
        "../sq.png": str(top / "sq.png"),  # outside: absolute, not '../sq.png'
        "deep/../../sq.png": str(top / "sq.png"),
        str(top / "sub" / ".." / "sq.png"): str(top / "sq.png"),
        "~/sq.png": "~/sq.png",  # the portable home form, as written
        "~/sub/sq.png": "~/sub/sq.png",
        "sq.png": "sq.png",
        "../sub/sq.png": "sq.png",
        str(top / "sub" / "deep" / ".." / "sq.png"): "sq.png",
    }
    examples = [pk.Example(input={"photo": pk.Image(src)}, output=str(i))
                for i, src in enumerate(given)]
    p = pk.FewShot(instruction="Classify.", template="{{ photo }}", examples=examples)
    want = [ex.input["photo"].read() for ex in p.examples]
    assert want == [PNG] * 4 + [PNG + b"\x01"] * 4
    f = save_prompt(p, top / "sub" / "s.yaml")
    written = [ex["input"]["photo"]["path"] for ex in yaml.safe_load(f.read_text())["examples"]]
    assert written == list(given.values())
    monkeypatch.chdir(tmp_path.parent)  # the saved file reaches the same files from anywhere
    loaded = load_prompt(f)
    assert isinstance(loaded, pk.Prompt)
    assert [ex.input["photo"].read() for ex in loaded.examples] == want


def test_the_module_docs_example_files_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    import promptkit._files as files

    doc = files.__doc__ or ""
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", doc)
    named = {}
    for block in blocks:
        text = "\n".join(line[4:] for line in block.splitlines()).strip() + "\n"
        first = text.splitlines()[0]
        assert first.startswith("# ") and first.endswith(".yaml"), first  # each names its file
        named[first[2:]] = text
    assert set(named) == {"classify.yaml", "shapes.yaml"}
    (tmp_path / "shapes").mkdir()
    (tmp_path / "shapes" / "square.png").write_bytes(PNG)
    monkeypatch.chdir(tmp_path.parent)
    for name, text in named.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        prompt = load_prompt(tmp_path / name)
        assert isinstance(prompt, pk.FewShot)
    shapes = load_prompt(tmp_path / "shapes.yaml")
    assert isinstance(shapes, pk.Prompt)
    assert shapes.examples[0].input["photo"].read() == PNG  # beside shapes.yaml
    sent = shapes.render(photo=pk.Image(PNG + b"\x01"))
    assert any(isinstance(part, pk.ImagePart) for m in sent for part in m.content)
    assert load_prompt(tmp_path / "classify.yaml").render(input="Meh")[-1].content == "Meh"


def _local_images(prompt: pk.PromptBase, pic: str) -> list[bytes]:
    content = prompt.render(pic=pic)[0].content
    return [part.read() for part in content
            if isinstance(part, pk.ImagePart) and part.path is not None]


def test_save_prompt_to_another_folder_rewrites_prompty_image_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = tmp_path.resolve()
    (top / "sub" / "img").mkdir(parents=True)
    (top / "shared").mkdir()
    (top / "sub" / "img" / "cat.png").write_bytes(PNG)
    (top / "shared" / "dog.png").write_bytes(PNG + b"\x01")
    body = ("user:\nLook ![a cat](img/./cat.png) and ![a dog](../shared/dog.png \"title\")\n"
            "![web](https://x.test/a.png) ![made]({{ pic }})\n")
    f = top / "sub" / "look.prompty"
    f.write_text("---\nname: look\nmodel:\n  api: chat\n---\n" + body, "utf-8")
    monkeypatch.chdir(tmp_path.parent)
    loaded = pk.prompty.load(f, root=top)  # root= lets the dog in, as before
    assert _local_images(loaded, "img/cat.png") == [PNG, PNG + b"\x01", PNG]
    # saved one folder up: the paths are rewritten, and the file loads without root=
    up = save_prompt(loaded, top / "look.prompty")
    text = up.read_text()
    assert ("![a cat](sub/img/cat.png) and ![a dog](shared/dog.png \"title\")\n"
            "![web](https://x.test/a.png) ![made]({{ pic }})\n") in text
    assert _local_images(load_prompt(up), "sub/img/cat.png") == [PNG, PNG + b"\x01", PNG]
    # saved into the same folder: left exactly as written
    same = save_prompt(loaded, top / "sub" / "copy.prompty")
    assert same.read_text() == f.read_text()
    # saved where the cat would be outside the new folder: a typed error naming the fix,
    # and nothing is written
    (top / "elsewhere").mkdir()
    plain_file = f.with_name("plain.prompty")
    plain_file.write_text("---\nmodel:\n  api: chat\n---\nuser:\n![a cat](img/./cat.png)\n")
    plain = load_prompt(plain_file)  # no root=: the folder is the limit
    with pytest.raises(pk.PromptError) as err:
        save_prompt(plain, top / "elsewhere" / "look.prompty")
    message = str(err.value)
    assert "'img/./cat.png'" in message and "outside the new file's folder" in message
    assert f"copy the image into {top / 'elsewhere'}" in message
    assert not (top / "elsewhere" / "look.prompty").exists()
    # within root=, a folder beside the old one takes '..' paths that need root= again
    beside = save_prompt(loaded, top / "shared" / "look.prompty")
    assert "![a cat](../sub/img/cat.png) and ![a dog](dog.png \"title\")" in beside.read_text()
    with pytest.raises(pk.PromptError, match="points outside"):
        load_prompt(beside).render()
    moved = pk.prompty.load(beside, root=top)
    assert _local_images(moved, "../sub/img/cat.png") == [PNG, PNG + b"\x01", PNG]


@pytest.mark.parametrize("name", ["p.yaml", "p.json", "p.prompty"])
def test_saving_into_a_missing_folder_is_a_prompt_error(tmp_path: Path, name: str) -> None:
    prompt = pk.ZeroShot(instruction="Say hi.")
    if name.endswith(".prompty"):
        src = tmp_path / "src.prompty"
        src.write_text("---\nname: x\nmodel:\n  api: chat\n---\nuser:\nSay hi.\n", encoding="utf-8")
        prompt = pk.load_prompt(src)
    target = tmp_path / "missing" / name
    with pytest.raises(pk.PromptError, match="folder that exists"):
        pk.save_prompt(prompt, target)
    assert not target.parent.exists()
