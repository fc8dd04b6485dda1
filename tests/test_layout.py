"""The layout's Python twins give exactly what the package's templates give."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import promptkit as pk
from promptkit._render import builtin_template, compile_template, render_compiled
from promptkit.prompts._layout import LAYOUT_TEMPLATES, SYSTEM_PARTS, TWINS, layout_for

text = st.text(alphabet=st.sampled_from(list("ab .!?\n<>{}%#Y")), max_size=12)
maybe = st.none() | text
perspective = st.builds(
    pk.Perspective, name=st.text(alphabet="abc XY", min_size=1, max_size=5), description=maybe
)
inline = st.fixed_dictionaries({"input": text, "rationale": maybe, "output": text})
section = st.fixed_dictionaries({"label": text, "open": text, "text": text, "close": text})

contexts = st.fixed_dictionaries(
    {
        "role": maybe | st.sampled_from(["you are a cat", "You answer", "a poet."]),
        "instruction": text,
        "output_format": maybe,
        "length": maybe,
        "style": maybe,
        "audience": maybe,
        "avoid": st.lists(text, max_size=3),
        "perspectives": st.lists(perspective, max_size=3),
        "synthesis": maybe,
        "not_found": text,
        "answer_format": maybe,
        "has_documents": st.booleans(),
        "first_document_id": text,
        "has_sections": st.booleans(),
        "open_marker": text,
        "close_marker": text,
        "inline_examples": st.lists(inline, max_size=3),
        "rationale": maybe,
        "output": text,
        "sections": st.lists(section, max_size=3),
        "body": text,
        "trigger": text,
    }
)


def jinja(name: str, context: dict[str, Any]) -> str:
    return render_compiled(compile_template(builtin_template(name)), context, name=name)


@settings(max_examples=300, deadline=None)
@given(contexts, st.lists(text, min_size=len(SYSTEM_PARTS), max_size=len(SYSTEM_PARTS)))
def test_every_twin_matches_its_template(context: dict[str, Any], parts: list[str]) -> None:
    for name in LAYOUT_TEMPLATES:
        ctx = dict(zip(SYSTEM_PARTS, parts, strict=True)) if name == "system" else context
        assert TWINS[name](ctx) == jinja(name, ctx), name


def test_every_part_has_a_twin() -> None:
    assert set(TWINS) == set(LAYOUT_TEMPLATES)
    assert layout_for({}).custom == {}


ALL_JINJA = {name: builtin_template(name) for name in LAYOUT_TEMPLATES}

PROMPTS: list[tuple[pk.Prompt, dict[str, Any]]] = [
    (
        pk.FewShot(
            role="a critic",
            instruction="Classify {{ product }} reviews.",
            avoid=["a", "b"],
            length="short",
            examples=[
                pk.Example(input={"input": "x <<< y"}, output="1", rationale="because"),
                pk.Example(input={"input": "z"}, output="2"),
            ],
            template="{{ input }}",
            answer_format="Answer: <answer>",
            reasoning="Think.",
        ),
        {"product": "lamps", "input": "it <<<< glows"},
    ),
    (
        pk.FewShot(
            instruction="Do it.",
            examples=[pk.Example(input="a", output="1", rationale="r")],
            examples_layout="inline",
        ),
        {"input": "q"},
    ),
    (
        pk.Context(instruction="Answer.", template="{{ question }}", delimit=["email"]),
        {
            "question": "How?",
            "email": "<<<EMAIL>>> hi",
            "documents": [pk.Document(id="d1", text="t", title="T"), "plain"],
        },
    ),
    (
        pk.Perspectives(perspectives=["A", {"name": "B", "description": "bee"}], synthesis="S"),
        {"input": "x"},
    ),
    (pk.ChainOfThought(), {"input": "2+2?"}),
    (pk.Conversation(role="You are kind").with_turn("hi", "hello"), {"input": "bye"}),
]


def test_prompts_render_the_same_with_the_templates_themselves() -> None:
    for prompt, variables in PROMPTS:
        jinja_prompt = prompt.model_copy(update={"templates": ALL_JINJA})
        assert jinja_prompt._d.layout.custom  # every part rendered by jinja2
        assert prompt.render(**dict(variables)) == jinja_prompt.render(**dict(variables))


def test_layouts_are_shared_between_prompts() -> None:
    a = pk.ZeroShot(instruction="a", templates={"negative": "N{{ avoid }}"})
    b = pk.Role(role="r", templates={"negative": "N{{ avoid }}"})
    assert a._d.layout is b._d.layout
    assert pk.ZeroShot(instruction="a")._d.layout is pk.Role(role="r")._d.layout


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab {}%#\r\n-")), min_size=1, max_size=12))
def test_static_instruction_is_what_jinja_gives(source: str) -> None:
    try:
        compiled = compile_template(source)
        expected = render_compiled(compiled, {}, name="x")
    except pk.PromptkitError:
        return
    if compiled.variables:
        return
    assert pk.ZeroShot(instruction=source)._d.static_instruction == expected


def test_prompts_with_the_same_examples_share_their_messages() -> None:
    def make() -> list[pk.Message]:
        return pk.FewShot(examples=[pk.Example(input="a", output="1")]).render(input="b")

    first, second = make(), make()
    assert first == second
    assert first[1] is second[1]  # frozen values, built once
