"""Every cookbook recipe, run against the fake backend with asserted outputs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from promptkit import LLM, FakeBackend, Request, neutralise

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"cookbook_{name}", COOKBOOK / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so pydantic models in a recipe resolve their types
    spec.loader.exec_module(module)
    return module


def system_of(req: Request) -> str:
    return list(req.messages or [])[0].content  # noqa: RUF015 - the first is the system one


def last_user(req: Request) -> str:
    return list(req.messages or [])[-1].content


def test_every_recipe_has_a_test() -> None:
    tested = {
        name.removeprefix("test_")
        for name in globals()
        if name.startswith("test_") and name != "test_every_recipe_has_a_test"
    }
    recipes = {p.stem for p in COOKBOOK.glob("*.py")}
    assert recipes <= tested, f"recipes without a test: {sorted(recipes - tested)}"


def test_few_shot() -> None:
    mod = load("few_shot")
    fake = FakeBackend(
        lambda r: "Negative." if "died" in last_user(r) or "useless" in last_user(r) else "positive"
    )
    results = mod.main(LLM(fake))
    assert [label for _, label in results] == ["negative", "positive", "negative"]
    first = list(fake.requests[0].messages or [])
    assert len(first) == 1 + 2 * 4 + 1  # system, 4 examples as turns, the review
    assert fake.requests[0].params == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 4}


def test_zero_shot() -> None:
    mod = load("zero_shot")
    fake = FakeBackend(lambda r: "Rotterdam" if "Rotterdam" in last_user(r) else "Lyon")
    assert mod.main(LLM(fake)) == ["Rotterdam", "Lyon"]
    assert last_user(fake.requests[0]).startswith("Message: My parcel")


def test_instruction() -> None:
    mod = load("instruction")
    fake = FakeBackend(["- Idle pool connections now close after 30 s, fixing an fd leak."])
    assert mod.main(LLM(fake)).startswith("- Idle")
    system = system_of(fake.requests[0])
    assert "Audience: system administrators" in system and "Length: at most 20 words" in system


def test_role() -> None:
    mod = load("role")
    fake = FakeBackend(["Your starter is weak.", "Gluten network and CO2 retention."])
    answers = mod.main(LLM(fake))
    assert answers == {
        "baker": "Your starter is weak.",
        "chemist": "Gluten network and CO2 retention.",
    }
    systems = [system_of(r) for r in fake.requests]
    assert systems[0].startswith("You are an experienced artisan baker")
    assert systems[1].startswith("You are a food chemist")


def test_negative() -> None:
    mod = load("negative")
    fake = FakeBackend(["Version control records every change to files."])
    assert mod.main(LLM(fake)).startswith("Version control")
    system = system_of(fake.requests[0])
    assert "Do not:\n- jargon or acronyms\n- analogies to cars" in system


def test_delimited() -> None:
    mod = load("delimited")
    fake = FakeBackend(["Customer reports a double charge on invoice #4411."])
    assert "double charge" in mod.main(LLM(fake))
    user = last_user(fake.requests[0])
    # the email's fake markers are inert: the real ones are longer
    assert user.startswith("<<<<EMAIL>>>>\n") and user.count("<<<<END EMAIL>>>>") == 1
    # the forged chat-template turn is sent as text: its special tokens are broken
    assert "<|im_start|>" in mod.EMAIL and "<|im_start|>" not in user
    assert neutralise(mod.EMAIL) in user
    assert "<\u200b|im_start|>system" in user


def test_perspectives() -> None:
    mod = load("perspectives")
    reply = "Finance\n...\nEngineering\n...\nCustomers\n...\nSynthesis\nGo."
    fake = FakeBackend([reply])
    assert mod.main(LLM(fake)) == reply
    system = system_of(fake.requests[0])
    assert "- Engineering: effort and risk" in system and '"Synthesis"' in system


def test_conversation() -> None:
    mod = load("conversation")
    fake = FakeBackend(["Hello!", "Clean the rim.", "Yes, with a cloth."])
    assert mod.main(LLM(fake)) == ["Hello!", "Clean the rim.", "Yes, with a cloth."]
    third = [m.content for m in fake.requests[2].messages or []]
    assert third[1:] == [
        "Hi, I bought a city bike last week.",
        "Hello!",
        "The rear brake squeaks when it rains.",
        "Clean the rim.",
        "Can I fix that myself?",
    ]


def test_rag_citations(capsys: pytest.CaptureFixture[str]) -> None:
    mod = load("rag_citations")
    fake = FakeBackend(
        lambda r: (
            "Refunds arrive within 5 business days [returns]."
            if "refund" in last_user(r)
            else "Shipping to Canada costs 15 EUR [international] [warranty]."
        )
    )
    answers = mod.main(LLM(fake))
    assert answers[0].endswith("[returns].")
    # the knowledge base is embedded once, then each question
    assert [len(batch) for batch in fake.embed_requests] == [len(mod.KNOWLEDGE_BASE), 1, 1]
    first = last_user(fake.requests[0])
    assert first.startswith("<<<DOCUMENT returns>>>\nTitle: Returns\n")
    assert first.count("<<<DOCUMENT ") == 2
    assert first.endswith("Question: How long does a refund take?")
    assert last_user(fake.requests[1]).startswith("<<<DOCUMENT international>>>")
    assert "say exactly: I don't know based on our policies." in (system_of(fake.requests[0]))
    out = capsys.readouterr().out
    assert "retrieved: ['returns', " in out
    assert "cites documents it was not given: ['warranty']" in out


def test_sampling_presets() -> None:
    mod = load("sampling_presets")
    fake = FakeBackend(["Light that charges itself.", "Ride the sun.", "Sunlit rides."])
    out = mod.main(LLM(fake))
    assert out == {
        "precise": "Light that charges itself.",
        "creative": "Ride the sun.",
        "no_repetition": "Sunlit rides.",
    }
    assert [r.params.get("temperature") for r in fake.requests] == [0.0, 1.0, 0.7]
    assert fake.requests[2].params["frequency_penalty"] == 0.8


def test_sampling_presets_reports_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    mod = load("sampling_presets")
    fake = FakeBackend(["a", "b", "c"], supports=["temperature", "max_tokens", "seed"])
    mod.main(LLM(fake, on_unsupported="drop"))
    assert "dropped by this backend: ['top_p']" in capsys.readouterr().out


def test_chain_of_thought() -> None:
    mod = load("chain_of_thought")
    fake = FakeBackend(["8 carriages with 40 seats each: 8 * 40 = 320. The answer is 320."])
    assert mod.main(LLM(fake)) == "320"
    msgs = list(fake.requests[0].messages or [])
    assert msgs[2].content.endswith("so 6 * 4 = 24.\nThe answer is 24.")
    assert msgs[-1].content.endswith("Let's think step by step.")


def test_recipes_use_the_public_api_only() -> None:
    for path in COOKBOOK.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "promptkit._" not in text and "from promptkit." not in text, path.name
        assert 'if __name__ == "__main__":' in text, path.name
        assert "pk.connect(" in text, path.name


def test_compare_techniques(capsys: pytest.CaptureFixture[str]) -> None:
    mod = load("compare_techniques")
    answers = {r.fields["question"]: r.expected for r in mod.data}

    def reply(req: Request) -> str:
        messages = list(req.messages or [])
        question, _, trigger = last_user(req).partition("\n\n")
        if trigger == "Let's think step by step.":
            return f"Adding it up. The answer is {answers[question]}."
        if len(messages) > 2:  # few-shot: examples as turns
            return str(answers[question])
        return "I am not sure."  # zero-shot: no number at all

    fake = FakeBackend(reply, native_n=False)  # one request per sample, as llama.cpp does
    report = mod.main(LLM(fake))
    assert [(r.variant, r.n, r.accuracy) for r in report] == [
        ("zero-shot", 4, 0.0),
        ("few-shot", 4, 1.0),
        ("chain-of-thought", 4, 1.0),
        ("self-consistency", 4, 1.0),
    ]
    # self-consistency stops early: the first two of three samples agree
    assert [r.calls for r in report] == [4, 4, 4, 8]
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["variant", "accuracy"]
    assert "Most accurate here: few-shot (100% of 4)." in out  # the cheapest of the ties
    # few items: the script says which intervals overlap the best one (not zero-shot's)
    assert "overlaps those of chain-of-thought, self-consistency: with 4 items" in out
    assert "[0.0, 49.0]" in out  # zero-shot's interval, shown as wide as it is
    # the few-shot examples come from the train part and are never scored
    scored = {r.fields["question"] for r in mod.test[: mod.SCORED]}
    train = {r.fields["question"] for r in mod.train}
    shown = set()
    for req in fake.requests:
        turns = list(req.messages or [])[1:-1]
        shown |= {m.content for m in turns if m.role == "user"}
    assert shown and shown <= train and not shown & scored
    sc_params = [r.params for r in fake.requests if r.params.get("temperature") == 0.7]
    assert len(sc_params) == 8 and all(p["max_tokens"] == 40 for p in sc_params)
    assert fake.requests[0].params == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8}


def test_self_consistency() -> None:
    mod = load("self_consistency")
    replies = iter(["5*6=30, 30-4=26. The answer is 26."] * 3 + ["The answer is 24."] * 2)
    fake = FakeBackend(lambda r: next(replies))
    vote = mod.main(LLM(fake))
    assert vote.answer == "26" and vote.counts == {"26": 3, "24": 2}
    assert vote.agreement == 0.6 and len(vote.samples) == 5
    assert fake.requests[0].params["n"] == 5 and fake.requests[0].params["temperature"] == 0.8


def test_chaining() -> None:
    mod = load("chaining")
    fake = FakeBackend(
        [
            "Problem: wrong colour kettle.\nAsk: swap it.",
            "Sorry about the mix-up, Priya; we will swap it.",
            "Your kettle swap",
        ]
    )
    out = mod.main(LLM(fake))
    assert out == {
        "facts": "Problem: wrong colour kettle.\nAsk: swap it.",
        "reply": "Sorry about the mix-up, Priya; we will swap it.",
        "subject": "Your kettle swap",
    }
    assert mod.TICKET in last_user(fake.requests[0])  # in its delimited section
    assert last_user(fake.requests[1]) == "Points:\nProblem: wrong colour kettle.\nAsk: swap it."
    assert last_user(fake.requests[2]) == "Sorry about the mix-up, Priya; we will swap it."


def test_refinement() -> None:
    mod = load("refinement")
    fake = FakeBackend(
        ["A bottle.", "Too vague: say what it keeps cold.", "Keeps drinks cold.", "OK"]
    )
    assert mod.main(LLM(fake)) == "Keeps drinks cold."
    assert last_user(fake.requests[2]).startswith("Description: A bottle.\n\nCritique: Too vague")
    assert len(fake.requests) == 4  # draft, critique, revise, critique approves


def test_structured_output() -> None:
    mod = load("structured_output")
    fake = FakeBackend(
        [
            '{"product": "headphones", "category": "broken", "urgent": true}',
            '{"product": "headphones", "category": "defect", "urgent": true}',
        ]
    )
    ticket = mod.main(LLM(fake))
    assert ticket == mod.Ticket(product="headphones", category="defect", urgent=True)
    # the first reply failed validation; its errors went back to the model
    retry = [m.content for m in fake.requests[1].messages or []]
    assert any("category" in c for c in retry[2:])


def test_backends(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    mod = load("backends")
    fake = FakeBackend(
        ["Council plans 5,000 trees."], supports=["temperature", "top_p", "max_tokens"]
    )
    reply = mod.main(LLM(fake, on_unsupported="drop"))
    assert reply.dropped == {"top_k": "the fake backend cannot honour top_k"}
    assert "not honoured here: ['top_k']" in capsys.readouterr().out
    monkeypatch.setenv("PROMPTKIT_RECIPE_BACKENDS", "fake:m1, ollama:llama3.2")
    assert mod.targets() == [{"backend": "fake:m1"}, {"backend": "ollama:llama3.2"}]


def test_optimize(capsys: pytest.CaptureFixture[str]) -> None:
    mod = load("optimize")
    answers = {r.fields["question"]: r.expected for r in mod.data}

    def reply(req: Request) -> str:  # right only when shown worked examples
        if len(list(req.messages or [])) > 2:
            return str(answers[last_user(req)])
        return "I am not sure."

    fake = FakeBackend(reply)
    report = mod.main(LLM(fake))
    assert report.improved and len(report.prompt.examples) == 2
    assert report.prompt.instruction == mod.START.instruction  # examples added, not replaced
    assert report.test_start.accuracy == 0.0
    assert report.test_chosen is not None and report.test_chosen.accuracy == 1.0
    assert report.spent.calls == len(fake.requests) <= 120
    # the examples are never the items scored in the same request
    for req in fake.requests:
        msgs = list(req.messages or [])
        assert msgs[-1].content not in [m.content for m in msgs[:-1] if m.role == "user"]
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["candidate", "technique"]
    assert "Saved best.yaml:\ntechnique: FewShot" in out and "examples:" in out


def test_ray_classify(capsys: pytest.CaptureFixture[str]) -> None:
    """On a local Ray (2 CPUs, started and stopped by the recipe) with the fake backend:
    each actor builds it from the configuration."""
    pytest.importorskip("ray")
    mod = load("ray_classify")

    def reply(req: Request) -> str:
        text = list(req.messages or [])[-1].content
        return "negative" if any(w in text for w in ("broke", "useless", "cutting")) else "positive"

    rows = mod.main({"backend": "fake", "replies": reply}, actors=2, concurrency=4, rpm=6000)
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6]
    labels = ["positive", "negative", "positive", "negative", "positive", "negative"]
    assert [r["reply"] for r in rows] == labels
    assert all(r["error_type"] is None and r["requests"] == 1 for r in rows)
    assert "negative  <- The strap broke within a week." in capsys.readouterr().out


def test_tools() -> None:
    from promptkit import ToolCall

    mod = load("tools")
    fake = FakeBackend(
        [
            [
                ToolCall(
                    name="convert_length",
                    arguments={"value": 10, "from_unit": "km", "to_unit": "miles"},
                ),
                ToolCall(
                    name="convert_temperature",
                    arguments={"value": 30, "from_unit": "C", "to_unit": "F"},
                ),
            ],
            [
                ToolCall(
                    name="convert_length",
                    arguments={"value": 10, "from_unit": "km", "to_unit": "mi"},
                )
            ],
            "10 km is 6.214 miles and 30 C is 86.0 F.",
        ]
    )
    assert mod.main(LLM(fake)) == "10 km is 6.214 miles and 30 C is 86.0 F."
    assert len(fake.requests) == 3
    assert [t["name"] for t in fake.requests[0].tools] == ["convert_length", "convert_temperature"]
    units = fake.requests[0].tools[0]["parameters"]["properties"]["to_unit"]
    assert units["enum"] == ["m", "km", "mi", "ft"]
    fed = [m for m in fake.requests[1].messages or () if m.role == "tool"]
    # "miles" is not a unit: the error goes back to the model instead of a call
    assert fed[0].content.startswith("Error: ") and "to_unit" in fed[0].content
    assert fed[1].content == "86.0 F"
    assert list(fake.requests[2].messages or ())[-1].content == "6.214 mi"


def test_receipt_extraction(tmp_path: Path) -> None:
    import base64

    mod = load("receipt_extraction")
    fake = FakeBackend(
        [
            '{"items": [{"name": "TEA", "price": 2.5}], "total": "six"}',
            '{"items": [{"name": "TEA", "price": 2.5}, {"name": "CAKE", "price": 3.75}],'
            ' "total": 6.25}',
        ]
    )
    receipt = mod.main(LLM(fake))
    assert receipt.total == 6.25 and [i.name for i in receipt.items] == ["TEA", "CAKE"]
    # the image is a part of the user message, where the template puts it
    user = list(fake.requests[0].messages or [])[-1]
    kinds = [p.type for p in user.content]
    assert kinds == ["text", "image", "text"]
    assert user.content[0].text == "Receipt: "
    png = mod.RECEIPT.read_bytes()
    assert user.content[1].read() == png and png.startswith(b"\x89PNG")
    # the retry after the invalid total carries the image again, plus the errors
    retry = list(fake.requests[1].messages or [])
    assert retry[1] == user and "total" in retry[-1].content
    # on the OpenAI wire: an image_url part with a data: URL
    from promptkit.backends.openai import OpenAIBackend

    body = OpenAIBackend(model="gpt-4o-mini", api_key="sk-test").build_body(fake.requests[0])
    part = body["messages"][1]["content"][1]
    assert part == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
    }
    # a fresh image is drawn when missing
    drawn = mod.write_receipt_png(tmp_path / "r.png")
    assert drawn.read_bytes() == png


def test_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from otel_sdk import installed

    mod = load("tracing")
    gen = installed(monkeypatch)  # the real SDK with in-memory exporters, reset afterwards
    otel = next(gen)
    try:
        fake = FakeBackend(lambda r: "Bees matter." if "Summarise" in system_of(r) else "positive")
        outputs, cost = mod.main(LLM(fake))
        assert outputs == {"gist": "Bees matter.", "title": "positive"}
        (chain,) = otel.named("promptkit.chain")
        steps = otel.children(chain)
        assert [s.name for s in steps] == ["promptkit.chain.step"] * 2
        assert all([c.name for c in otel.children(s)] == ["chat fake-model"] for s in steps)
        (batch,) = otel.named("promptkit.batch")
        calls = otel.children(batch)
        assert len(calls) == 3
        # the batch's cost is its three calls' cost, by the recipe's price table
        per_call = [c.attributes["promptkit.cost_usd"] for c in calls]  # type: ignore[index]
        assert cost is not None and cost == pytest.approx(sum(per_call))
        tokens = sum(
            c.attributes["gen_ai.usage.input_tokens"] * 0.15  # type: ignore[index]
            + c.attributes["gen_ai.usage.output_tokens"] * 0.60  # type: ignore[index]
            for c in calls
        )
        assert cost == pytest.approx(tokens / 1e6)
    finally:
        gen.close()
    # without an SDK configured (after the reset) the recipe runs the same, untraced
    from promptkit._telemetry import tracer

    assert tracer() is None
    outputs, cost = mod.main(LLM(FakeBackend(["Bees matter.", "A title"] + ["positive"] * 3)))
    assert outputs["title"] == "A title" and cost is not None and cost > 0
