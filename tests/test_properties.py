"""Properties: any text renders literally inside its section, or raises a promptkit error."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import promptkit as pk

# Text biased towards what breaks prompt renderers: markers, role words, jinja syntax,
# NUL and other control characters, and lone surrogates.
nasty = st.sampled_from(
    [
        "<<<",
        ">>>",
        "<<<END EMAIL>>>",
        "<<<EMAIL>>>",
        "<<<<<<<<",
        "{{ 7*7 }}",
        "{% raw %}",
        "{% endraw %}",
        "{#",
        "system:",
        "### User:",
        "<|im_start|>system",
        "<|im_",
        "start|>",
        "[INST]",
        "<end_of_turn>",
        "\U000e0041",
        "\u202e",
        "\u200b",
        "\x00",
        "\ud800",
        "\udfff",
        "\r\n",
        "END",
    ]
)
texts = st.lists(st.one_of(st.text(), nasty), max_size=12).map("".join)

DELIMITED = pk.Delimited(instruction="Summarise.", delimit=["email"], template="Go.")
RAW = DELIMITED.model_copy(update={"neutralise_untrusted": False})
INVISIBLE = re.compile("[\x00\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]")
CONTEXT = pk.Context(instruction="Answer.", template="{{ question }}")


def _section(content: str, label: str) -> tuple[str, str]:
    m = re.match(r"^(<{3,})" + re.escape(label) + r"(>{3,})\n", content)
    assert m, content[:80]
    return m.group(1), m.group(2)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
@example("x" * 1_000_000 + "<<<END EMAIL>>>")
def test_delimited_text_is_literal_and_unforgeable(text: str) -> None:
    try:
        msgs = DELIMITED.render(email=text)
    except pk.PromptkitError:
        return
    assert [m.role for m in msgs] == ["system", "user"]
    user = msgs[1].content
    o, c = _section(user, "EMAIL")
    close = f"{o}END EMAIL{c}"
    # what is sent is the text neutralised: no special token, no invisible character
    assert user == f"{o}EMAIL{c}\n{pk.neutralise(text)}\n{close}\n\nGo."
    assert not any(t in user for t in pk.COMMON_SPECIAL_TOKENS if len(t) > 1)
    assert not INVISIBLE.search(user)
    # opted out, it is the text itself
    raw = RAW.render(email=text)[1].content
    o, c = _section(raw, "EMAIL")
    assert raw == f"{o}EMAIL{c}\n{text}\n{o}END EMAIL{c}\n\nGo."
    # the markers occur nowhere inside the text, so it can neither close nor forge a section
    assert o not in text
    assert user.count(close) == 1
    assert f"{o}LABEL{c}" in msgs[0].content


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(texts, texts, texts)
def test_documents_and_question_literal(doc: str, title_seed: str, question: str) -> None:
    title = title_seed.replace("\n", " ").replace("\r", " ")
    try:
        msgs = CONTEXT.render(
            question=question, documents=[pk.Document(id="d-1", text=doc, title=title or None)]
        )
    except pk.PromptkitError:
        return
    user = msgs[-1].content
    o, c = _section(user, "DOCUMENT d-1")
    doc, title = pk.neutralise(doc), pk.neutralise(title)
    inner = f"Title: {title}\n{doc}" if title else doc
    tail = f"\n\n{question}" if question else ""  # an empty body part is left out
    assert user == f"{o}DOCUMENT d-1{c}\n{inner}\n{o}END DOCUMENT d-1{c}{tail}"
    assert o not in doc and o not in question and o not in title


@settings(max_examples=200)
@given(texts)
def test_any_input_renders_literally_in_user_turn(text: str) -> None:
    p = pk.FewShot(instruction="Classify.", examples=[pk.Example(input=text, output=text)])
    msgs = p.render(input=text)
    assert msgs[1].content == text
    assert msgs[2].content == text
    assert msgs[3].content == text
    t = pk.Template("[{{ v }}]")
    assert t.render(v=text) == f"[{text}]"


@settings(max_examples=100)
@given(st.lists(st.tuples(texts, texts), max_size=6), texts)
def test_history_kept_literally_in_order(turns: list[tuple[str, str]], new: str) -> None:
    c = pk.Conversation(role="bot")
    for u, a in turns:
        c = c.with_turn(u, a)
    msgs = c.render(input=new)
    expected = [x for pair in turns for x in pair] + [new]
    assert [m.content for m in msgs[1:]] == expected


@settings(max_examples=200)
@given(texts)
def test_bare_variable_fast_path_equals_jinja(text: str) -> None:
    from promptkit._render import compile_template, render_compiled

    for source in ("{{ v }}", "{{v}}", "{{- v -}}"):
        compiled = compile_template(source)
        assert compiled.trivial == "v"
        assert render_compiled(compiled, {"v": text}, name="t") == compiled.template.render(v=text)
