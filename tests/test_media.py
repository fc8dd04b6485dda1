"""Content parts (issue 14): types, sniffing, limits, lazy reads, reprs, cache keys, tokens."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import promptkit as pk
from promptkit._cache import cache_key
from promptkit._media import content_text, describe_content
from promptkit._tokens import IMAGE_TOKENS, approx_tokens, message_cost
from promptkit._types import Message, Request

PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00\x00\x00\rIHDR" + bytes(13)
JPEG = b"\xff\xd8\xff\xe0" + bytes(20)
GIF = b"GIF89a" + bytes(10)
WEBP = b"RIFF" + bytes(4) + b"WEBPVP8 " + bytes(8)
# a WAV header saying 16,000 bytes a second, with 32,000 bytes of sound (2 s)
WAV = (
    b"RIFF" + bytes(4) + b"WAVEfmt " + bytes(12) + (16_000).to_bytes(4, "little") + bytes(4)
    + b"data" + (32_000).to_bytes(4, "little") + bytes(32_000)
)
MP3 = b"ID3\x04" + bytes(60)
PDF = b"%PDF-1.7\n..."


@pytest.mark.parametrize(
    ("data", "media_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")],
)
def test_image_media_type_is_sniffed(data: bytes, media_type: str) -> None:
    assert pk.Image(data).media_type == media_type


def test_audio_format_is_sniffed_and_file_type_too() -> None:
    assert pk.Audio(WAV).format == "wav"
    assert pk.Audio(MP3).format == "mp3"
    assert pk.Audio(MP3).media_type == "audio/mpeg"
    assert pk.File(PDF).media_type == "application/pdf"


def test_declared_type_that_contradicts_the_bytes_is_an_error() -> None:
    with pytest.raises(pk.MediaError, match="declared 'image/jpeg' but its bytes are 'image/png'"):
        pk.Image(PNG, media_type="image/jpeg")
    with pytest.raises(pk.MediaError, match="not an accepted image type"):
        pk.Image(WAV)
    with pytest.raises(pk.MediaError, match="WAV or MP3"):
        pk.Audio(PNG)
    with pytest.raises(pk.MediaError, match="pass media_type="):
        pk.Image(b"no magic here")
    # an alias of the sniffed type is fine
    assert pk.Image(JPEG, media_type="image/jpg").media_type == "image/jpeg"


def test_size_limit() -> None:
    with pytest.raises(pk.MediaError, match="over the limit of 10"):
        pk.Image(PNG, max_bytes=10)
    assert pk.Image(PNG, max_bytes=len(PNG)).read() == PNG


def test_local_file_is_read_lazily_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "cat.png"
    img = pk.Image(str(f))  # not there yet: nothing is read at construction
    assert img.path == f
    f.write_bytes(PNG)
    reads: list[Path] = []
    real = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    assert img.read() == PNG
    assert img.b64() == base64.b64encode(PNG).decode()
    assert img.data_url().startswith("data:image/png;base64,")
    assert reads == [f]
    assert img.media_type == "image/png"


def test_unreadable_and_mismatched_files(tmp_path: Path) -> None:
    with pytest.raises(pk.MediaError, match=r"Cannot read the image file .*missing\.png"):
        pk.Image(str(tmp_path / "missing.png")).read()
    bad = tmp_path / "photo.png"
    bad.write_bytes(JPEG)
    with pytest.raises(pk.MediaError, match="declared"):
        pk.Image(bad, media_type="image/png").read()
    # no declared type: the bytes decide, whatever the extension says
    assert pk.Image(bad).resolved_media_type() == "image/jpeg"


def test_urls_pass_through_and_data_urls_are_decoded() -> None:
    url = pk.Image("https://example.com/a.png", detail="low")
    assert url.url == "https://example.com/a.png"
    assert url.data_url() == "https://example.com/a.png"
    with pytest.raises(pk.MediaError, match="does not fetch URLs"):
        url.read()
    inline = pk.Image("data:image/png;base64," + base64.b64encode(PNG).decode())
    assert inline.data == PNG and inline.media_type == "image/png"
    with pytest.raises(pk.MediaError, match="not valid base64"):
        pk.Image("data:image/png;base64,@@@")
    with pytest.raises(pk.MediaError, match="not a URL"):
        pk.Audio("https://example.com/memo.wav")


def test_reprs_summarise_bytes_and_never_dump_them() -> None:
    img = pk.Image(PNG)
    text = repr(img)
    assert text.startswith("ImagePart(data=<") and f"{len(PNG)} bytes" in text
    assert "\\x89" not in text and "iVBOR" not in text
    m = Message.user(["Look:", img])
    assert "\\x89" not in repr(m) and "iVBOR" not in repr(m)
    assert describe_content(m.content).startswith("Look:\n[image data=<")


def test_message_content_parts() -> None:
    img = pk.Image("https://example.com/a.png")
    m = Message.user(["Describe:", img])
    assert m.content == (pk.TextPart(text="Describe:"), img)
    assert m.text == "Describe:" and m.has_media
    assert not Message.user("hi").has_media
    assert Message.user("hi").content == "hi"
    # the dict form (JSON files, datasets) validates into parts
    m2 = Message.model_validate(
        {"role": "user", "content": [{"type": "text", "text": "a"},
                                     {"type": "image", "url": "https://x.test/b.png"}]}
    )
    assert isinstance(m2.content[1], pk.ImagePart)
    with pytest.raises(pk.InvalidPromptError):
        Message.user([{"type": "video", "url": "x"}])
    # frozen
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        img.url = "other"  # type: ignore[misc]
    assert content_text(("a", pk.TextPart(text="b"))) == "a\nb"


def test_json_round_trip_keeps_bytes_as_base64() -> None:
    m = Message.user(["Describe:", pk.Image(PNG)])
    dumped = m.model_dump_json()
    assert base64.b64encode(PNG).decode() in dumped
    back = Message.model_validate_json(dumped)
    assert back == m
    assert json.loads(dumped)["content"][1]["media_type"] == "image/png"


def test_exactly_one_source() -> None:
    with pytest.raises(pk.MediaError, match="exactly one of url=, path= or data="):
        pk.ImagePart(url="https://x.test/a.png", data=PNG)
    with pytest.raises(pk.MediaError, match="got none"):
        pk.ImagePart()


def test_cache_key_hashes_the_bytes_not_the_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(PNG)
    b.write_bytes(PNG)
    backend = pk.FakeBackend()

    def key(img: pk.ImagePart) -> str:
        return cache_key(backend, Request(messages=[Message.user(["x", img])]))

    assert key(pk.Image(a)) == key(pk.Image(b)) == key(pk.Image(PNG))
    b.write_bytes(PNG + b"\x00")
    assert key(pk.Image(a)) != key(pk.Image(b))
    assert key(pk.Image(PNG)) != key(pk.Image(PNG, detail="low"))
    # text-only keys are unchanged by the feature
    plain = cache_key(backend, Request(messages=[Message.user("x")]))
    assert plain != key(pk.Image(PNG))


def test_token_estimates_per_part() -> None:
    text_only = approx_tokens("abcdefgh")
    with_image = approx_tokens((pk.TextPart(text="abcdefgh"), pk.Image(PNG)))
    assert with_image == text_only + IMAGE_TOKENS
    low = approx_tokens((pk.TextPart(text="abcdefgh"), pk.Image(PNG, detail="low")))
    assert low == text_only + 85
    # 2 seconds of WAV at 10 tokens a second
    assert approx_tokens((pk.Audio(WAV),)) == approx_tokens("") + 20
    assert message_cost(len)((pk.TextPart(text="abcd"), pk.Image(PNG))) == 4 + IMAGE_TOKENS
    assert message_cost(pk.APPROX)((pk.TextPart(text="abcd"), pk.Image(PNG))) == (
        approx_tokens("abcd") + IMAGE_TOKENS
    )


def test_history_trimming_counts_images() -> None:
    from promptkit.prompts._history import trim_history

    img = pk.Image(PNG)
    history = [
        Message.user(["old photo", img]), Message.assistant("a cat"),
        Message.user("and now?"), Message.assistant("still a cat"),
    ]
    kept = trim_history(history, max_history_tokens=100)
    assert [m.text for m in kept] == ["and now?", "still a cat"]
    assert trim_history(history, max_history_tokens=10_000) == history


def test_render_text_refuses_parts() -> None:
    p = pk.Prompt(history=[Message.user(["hi", pk.Image(PNG)]), Message.assistant("ok")])
    with pytest.raises(pk.UnsupportedPartError, match="completion"):
        p.render_text(input="what is it?")


@pytest.mark.parametrize("ext", ["json", "yaml"])
def test_prompt_files_round_trip_parts(
    tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def prompt(tri: pk.ImagePart, beside: pk.ImagePart) -> pk.FewShot:
        return pk.FewShot(
            instruction="Name the shape.",
            template="{{ photo }}",
            examples=[
                pk.Example(input={"photo": pk.Image(PNG)}, output="square"),
                pk.Example(input={"photo": pk.Image("https://x.test/a.png", detail="low")},
                           output="circle"),
                pk.Example(input={"photo": tri}, output="triangle"),
                pk.Example(input={"photo": beside}, output="star"),
            ],
            history=[Message.user(["Earlier:", pk.Audio(WAV)]), Message.assistant("ok")],
        )

    # paths given in code are taken from the cwd (tmp_path)
    p = prompt(pk.Image("shapes/tri.png"), pk.Image("prompts/img/star.png"))
    f = tmp_path / "prompts" / f"p.{ext}"
    f.parent.mkdir()
    pk.save_prompt(p, f)
    text = f.read_text()
    assert "null" not in text  # sources not given are left out of the file
    assert base64.b64encode(PNG).decode() in text
    assert "\x89" not in text
    # outside the file's folder: absolute; inside it: relative to it, so the folder can move
    assert str(tmp_path / "shapes" / "tri.png") in text
    assert "img/star.png" in text and "prompts/img" not in text
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    q = pk.load_prompt(f)
    # the same files as before, now whatever the cwd
    assert q == prompt(pk.Image(tmp_path / "shapes" / "tri.png"),
                       pk.Image(tmp_path / "prompts" / "img" / "star.png"))
    assert isinstance(q.examples[2].input["photo"], pk.ImagePart)  # not read


def test_part_dicts_become_parts_in_example_inputs_of_prompt_files() -> None:
    from promptkit._files import prompt_from_dict

    template = "{{ photo }} {{ pages }} {{ note }}"
    p = prompt_from_dict({"technique": "FewShot", "template": template, "examples": [
        {"input": {"photo": {"type": "image", "url": "https://x.test/a.png"},
                   "pages": [{"type": "file", "data": base64.b64encode(PDF).decode()}],
                   "note": {"not": "a part"}}, "output": "x"}]}, where="t")
    ex = p.examples[0]
    assert ex.input["photo"] == pk.Image("https://x.test/a.png")
    assert ex.input["pages"] == [pk.File(PDF)]
    assert ex.input["note"] == {"not": "a part"}
    with pytest.raises(pk.MediaError, match="base64"):
        pk.ImagePart(data="not base64!")  # type: ignore[arg-type]


def test_dataset_image_columns_and_evaluate(tmp_path: Path) -> None:
    from promptkit.evaluation import Dataset, evaluate

    (tmp_path / "receipts").mkdir()
    (tmp_path / "receipts" / "1.png").write_bytes(PNG)
    (tmp_path / "receipts" / "2.png").write_bytes(PNG + b"\x01")
    data = tmp_path / "data.jsonl"
    data.write_text(
        '{"photo": {"type": "image", "path": "receipts/1.png"}, "expected": "12.50"}\n'
        '{"photo": {"type": "image", "path": "receipts/2.png"}, "expected": "3.20"}\n'
    )
    ds = Dataset.load(data)
    photo = ds[0].fields["photo"]
    assert isinstance(photo, pk.ImagePart)
    assert photo.path == tmp_path / "receipts" / "1.png"  # from the file's folder
    seen: list[Request] = []

    def reply(request: Request) -> str:
        seen.append(request)
        assert request.messages is not None
        image = request.messages[-1].content[1]
        return "12.50" if image.read() == PNG else "3.20"

    prompt = pk.Prompt(instruction="Read the total.", template="Total of {{ photo }}?")
    report = evaluate({"v": prompt}, ds, pk.LLM(pk.FakeBackend(reply)), progress=False)
    assert report.results[0].accuracy == 1.0
    assert len(seen) == 2
    with pytest.raises(pk.DatasetError, match="name the template variable"):
        ds.examples(input="photo")
    assert ds.examples(input={"photo": "photo"})[0].input == {"photo": photo}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"photo": {"type": "image", "data": "!!"}, "expected": "x"}\n')
    with pytest.raises(pk.DatasetError, match=r"field 'photo'.*base64"):
        Dataset.load(bad)


def test_equality_does_not_depend_on_a_lazy_read(tmp_path: Path) -> None:
    f = tmp_path / "a.png"
    f.write_bytes(PNG)
    read, unread = pk.Image(f), pk.Image(f)
    read.read()
    assert read == unread and hash(read) == hash(unread)
    assert pk.Image(f, detail="low") != unread
    assert pk.Image(PNG) != pk.Image(PNG + b"\x00")


NO_USER = "~no_such_user_promptkit_zz/x.png"  # "~name": the home of a user that is not there


def test_a_home_folder_that_cannot_be_found_is_a_media_error(tmp_path: Path) -> None:
    from promptkit._files import load_prompt, save_prompt
    from promptkit._media import expand_path
    from promptkit.evaluation import Dataset

    for attempt in (lambda: expand_path(NO_USER), lambda: pk.Image(NO_USER).read(),
                    lambda: pk.Audio(Path(NO_USER)).read()):
        with pytest.raises(pk.MediaError) as err:
            attempt()
        assert repr(NO_USER) in str(err.value) and "write the path in full" in str(err.value)
    # a prompt file holding one loads (the file is read when sent) and saves it as written
    f = tmp_path / "p.yaml"
    f.write_text('technique: FewShot\ntemplate: "{{ photo }}"\nexamples:\n'
                 f"  - input: {{photo: {{type: image, path: '{NO_USER}'}}}}\n    output: x\n")
    loaded = load_prompt(f)
    assert isinstance(loaded, pk.Prompt)
    photo = loaded.examples[0].input["photo"]
    assert isinstance(photo, pk.ImagePart) and photo.path == Path(NO_USER)  # not the file's
    with pytest.raises(pk.MediaError, match="write the path in full"):
        photo.read()
    saved = save_prompt(loaded, tmp_path / "q.yaml")
    assert f"path: {NO_USER}" in saved.read_text()
    # so does a dataset
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"photo": {"type": "image", "path": NO_USER}, "expected": "x"})
                    + "\n")
    column = Dataset.load(data)[0].fields["photo"]
    assert column.path == Path(NO_USER)
    with pytest.raises(pk.MediaError, match="write the path in full"):
        column.read()


def test_csv_media_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit.evaluation import Dataset, evaluate, load_dataset

    (tmp_path / "receipts").mkdir()
    (tmp_path / "receipts" / "1.png").write_bytes(PNG)
    (tmp_path / "memo.wav").write_bytes(WAV)
    data_url = "data:image/png;base64," + base64.b64encode(PNG + b"\x01").decode()
    data = tmp_path / "data.csv"
    data.write_text(
        "id,photo,memo,note,expected\n"
        "a,receipts/1.png,memo.wav,receipts/1.png,12.50\n"
        f'b,"{data_url}",memo.wav,plain,3.20\n'  # quoted: a data: URL holds a comma
        "c,https://img.test/3.png,memo.wav,,7.00\n"
    )
    monkeypatch.chdir(tmp_path / "receipts")  # relative paths: from the file's folder
    ds = load_dataset(data, media={"photo": "image", "memo": "audio"})
    first, second, third = (r.fields for r in ds)
    assert isinstance(first["photo"], pk.ImagePart)
    assert first["photo"].path == tmp_path / "receipts" / "1.png"
    assert first["photo"].read() == PNG and second["photo"].read() == PNG + b"\x01"
    assert third["photo"].url == "https://img.test/3.png"
    assert isinstance(first["memo"], pk.AudioPart) and first["memo"].read() == WAV
    assert first["note"] == "receipts/1.png"  # not named in media=: text as before
    assert Dataset.load(data)[0].fields["photo"] == "receipts/1.png"  # nor without media=

    def reply(request: Request) -> str:
        assert request.messages is not None
        image = request.messages[-1].content[1]
        return {PNG: "12.50", PNG + b"\x01": "3.20"}.get(image.read(), "7.00")

    prompt = pk.Prompt(instruction="Read the total.", template="Total of {{ photo }}?")
    local = Dataset(ds.records[:2])  # the URL is never fetched: only the local images here
    report = evaluate({"v": prompt}, local, pk.LLM(pk.FakeBackend(reply)), progress=False)
    assert report.results[0].accuracy == 1.0


@pytest.mark.parametrize(
    ("csv", "media", "match"),
    [
        ("photo,expected\n,x\n", {"photo": "image"}, r"line 2.*field 'photo'.*empty cell"),
        ("photo,expected\nnope.png,x\n", {"photo": "video"}, r"one of \['audio', 'file'"),
        ("photo,expected\na.png,x\n", {"expected": "image"}, "expected answer"),
        ("photo,expected\na.png,x\n", {"pic": "image"}, r"\['pic'\] that the header row"),
        ("photo,expected\nnope.png,x\n", {"photo": "image"}, None),  # read when sent
    ],
)
def test_csv_media_column_errors(
    tmp_path: Path, csv: str, media: dict[str, str], match: str | None
) -> None:
    from promptkit.evaluation import Dataset

    data = tmp_path / "d.csv"
    data.write_text(csv)
    if match is None:
        part = Dataset.load(data, media=media)[0].fields["photo"]
        with pytest.raises(pk.MediaError, match=r"nope\.png.*d\.csv"):
            part.read()
        return
    with pytest.raises(pk.DatasetError, match=match):
        Dataset.load(data, media=media)


def test_media_columns_in_rows_and_jsonl(tmp_path: Path) -> None:
    from promptkit.evaluation import Dataset

    (tmp_path / "a.png").write_bytes(PNG)
    rows = Dataset.from_rows([{"photo": str(tmp_path / "a.png"), "expected": "x"}],
                             media={"photo": "image"})
    assert rows[0].fields["photo"].read() == PNG
    data = tmp_path / "d.jsonl"
    data.write_text('{"photo": "a.png", "expected": "x"}\n'
                    '{"photo": {"type": "image", "path": "a.png"}, "expected": "y"}\n')
    ds = Dataset.load(data, media={"photo": "image"})
    assert [r.fields["photo"].read() for r in ds] == [PNG, PNG]
    with pytest.raises(pk.DatasetError, match="type int"):
        Dataset.from_rows([{"photo": 3, "expected": "x"}], media={"photo": "image"})
    # objects that are not parts of the kind named, and media= not a mapping
    for cell in ({"path": "a.png"}, {}, [], [1], {"type": "audio", "path": "a.wav"},
                 pk.Audio(WAV)):
        with pytest.raises(pk.DatasetError, match="field 'photo': expected an image"):
            Dataset.from_rows([{"photo": cell, "expected": "x"}], media={"photo": "image"})
    with pytest.raises(pk.DatasetError, match="mapping of column to kind"):
        Dataset.from_rows([{"photo": "a.png", "expected": "x"}], media=["photo"])  # type: ignore[arg-type]
    listed = Dataset.from_rows(
        [{"photo": [{"type": "image", "path": str(tmp_path / "a.png")}], "expected": "x"}],
        media={"photo": "image"},
    )
    assert [p.read() for p in listed[0].fields["photo"]] == [PNG]


def test_media_key_in_evaluation_and_optimisation_configs(tmp_path: Path) -> None:
    from promptkit.evaluation._config import load_config as load_eval
    from promptkit.optimization._config import load_config as load_opt

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "1.png").write_bytes(PNG)
    (tmp_path / "data" / "d.csv").write_text("photo,expected\n1.png,12.50\n")
    common = 'dataset = "data/d.csv"\nmedia = { photo = "image" }\n'
    ev = tmp_path / "eval.toml"
    ev.write_text(common + '[variants.v]\ntechnique = "ZeroShot"\ninstruction = "Read."\n'
                  'template = "{{ photo }}"\n')
    photo = load_eval(ev).scored[0].fields["photo"]
    assert isinstance(photo, pk.ImagePart) and photo.read() == PNG
    opt = tmp_path / "opt.toml"
    opt.write_text(common + 'prompt = { technique = "ZeroShot", instruction = "Read.", '
                   'template = "{{ photo }}" }\n')
    assert load_opt(opt).dataset[0].fields["photo"].read() == PNG
    ev.write_text('dataset = "data/d.csv"\nmedia = { photo = 3 }\n[variants.v]\n'
                  'technique = "ZeroShot"\ninstruction = "Read."\n')
    with pytest.raises(pk.ConfigurationError, match=r"media\.photo"):
        load_eval(ev)
