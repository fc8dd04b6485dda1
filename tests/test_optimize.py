"""pk.optimize on the fake backend: it must find planted improvements (examples, an
instruction, chain-of-thought demonstrations), refuse planted noise, never score its own
examples, stop within budget, resume after a kill, and run from a CLI config."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import promptkit as pk
from promptkit import LLM, FakeBackend, Request
from promptkit._cli import main
from promptkit.optimization import holm, mcnemar_exact, paired_bootstrap, paired_test


def last_user(req: Request) -> str:
    return str(list(req.messages or [])[-1].content)


def system_of(req: Request) -> str:
    first = next(iter(req.messages or []))
    return str(first.content) if first.role == "system" else ""


def code_rows(n: int = 40) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "input": f"code {i}", "expected": f"C-{i}"} for i in range(n)]


def shown_inputs(req: Request) -> list[str]:
    """The user turns of the examples in a request (every user message but the last)."""
    msgs = list(req.messages or [])
    return [str(m.content) for m in msgs[:-1] if m.role == "user"]


# --------------------------------------------------------------------------- statistics


def test_mcnemar_exact_values() -> None:
    # 5 wins, 0 losses: P(X >= 5 | Bin(5, 1/2)) = 1/32
    assert mcnemar_exact([1] * 5 + [0], [0] * 6).p_value == pytest.approx(1 / 32)
    # ties carry no information; 3 wins 1 loss: P(X >= 3 | Bin(4, 1/2)) = 5/16
    t = mcnemar_exact([1, 1, 1, 0, 1, 0], [0, 0, 0, 1, 1, 0])
    assert (t.wins, t.losses, t.p_value) == (3, 1, 5 / 16)
    assert mcnemar_exact([1, 0], [1, 0]).p_value == 1.0
    # one-sided: a worse candidate is never "significant"
    assert mcnemar_exact([0] * 8, [1] * 8).p_value == 1.0
    with pytest.raises(ValueError, match="same items"):
        mcnemar_exact([1], [1, 0])


def test_holm_and_paired_bootstrap() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    better = paired_bootstrap([0.9] * 20, [0.1] * 20, seed=1)
    assert better.method == "paired-bootstrap" and better.p_value < 0.01
    noise = paired_bootstrap([0.5, 0.6, 0.4, 0.5], [0.5, 0.4, 0.6, 0.5], seed=1)
    assert noise.p_value > 0.3
    assert paired_test([1, 0], [0, 0]).method == "mcnemar-exact"
    assert paired_test([0.5, 0], [0, 0]).method == "paired-bootstrap"


# --------------------------------------------------------------------------- planted gains


def test_finds_planted_examples_and_never_scores_its_own_examples(tmp_path: Path) -> None:
    def reply(req: Request) -> str:  # right only with examples of the "C-" format
        code = last_user(req).split()[-1]
        return f"C-{code}" if len(list(req.messages or [])) > 2 else code

    fake = FakeBackend(reply)
    start = pk.ZeroShot(instruction="Give the code.")
    report = pk.optimize(start, code_rows(), LLM(fake), verbose=False)
    assert report.improved
    assert report.chosen.prompt.examples and report.chosen.accepted
    assert report.test_start.accuracy == 0.0 and report.test_chosen is not None
    assert report.test_chosen.accuracy == 1.0
    assert report.chosen.prompt.instruction == "Give the code."  # composed, not replaced
    assert "examples: 0 -> 4" in report.diff()
    # no request ever showed, as an example, the item it was asking about
    for req in fake.requests:
        assert last_user(req) not in shown_inputs(req)
    # the held-out items were never used as examples
    test_ids = {it.id for it in report.test_start.items}
    example_inputs = {ex.input for ex in report.prompt.examples}
    assert not example_inputs & {f"code {i[1:]}" for i in test_ids}
    # the saved prompt is a plain prompt file that loads back as the chosen prompt
    path = report.save_prompt(tmp_path / "best.yaml")
    loaded = pk.load_prompt(path)
    assert loaded.model_dump() == report.prompt.model_dump()
    assert loaded.render(input="code 99") == report.prompt.render(input="code 99")


def test_finds_planted_instruction_from_a_proposer_model() -> None:
    def reply(req: Request) -> str:
        word = last_user(req).split()[-1]
        return word.upper() if "CAPITAL LETTERS" in system_of(req) else f"the word is {word}"

    proposer = FakeBackend(
        ["1. Repeat the word.\n2. Write the word in CAPITAL LETTERS.\n- Say the word twice."]
    )
    rows = [{"id": str(i), "input": f"say w{i}x", "expected": f"W{i}X"} for i in range(40)]
    report = pk.optimize(
        pk.ZeroShot(instruction="Repeat it."), rows, LLM(FakeBackend(reply)),
        proposer=LLM(proposer), techniques=[], verbose=False,
    )  # fmt: skip
    assert len(proposer.requests) == 1
    assert "Current instruction:\nRepeat it." in last_user(proposer.requests[0])
    assert report.prompt.instruction == "Write the word in CAPITAL LETTERS."
    assert [c.stage for c in report.candidates] == ["start"] + ["instruction"] * 3
    assert report.test_chosen is not None and report.test_chosen.accuracy == 1.0
    assert "+ Write the word in CAPITAL LETTERS." in report.diff()


def test_bootstraps_chain_of_thought_demonstrations_with_the_models_rationale() -> None:
    def reply(req: Request) -> str:
        n = int(last_user(req).split("\n")[0].split()[-1])
        messages = list(req.messages or [])
        shown_reasoning = any(
            m.role == "assistant" and "The answer is" in str(m.content) for m in messages
        )
        if "step by step" in last_user(req):
            right = shown_reasoning or n % 3 == 0  # alone, right on a third of the items
            return f"I double {n} carefully. The answer is {2 * n if right else n}."
        return str(n)  # without reasoning: always wrong

    rows = [{"id": str(i), "input": f"double {i}", "expected": str(2 * i)} for i in range(1, 49)]
    report = pk.optimize(
        pk.ZeroShot(instruction="Double the number."), rows, LLM(FakeBackend(reply)),
        extract=pk.extract.number(), verbose=False,
    )  # fmt: skip
    assert report.improved
    chosen = report.prompt
    assert chosen.reasoning and chosen.examples
    assert all(ex.rationale and ex.rationale.startswith("I double") for ex in chosen.examples)
    assert report.test_chosen is not None and report.test_chosen.accuracy == 1.0
    assert "chain of thought" in report.chosen.technique


def test_removing_examples_is_a_candidate_and_the_saved_file_names_the_technique(
    tmp_path: Path,
) -> None:
    def reply(req: Request) -> str:  # the examples mislead this model
        code = last_user(req).split()[-1]
        return "C-999" if len(list(req.messages or [])) > 2 else f"C-{code}"

    start = pk.FewShot(
        instruction="Give the code.", examples=[pk.Example(input="code 999", output="C-999")]
    )
    report = pk.optimize(
        start, code_rows(), LLM(FakeBackend(reply)), techniques=["zero_shot"], verbose=False
    )
    assert report.improved and report.prompt.examples == []
    assert type(report.prompt) is pk.ZeroShot and report.prompt.instruction == "Give the code."
    assert "technique: few-shot (1) -> zero-shot" in report.diff()
    saved = report.save_prompt(tmp_path / "best.json")
    assert json.loads(saved.read_text()) == {
        "technique": "ZeroShot",
        "instruction": "Give the code.",
    }


def test_a_retrieval_selector_is_a_candidate() -> None:
    cats = ["fruit", "tool", "bird", "car"]
    rows = [
        {"id": str(i), "input": f"{cats[i % 4]} item {i}", "expected": f"{cats[i % 4]}-{i}"}
        for i in range(48)
    ]

    def reply(req: Request) -> str:  # right only when every example shown is of its kind
        msgs = list(req.messages or [])
        kind, n = last_user(req).split()[0], last_user(req).split()[-1]
        shown = [str(m.content).split()[0] for m in msgs[1:-1] if m.role == "user"]
        return f"{kind}-{n}" if shown and set(shown) == {kind} else f"x-{n}"

    llm = LLM(FakeBackend(reply))
    report = pk.optimize(
        pk.ZeroShot(instruction="Label it."), rows, llm, techniques=["few_shot"],
        selector=pk.SimilarExamples(k=1, embedder=llm), verbose=False,
    )  # fmt: skip
    names = [c.name.split(" #")[0] for c in report.candidates]
    assert names == ["start", "few-shot labelled", "few-shot subset 1", "few-shot selector"]
    assert report.chosen.name.startswith("few-shot selector")
    assert report.prompt.example_selector is not None
    assert report.test_chosen is not None and report.test_chosen.accuracy == 1.0
    assert "example selector: None -> SimilarExamples(k=1)" in report.diff()


def test_partial_credit_scores_use_the_paired_bootstrap() -> None:
    def credit(prediction: Any, expected: Any) -> float:
        if prediction == expected:
            return 1.0
        return 0.5 if str(prediction).endswith(str(expected)[2:]) else 0.0

    report = pk.optimize(
        pk.ZeroShot(instruction="Give the code."), code_rows(), LLM(FakeBackend(_examples_reply)),
        metric=credit, verbose=False,
    )  # fmt: skip
    assert report.start.validation is not None and report.start.validation.accuracy == 0.5
    assert report.improved and report.chosen.paired is not None
    assert report.chosen.paired.method == "paired-bootstrap"
    assert report.chosen.adjusted_p is not None and report.chosen.adjusted_p < 0.01


def test_self_consistency_is_a_candidate_and_best_runs_it() -> None:
    def reply(req: Request) -> str | list[str]:
        n = int(last_user(req).split("\n")[0].split()[-1])
        wrong, right = f"Hm. The answer is {n}.", f"Hm. The answer is {2 * n}."
        samples = int(req.params.get("n") or 1)
        if samples == 3:  # one sample errs, the majority is right
            return [wrong, right, right]
        return wrong

    rows = [{"id": str(i), "input": f"double {i}", "expected": str(2 * i)} for i in range(1, 41)]
    report = pk.optimize(
        pk.ChainOfThought(instruction="Double the number."), rows, LLM(FakeBackend(reply)),
        techniques=["chain_of_thought"], self_consistency=3, verbose=False,
    )  # fmt: skip
    assert report.chosen.k == 3 and "self-consistency k=3" in report.chosen.technique
    assert isinstance(report.best, pk.SelfConsistency) and report.best.k == 3
    assert report.test_chosen is not None and report.test_chosen.accuracy == 1.0
    assert "technique: chain of thought -> chain of thought + self-consistency k=3" in (
        report.diff().replace("zero-shot + ", "")
    )


# --------------------------------------------------------------------------- guardrails


def _coin(*parts: str) -> bool:
    return hashlib.sha256("|".join(parts).encode()).digest()[0] % 2 == 0


def test_planted_noise_is_refused_and_the_start_stands() -> None:
    """Every prompt is right on a pseudo-random half of the items: some candidates look
    better on the train items by chance, and the paired test must refuse them all."""

    def reply(req: Request) -> str:
        code = last_user(req).split("\n")[0].split()[-1]
        right = _coin(system_of(req), str(len(list(req.messages or []))), last_user(req))
        answer = f"C-{code}" if right else "no idea"
        return f"Hmm. The answer is {answer}." if "step by step" in last_user(req) else answer

    report = pk.optimize(
        pk.ZeroShot(instruction="Give the code."), code_rows(80), LLM(FakeBackend(reply)),
        instructions=["Reply with the code.", "Answer with the code only.", "Code please."],
        roles=["a clerk"], verbose=False, seed=2,
    )  # fmt: skip
    start_train, start_val = report.start.train, report.start.validation
    assert start_train is not None and start_val is not None
    lucky = [c for c in report.candidates if c.train and c.train.accuracy > start_train.accuracy]
    assert lucky, "the noise should make some candidate look better on train"
    finalists = [c for c in report.candidates if c.paired is not None]
    assert len(finalists) == 3
    # picking the best validation score would have taken a candidate 20 points "better"...
    best_val = max(c.validation.accuracy for c in finalists if c.validation)
    assert best_val - start_val.accuracy > 0.2
    # ...which the paired test (Holm-corrected) refuses
    assert all(c.adjusted_p is not None and c.adjusted_p > 0.05 for c in finalists)
    assert not report.improved and report.chosen is report.start
    assert "the starting prompt stands" in report.decision
    assert report.prompt == report.start.prompt
    assert report.test_chosen is None and report.diff().startswith("(no change")


def test_overlap_between_the_start_examples_and_the_data_is_refused() -> None:
    rows = code_rows()
    start = pk.FewShot(
        instruction="Give the code.", examples=[pk.Example(input="code 3", output="C-3")]
    )
    fake = FakeBackend(lambda r: "x")
    with pytest.raises(pk.OverlapError, match="example 1 is item 'r3'"):
        pk.optimize(start, rows, LLM(fake), verbose=False)
    assert fake.requests == []


def test_bad_options_are_typed_errors() -> None:
    llm = LLM(FakeBackend(lambda r: "x"))
    with pytest.raises(pk.OptimizeError, match="techniques: unknown"):
        pk.optimize(pk.ZeroShot(instruction="x"), code_rows(), llm, techniques=["magic"])
    with pytest.raises(pk.OptimizeError, match="at least 8"):
        pk.optimize(pk.ZeroShot(instruction="x"), code_rows(5), llm)
    with pytest.raises(pk.OptimizeError, match="Budget calls"):
        pk.Budget(calls=-1)


# --------------------------------------------------------------------------- budget, cache


def _examples_reply(req: Request) -> str:
    code = last_user(req).split()[-1]
    return f"C-{code}" if len(list(req.messages or [])) > 2 else code


def test_budget_stops_the_search_and_is_never_exceeded(capsys: pytest.CaptureFixture[str]) -> None:
    full = FakeBackend(_examples_reply)
    unlimited = pk.optimize(pk.ZeroShot(instruction="Give the code."), code_rows(), LLM(full))
    err = capsys.readouterr().err
    assert "estimate before the run" in err
    assert unlimited.spent.calls == len(full.requests) and unlimited.stopped is None

    limit = 40  # the start on validation and test (24 items) plus a little: no search
    fake = FakeBackend(_examples_reply)
    report = pk.optimize(
        pk.ZeroShot(instruction="Give the code."), code_rows(), LLM(fake),
        budget=pk.Budget(calls=limit), verbose=False,
    )  # fmt: skip
    assert len(fake.requests) <= limit < len(full.requests)
    assert report.spent.calls == len(fake.requests)
    assert report.stopped is not None and "calls:" in report.stopped
    assert not report.improved  # nothing could be searched within the budget

    with pytest.raises(pk.BudgetError, match="cannot pay for measuring the starting prompt"):
        pk.optimize(
            pk.ZeroShot(instruction="Give the code."), code_rows(), LLM(FakeBackend([])),
            budget=pk.Budget(calls=10), verbose=False,
        )  # fmt: skip


def test_budget_in_dollars_and_tokens() -> None:
    prices = {"fake": (100_000.0, 100_000.0)}  # $0.1 per 1,000 tokens, to make it count
    options: dict[str, Any] = {"prices": prices, "params": pk.SamplingParams(max_tokens=2)}
    free = pk.optimize(
        pk.ZeroShot(instruction="Give the code."), code_rows(), LLM(FakeBackend(_examples_reply)),
        verbose=False, **options,
    )  # fmt: skip
    assert free.spent.usd is not None and free.spent.usd > 0 and free.stopped is None
    assert free.estimate.usd is not None  # estimates are upper bounds: no cache, max_tokens
    assert free.spent.tokens <= free.estimate.tokens and free.spent.usd <= free.estimate.usd
    half = pk.Budget(usd=free.estimate.usd / 2), pk.Budget(tokens=free.estimate.tokens // 2)
    for budget in half:
        fake = FakeBackend(_examples_reply)
        report = pk.optimize(
            pk.ZeroShot(instruction="Give the code."), code_rows(), LLM(fake),
            budget=budget, verbose=False, **options,
        )  # fmt: skip
        assert report.stopped is not None and report.spent.calls == len(fake.requests)
        assert report.spent.usd is not None and report.spent.usd <= free.estimate.usd / 2
        assert report.spent.tokens <= free.estimate.tokens // 2
        assert report.spent.calls < free.spent.calls


def test_response_cache_makes_a_rerun_free_and_identical(tmp_path: Path) -> None:
    cache = pk.Cache(tmp_path / "cache.sqlite")
    runs = []
    for _ in range(2):
        fake = FakeBackend(_examples_reply)
        report = pk.optimize(
            pk.ZeroShot(instruction="Give the code."), code_rows(), LLM(fake, cache=cache),
            verbose=False, seed=3,
        )  # fmt: skip
        runs.append((report, len(fake.requests)))
    (first, sent1), (second, sent2) = runs
    assert sent1 > 0 and sent2 == 0 and second.spent.calls == 0

    def decided(report: pk.OptimizeReport) -> list[Any]:
        out = []
        for c in report.to_dict()["candidates"]:
            for part in ("train", "validation"):
                if c[part]:
                    c[part] = {k: v for k, v in c[part].items() if k not in ("calls",)}
            out.append(c)
        return out

    assert decided(first) == decided(second)
    assert first.prompt == second.prompt
    cache.close()


# --------------------------------------------------------------------------- reports


def test_report_as_table_json_and_html(tmp_path: Path) -> None:
    report = pk.optimize(
        pk.ZeroShot(instruction="Give the <code>."), code_rows(), LLM(FakeBackend(_examples_reply)),
        verbose=False,
    )  # fmt: skip
    table = report.table()
    assert table.splitlines()[0].split()[:4] == ["candidate", "technique", "train", "95%"]
    assert "chosen" in table and "held-out test (12 items)" in table
    data = json.loads(report.to_json())
    assert data["format"] == "promptkit-optimize" and data["improved"] is True
    assert data["test"]["chosen"]["accuracy"] == 1.0
    chosen = next(c for c in data["candidates"] if c["name"] == data["chosen"])
    assert chosen["paired_test"]["method"] == "mcnemar-exact" and chosen["accepted"]
    assert chosen["validation"]["ci_low"] < chosen["validation"]["accuracy"] <= 1.0
    page = report.save_html(tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<table" in page and "Give the &lt;code&gt;." in page and "<code>" not in page


# --------------------------------------------------------------------------- resume after kill

SCRIPT = r"""
import json, sys
import promptkit as pk

out = sys.argv[1]

def reply(request):
    code = request.messages[-1].content.split()[-1]
    return f"C-{code}" if len(request.messages) > 2 else code

fake = pk.FakeBackend(reply, latency=0.01)
rows = [{"id": f"r{i}", "input": f"code {i}", "expected": f"C-{i}"} for i in range(40)]
report = pk.optimize(pk.ZeroShot(instruction="Give the code."), rows, pk.LLM(fake),
                     out=out, concurrency=1, verbose=False)
print(json.dumps({"sent": len(fake.requests), "chosen": report.chosen.name,
                  "candidates": report.to_dict()["candidates"],
                  "test": report.test_chosen.accuracy}))
"""


def _lines(folder: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in folder.rglob("*.jsonl"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals (SIGKILL)")
def test_a_killed_run_resumes_from_its_journal(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def start(out: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(out)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    clean = start(tmp_path / "clean")
    out, err = clean.communicate(timeout=120)
    assert clean.returncode == 0, err
    reference = json.loads(out)

    journal = tmp_path / "journal"
    kills = 0
    for target in (10, 45, 80):  # killed in the bootstrap, the screening and later
        proc = start(journal)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if journal.exists() and _lines(journal) >= target:
                break
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
    assert kills >= 2
    before = _lines(journal)
    proc = start(journal)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    resumed = json.loads(out)
    # the resumed run sent only what the journal did not hold, and decided the same
    assert resumed["sent"] <= reference["sent"] - before + 1
    assert resumed["chosen"] == reference["chosen"] and resumed["test"] == 1.0
    strip = [{k: v for k, v in c.items() if k != "train" and k != "validation"}
             for c in reference["candidates"]]  # fmt: skip
    assert [{k: v for k, v in c.items() if k not in ("train", "validation")}
            for c in resumed["candidates"]] == strip  # fmt: skip
    accuracies = [(c["train"], c["validation"]) for c in resumed["candidates"]]
    assert [(t and t["accuracy"], v and v["accuracy"]) for t, v in accuracies] == [
        (c["train"] and c["train"]["accuracy"], c["validation"] and c["validation"]["accuracy"])
        for c in reference["candidates"]
    ]


# --------------------------------------------------------------------------- CLI

CONFIG = """
dataset = "data.jsonl"
expected = "answer"
inputs = { input = "question" }
prompt = { technique = "ZeroShot", instruction = "Give the code." }
backend = { backend = "fake", model = "fake-model" }
techniques = ["few_shot"]
budget = { calls = 400 }
seed = 1
out = "journal"

[outputs]
prompt = "best.yaml"
json = "report.json"
html = "report.html"
"""


def test_cli_config_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("PROMPTKIT_", "OPENAI_")):
            monkeypatch.delenv(name)
    rows = [{"id": f"q{i}", "question": f"code {i}", "answer": f"C-{i}"} for i in range(40)]
    Path("data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    Path("opt.toml").write_text(CONFIG, encoding="utf-8")
    import promptkit._config as config

    real = config.connect

    def scripted(*args: Any, **kwargs: Any) -> LLM:
        assert kwargs == {"backend": "fake", "model": "fake-model"}
        return LLM(FakeBackend(_examples_reply))

    monkeypatch.setattr(config, "connect", scripted)
    assert main(["optimize", "opt.toml", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split()[:2] == ["candidate", "technique"]
    assert "estimate before the run" in captured.err and "wrote" in captured.err
    best = pk.load_prompt("best.yaml")
    assert isinstance(best, pk.Prompt) and len(best.examples) == 4
    data = json.loads(Path("report.json").read_text(encoding="utf-8"))
    assert data["improved"] and data["budget"]["calls"] == 400 and data["spent"]["calls"] <= 400
    assert "<table" in Path("report.html").read_text(encoding="utf-8")
    assert list(Path("journal").rglob("*.jsonl"))

    monkeypatch.setattr(config, "connect", real)
    Path("bad.toml").write_text('techinques = ["x"]\n' + CONFIG, encoding="utf-8")
    assert main(["optimize", "bad.toml"]) == 1
    assert "did you mean 'techniques'" in capsys.readouterr().err
