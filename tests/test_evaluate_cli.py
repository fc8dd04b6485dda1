"""`promptkit eval CONFIG`: TOML and YAML configs on the fake backend, the outputs, and errors
that are one line with exit code 1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from promptkit._cli import main
from promptkit.evaluation._config import load_config

COOKBOOK_DATA = Path(__file__).resolve().parent.parent / "cookbook" / "data" / "arithmetic.jsonl"
ROWS = [
    {"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": 2 * i, "why": f"{i}+{i}"}
    for i in range(1, 11)
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("PROMPTKIT_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8"
    )


TOML = """
dataset = "data.jsonl"
expected = "answer"
inputs = { input = "question" }
metric = { type = "numeric", tolerance = 0.5 }
split = { holdout = 0.4, seed = 3 }
concurrency = 1
params = { preset = "precise", max_tokens = 16 }

[backends.scripted]
backend = "fake"
model = "fake-model"
replies = [REPLIES]

[prices]
fake-model = { input = 1.0, output = 2.0 }

[variants.zero-shot]
technique = "ZeroShot"
instruction = "Reply with the number."

[variants.few-shot]
file = "prompts/few.yaml"
examples_from_train = 2

[outputs]
json = "out/report.json"
html = "out/report.html"
"""


def write_toml(tmp_path: Path, replies: list[str], text: str = TOML) -> Path:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "few.yaml").write_text(
        "technique: FewShot\ninstruction: Reply with the number.\n"
        "examples:\n  - {input: placeholder, output: '0'}\n",
        encoding="utf-8",
    )
    (tmp_path / "out").mkdir(exist_ok=True)
    path = tmp_path / "eval.toml"
    path.write_text(text.replace("REPLIES", ", ".join(json.dumps(r) for r in replies)), "utf-8")
    return path


def test_eval_toml_prints_the_table_and_writes_the_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_toml(tmp_path, ["2"] * 4 + ["8"] * 4)
    assert main(["eval", str(path), "--no-progress", "--png", "chart.png"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split()[:2] == ["variant", "accuracy"]
    assert lines[2].startswith("zero-shot") and lines[3].startswith("few-shot")
    assert "4 items of data.jsonl, metric numeric(±0.5)" in lines[-1]
    assert "promptkit: wrote" in captured.err
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert [r["variant"] for r in report["results"]] == ["zero-shot", "few-shot"]
    assert all(r["backend"] == "scripted" and r["n"] == 4 for r in report["results"])
    assert report["results"][0]["cost_usd"] > 0  # priced by the model name
    assert "few-shot" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    png = tmp_path / "chart.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not png.exists()
    else:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_examples_come_from_the_train_part(tmp_path: Path) -> None:
    cfg = load_config(write_toml(tmp_path, ["1"] * 8))
    assert cfg.split is not None
    few = cfg.variants["few-shot"].prompt
    train_questions = [r.fields["question"] for r in cfg.split.train]
    assert [ex.input for ex in few.examples] == train_questions[:2]
    assert not set(train_questions) & {r.fields["question"] for r in cfg.scored}
    assert cfg.params is not None and cfg.params.max_tokens == 16
    assert cfg.params.temperature == 0.0


def test_eval_json_limit_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_toml(tmp_path, ["2"] * 4)
    args = ["eval", str(path), "--json", "--no-progress", "--limit", "2", "--out", "results"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert [r["n"] for r in first["results"]] == [2, 2]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "few-shot@scripted.jsonl",
        "zero-shot@scripted.jsonl",
    ]
    assert main(args) == 0  # a fresh fake backend with the same replies: all resumed
    again = json.loads(capsys.readouterr().out)
    assert [r["resumed"] for r in again["results"]] == [2, 2]
    assert [r["calls"] for r in again["results"]] == [0, 0]


def test_eval_yaml_with_a_strategy_a_custom_metric_and_a_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "my_metrics.py").write_text(
        "def even(prediction, expected, record):\n"
        "    return int(prediction) % 2 == 0 and record.id.startswith('q')\n",
        encoding="utf-8",
    )
    (tmp_path / "eval.yaml").write_text(
        """
dataset: data.jsonl
expected: answer
limit: 3
inputs: {input: question}
metric: {type: custom, function: "my_metrics:even"}
backends:
  model: {backend: fake, replies: ["The answer is 4.", "It is 7. The answer is 7."]}
variants:
  vote:
    technique: ChainOfThought
    self_consistency: {k: 2, seed: 1}
    extract: "number"
""",
        encoding="utf-8",
    )
    # the two replies alternate: each vote is a tie between 4 and 7, and the first wins
    yaml_cfg = tmp_path / "eval.yaml"
    text = yaml_cfg.read_text(encoding="utf-8").replace(
        '["The answer is 4.", "It is 7. The answer is 7."]',
        json.dumps(["The answer is 4.", "It is 7. The answer is 7."] * 3),
    )
    yaml_cfg.write_text(text, encoding="utf-8")
    assert main(["eval", str(yaml_cfg), "--no-progress", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["accuracy"] == 1.0 and result["calls"] == 3  # one request with n=2 each
    assert [i["prediction"] for i in result["items"]] == ["4", "4", "4"]
    assert json.loads(json.dumps(result))["items"][0]["text"].count("---") == 1

    judged = text.replace(
        'metric: {type: custom, function: "my_metrics:even"}',
        'metric: {type: judge, backend: {backend: fake, replies: ["yes", "no", "yes"]}}',
    )
    yaml_cfg.write_text(judged, encoding="utf-8")
    assert main(["eval", str(yaml_cfg), "--no-progress", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["backend"] for r in results] == ["model"]  # the judge is not a contender
    assert results[0]["judge"]["calls"] == 3 and results[0]["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (("[variants.zero-shot]", "[variant.zero-shot]"), "unknown key(s) 'variant' (did you mean"),
        (('dataset = "data.jsonl"', 'dataset = "nope.jsonl"'), "nope.jsonl: cannot read"),
        (('technique = "ZeroShot"', 'technique = "ZeroShoot"'), "Did you mean 'ZeroShot'?"),
        (("split = { holdout = 0.4, seed = 3 }", ""), "examples_from_train needs a split"),
        (('type = "numeric"', 'type = "numerc"'), "metric.type: 'numerc' is not one of"),
        (("max_tokens = 16", "max_tokens = -1"), "params:"),
        (("examples_from_train = 2", "examples_from_train = 2\nextract = 'magic'"), "extract"),
        (('html = "out/report.html"', 'svg = "x.svg"'), "outputs: unknown key(s) ['svg']"),
        (
            ("examples_from_train = 2", "examples_from_train = 2\nexamples_rationale = 'how'"),
            "variants.few-shot.examples_from_train: record 'q",
        ),
    ],
)
def test_config_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], words: str
) -> None:
    text = TOML.replace(*edit)
    path = write_toml(tmp_path, ["2"] * 8, text)
    assert main(["eval", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("promptkit: error: ") and err.count("\n") == 1, err
    assert words in err, err
    assert "Traceback" not in err


def test_overlap_and_bad_rows_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaky = TOML.replace(
        'file = "prompts/few.yaml"\nexamples_from_train = 2',
        'technique = "FewShot"\ninstruction = "x"\n'
        'examples = [{ input = "What is 1 plus 1?", output = "2" }]',
    ).replace("split = { holdout = 0.4, seed = 3 }", "")
    path = write_toml(tmp_path, ["2"] * 20, leaky)
    assert main(["eval", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "variant 'few-shot': example 1 is item 'q1'" in err and err.count("\n") == 1
    with (tmp_path / "data.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"question": "no answer"}\n')
    assert main(["eval", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "data.jsonl line 11: field 'answer' (the expected answer) is missing" in err


def test_config_file_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "missing.toml")]) == 1
    assert "no such evaluation config file" in capsys.readouterr().err
    (tmp_path / "eval.ini").write_text("x", encoding="utf-8")
    assert main(["eval", str(tmp_path / "eval.ini")]) == 1
    assert "a .toml or .yaml file" in capsys.readouterr().err
    (tmp_path / "e.toml").write_text('dataset = "data.jsonl"\nexpected = "answer"\n', "utf-8")
    assert main(["eval", str(tmp_path / "e.toml")]) == 1
    assert "no [variants.NAME] tables" in capsys.readouterr().err


def test_default_backend_is_connect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTKIT_BACKEND", "fake")
    (tmp_path / "e.toml").write_text(
        'dataset = "data.jsonl"\nexpected = "answer"\nlimit = 2\ninputs = { input = "question" }\n'
        '[variants.v]\ntechnique = "ZeroShot"\ninstruction = "x"\n',
        encoding="utf-8",
    )
    assert main(["eval", str(tmp_path / "e.toml"), "--no-progress", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    # the fake backend has no scripted replies: each item fails, is recorded, and scores 0
    assert result["backend"] == "fake-model" and result["errors"] == 2
    assert result["items"][0]["error"].startswith("ConfigurationError: FakeBackend ran out")


def test_the_documented_config_loads(tmp_path: Path) -> None:
    import promptkit.evaluation._config as config_module

    doc = config_module.__doc__ or ""
    example = doc.split("::\n\n", 1)[1]
    toml = "\n".join(line[4:] for line in example.splitlines() if line.startswith("    "))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "arithmetic.jsonl").write_bytes(COOKBOOK_DATA.read_bytes())
    path = write_toml(tmp_path, [], toml.replace("prompts/few_shot.yaml", "prompts/few.yaml"))
    cfg = load_config(path)
    assert list(cfg.variants) == ["zero-shot", "few-shot", "cot", "vote"]
    assert cfg.backends == {"local": {"backend": "llamacpp"}, "gpt": "openai"}
    assert len(cfg.scored) == 20 and cfg.metric.name == "numeric"
    assert sorted(cfg.outputs) == ["html", "json", "png"] and cfg.out == tmp_path / "results"
    assert cfg.prices["gpt-4o-mini"].output == 0.60
    vote = cfg.variants["vote"].prompt
    assert type(vote).__name__ == "SelfConsistency" and vote.k == 5
