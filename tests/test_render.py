"""The sandboxed renderer and the public Template."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import promptkit as pk
from promptkit._render import compile_template, environment


def test_one_environment_sandboxed_strict_no_autoescape() -> None:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = environment()
    assert env is environment()
    assert isinstance(env, ImmutableSandboxedEnvironment)
    assert env.undefined is StrictUndefined
    assert env.autoescape is False
    assert pk.Template("{{ x }}").render(x="<b>&</b>") == "<b>&</b>"


def test_compiled_templates_are_cached() -> None:
    a = compile_template("Hello {{ name }} (cache test)")
    b = compile_template("Hello {{ name }} (cache test)")
    assert a is b
    p1 = pk.ZeroShot(instruction="cache me {{ x }}")
    p2 = pk.ZeroShot(instruction="cache me {{ x }}")
    assert p1._instr is p2._instr


def test_template_variables_and_render() -> None:
    t = pk.Template("{% for d in docs %}{{ d }}{% endfor %} {{ q | upper }}")
    assert t.variables == {"docs", "q"}
    assert t.render(docs=["a", "b"], q="x") == "ab X"


@pytest.mark.parametrize(
    "value",
    ["{{ 7*7 }}", "{% raw %}", "{% endraw %}", "{# c #}", "{{", "}}", "{%- if x %}", "${x}", "{0}"],
)
def test_values_are_never_rendered_as_templates(value: str) -> None:
    assert pk.Template("<{{ v }}>").render(v=value) == f"<{value}>"
    assert pk.ZeroShot(instruction="i").render(input=value)[1].content == value


def test_missing_variables_named_all_at_once() -> None:
    t = pk.Template("{{ a }} {{ b }} {{ c }}", name="greeting")
    with pytest.raises(pk.MissingVariablesError) as info:
        t.render(b=1)
    assert info.value.missing == ["a", "c"]
    assert "greeting is missing variable(s) 'a', 'c'" in str(info.value)


def test_missing_variable_is_never_an_empty_string() -> None:
    with pytest.raises(pk.PromptError, match="has no attribute 'nmae'"):
        pk.Template("{{ user.nmae }}").render(user={"name": "x"})


def test_unexpected_variable_suggests_closest() -> None:
    t = pk.Template("{{ language }} {{ text }}")
    with pytest.raises(pk.UnexpectedVariablesError) as info:
        t.render(language="fr", text="x", langauge="de")
    assert "'langauge' (did you mean 'language'?)" in str(info.value)
    assert "extra_vars='ignore'" in str(info.value)
    assert pk.Template("{{ a }}", extra_vars="ignore").render(a=1, b=2) == "1"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ x.__init__.__globals__ }}",
        "{{ x.__class__.__base__ }}",
        "{{ ().__class__.__bases__[0].__subclasses__() }}",
        "{{ '{0.__class__}'.format(x) }}",
        "{{ x.mro() }}",
        "{{ lst.append(1) }}",
        "{{ d.update(a=1) }}",
        "{{ d.clear() }}",
        "{{ 'a' * 100000000 }}",
        "{{ [1] * 100000000 }}",
        "{{ 9 ** 9999999 }}",
        "{% for i in range(100000000) %}{% endfor %}",
        "{{ x.__subclasses__() }}",
        "{{ lipsum.__globals__ }}",
    ],
)
def test_sandbox_escapes_raise_promptkit_error(source: str) -> None:
    ctx = {"x": pk.Template, "lst": [1], "d": {"a": 1}}
    t = pk.Template(source, extra_vars="ignore")
    with pytest.raises(pk.TemplateSecurityError) as info:
        t.render(**ctx)
    assert "sandbox forbids" in str(info.value)


def test_prompt_template_escape_attempt_raises() -> None:
    p = pk.ZeroShot(instruction="{{ input.__class__.__mro__ }}")
    with pytest.raises(pk.TemplateSecurityError):
        p.render(input="x")


def test_syntax_error_names_line() -> None:
    with pytest.raises(pk.TemplateSyntaxError, match="line 2"):
        pk.Template("ok\n{% if %}")
    with pytest.raises(pk.TemplateSyntaxError, match="ZeroShot instruction"):
        pk.ZeroShot(instruction="{{ unclosed")


def test_template_from_file(tmp_path: Path) -> None:
    f = tmp_path / "t.j2"
    f.write_text("Dear {{ name }},", encoding="utf-8")
    t = pk.Template.from_file(f)
    assert t.render(name="Ada") == "Dear Ada,"
    with pytest.raises(pk.PromptError, match="Cannot read template file"):
        pk.Template(tmp_path / "missing.j2")


def test_every_error_derives_from_one_base() -> None:
    import inspect

    import promptkit._errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert inspect.isclass(cls) and issubclass(cls, pk.PromptkitError), name


def test_import_is_light() -> None:
    code = (
        "import sys, promptkit\n"
        "heavy = ('openai', 'httpx', 'llama_cpp', 'tenacity', 'numpy', 'asyncio', 'subprocess',"
        " 'opentelemetry', 'ray')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_fast_message_equals_the_validated_message() -> None:
    """The render pipeline's unvalidated constructor builds exactly what validation would:
    equal, same hash, same dump, same fields set, frozen, and a copy is independent."""
    import pydantic

    from promptkit._media import TextPart
    from promptkit._types import Message, fast_message

    for role, content in (("user", "hi"), ("system", ""), ("assistant", (TextPart(text="x"),))):
        fast = fast_message(role, content)  # type: ignore[arg-type]
        slow = Message(role=role, content=content)  # type: ignore[arg-type]
        assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
        assert fast.model_dump() == slow.model_dump()
        assert fast.model_fields_set == slow.model_fields_set == {"role", "content"}
        assert fast.tool_calls is None and fast.name is None
        with pytest.raises(pydantic.ValidationError):
            fast.role = "user"  # type: ignore[misc]
        assert fast.model_copy(update={"content": "other"}).content == "other"
        assert fast.content == content
