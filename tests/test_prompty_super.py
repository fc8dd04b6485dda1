"""``{{ super() }}`` in .prompty templates that ``{% extends %}`` a base (issue 12): same
output as jinja2's own inheritance, rendered by promptkit's one sandbox."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

import promptkit as pk
from promptkit import Message
from promptkit._render import compile_template, render_compiled
from promptkit.prompty import dump, load, loads
from promptkit.prompty._format import flatten_extends

S, U = Message.system, Message.user

CASES = {
    "plain": (
        {"b": "<{% block x %}B {{ who }}{% endblock %}>"},
        '{% extends "b" %}{% block x %}[{{ super() }}]{% endblock %}',
    ),
    "twice, filtered, in an if": (
        {"b": "<{% block x %}base{% endblock %}|{% block y %}Y{% endblock %}>"},
        '{% extends "b" %}{% block x %}{{ super() | upper }}-{{ super() }}'
        "{% if who %}/{{ super() }}{% endif %}{% endblock %}",
    ),
    "whitespace control": (
        {"b": "A\n{%- block x -%}\n  base  \n{%- endblock -%}\nZ"},
        '{% extends "b" %}{% block x -%}\n  child {{ super() }} \n{%- endblock %}',
    ),
    "three levels": (
        {
            "g": "({% block x %}G{% endblock %})",
            "p": '{% extends "g" %}{% block x %}P{{ super() }}P{% endblock %}',
        },
        '{% extends "p" %}{% block x %}C{{ super() }}C{% endblock %}',
    ),
    "nested blocks seen by super": (
        {"b": "{% block outer %}O {% block inner %}I{% endblock %} O{% endblock %}"},
        '{% extends "b" %}{% block outer %}[{{ super() }}]{% endblock %}'
        "{% block inner %}ci{{ super() }}{% endblock %}",
    ),
    "nested super in a nested override": (
        {"b": "{% block outer %}O {% block inner %}I{% endblock %} O{% endblock %}"},
        '{% extends "b" %}{% block outer %}<{% block inner %}{{ super() }}!{% endblock %}>'
        "{% endblock %}",
    ),
    "raw and comments stay as they are": (
        {"b": "{% block x %}B{% endblock %}"},
        '{% extends "b" %}{% block x %}{{ super() }}{# super() #}'
        "{% raw %}{{ super() }}{% endraw %}{% endblock %}",
    ),
    "loop variable in the child": (
        {"b": "{% block x %}b{% endblock %}"},
        '{% extends "b" %}{% block x %}{% for i in [1, 2] %}{{ i }}{{ super() }}'
        "{% endfor %}{% endblock %}",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_output_as_jinja2_inheritance(case: str) -> None:
    bases, child = CASES[case]
    reference = jinja2.Environment(
        loader=jinja2.DictLoader({**bases, "child": child}),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    expected = reference.get_template("child").render(who="me")
    flat = flatten_extends(child, bases, "child")
    calls = jinja2.Environment().parse(flat).find_all(jinja2.nodes.Call)
    assert not [c for c in calls if getattr(c.node, "name", None) == "super"]
    assert render_compiled(compile_template(flat), {"who": "me"}, name="child") == expected


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = (
    "---\nname: Base\nmodel:\n  api: chat\nsample: {who: base}\n---\n"
    "system:\nYou help {{ who }}.{% block rules %} Be brief.{% endblock %}\nuser:\n"
    "{% block question %}{{ question }}{% endblock %}\n"
)


def test_prompty_file_with_super(tmp_path: Path) -> None:
    _write(tmp_path, "base.prompty", BASE)
    child = _write(
        tmp_path,
        "child.prompty",
        "---\nbase: base.prompty\nsample: {who: Ann}\n---\n"
        '{% extends "base.prompty" %}\n'
        "{% block rules %}{{ super() }} Cite sources.{% endblock %}\n",
    )
    p = load(child)
    assert p.render(question="Why?") == [
        S("You help Ann. Be brief. Cite sources."),
        U("Why?"),
    ]
    assert "question" in p.variables and not any(v.startswith("_pk") for v in p.variables)
    assert loads(dump(p)).render(question="Why?") == p.render(question="Why?")


def test_super_output_still_goes_through_the_sandbox(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "base.prompty",
        "---\nmodel:\n  api: chat\n---\n"
        "system:\n{% block x %}{{ ''.__class__.__mro__[1].__subclasses__() }}{% endblock %}\n",
    )
    child = _write(
        tmp_path,
        "child.prompty",
        "---\nbase: base.prompty\n---\n"
        '{% extends "base.prompty" %}{% block x %}{{ super() }}{% endblock %}',
    )
    with pytest.raises(pk.TemplateSecurityError):
        load(child).render()


def test_a_value_that_says_super_is_data(tmp_path: Path) -> None:
    _write(tmp_path, "base.prompty", BASE)
    child = _write(
        tmp_path,
        "child.prompty",
        "---\nbase: base.prompty\n---\n"
        '{% extends "base.prompty" %}{% block rules %}{{ super() }}{% endblock %}',
    )
    got = load(child).render(who="{{ super() }}", question="{% block x %}")
    assert got == [S("You help {{ super() }}. Be brief."), U("{% block x %}")]


def test_super_in_a_block_the_base_lacks_names_it() -> None:
    with pytest.raises(pk.PromptError, match="base template has no block 'y'"):
        flatten_extends(
            '{% extends "b" %}{% block x %}{% block y %}{{ super() }}{% endblock %}{% endblock %}',
            {"b": "{% block x %}B{% endblock %}"},
            "child",
        )
