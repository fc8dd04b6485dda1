"""The one jinja2 environment every promptkit template renders in.

- ``ImmutableSandboxedEnvironment``: templates cannot reach Python internals, mutate
  lists or dicts, or build huge values with ``*``/``**``; an attempt raises
  :class:`~promptkit.TemplateSecurityError` and nothing runs.
- ``StrictUndefined``: a missing variable is an error, never an empty string.
- No autoescape: prompts are text, not HTML.
- Compiled templates are cached by source text.

A variable's *value* is data: jinja2 inserts it as text and never evaluates it, so an
input of ``{{ 7*7 }}`` comes out as ``{{ 7*7 }}``.
"""

from __future__ import annotations

import difflib
import functools
import operator
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ._errors import (
    MissingVariablesError,
    PromptError,
    TemplateSecurityError,
    TemplateSyntaxError,
    UnexpectedVariablesError,
)

__all__ = [
    "Compiled",
    "Template",
    "check_variables",
    "compile_template",
    "environment",
    "render_compiled",
]

#: Largest string or list a template may build with ``*``, and the largest power with ``**``.
MAX_BUILT_SIZE = 1_000_000
MAX_POWER_RESULT_BITS = 4_096

ExtraVars = Literal["forbid", "ignore"]


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, plus limits on ``*`` and ``**`` so a template cannot exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and abs(left) > 1
                and right * abs(left).bit_length() > MAX_POWER_RESULT_BITS
            ):
                raise SecurityError(f"{left} ** {right} is too large to compute in a template")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            if (
                isinstance(seq, (str, list, tuple))
                and isinstance(count, int)
                and len(seq) * count > MAX_BUILT_SIZE
            ):
                raise SecurityError(
                    f"a template may not build a value of more than {MAX_BUILT_SIZE} items"
                )
        return operator.mul(left, right)


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared sandboxed environment (created once)."""
    return _Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
    )


_TRIVIAL = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}")


class Compiled:
    """A compiled template: its ``source``, the jinja2 ``template`` and the
    ``variables`` it uses (built by :func:`compile_template`, cached)."""

    __slots__ = ("source", "template", "trivial", "variables")

    def __init__(self, source: str, template: jinja2.Template, variables: frozenset[str]) -> None:
        self.source = source
        self.template = template
        self.variables = variables
        # A template that is one bare variable ("{{ input }}", the default user turn)
        # renders a str value as that very str: no need to set up a jinja2 context.
        m = _TRIVIAL.fullmatch(source)
        self.trivial = m.group(1) if m else None

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as its source (jinja2's compiled code does not pickle): prompts travel to
        # other processes (Ray actors, multiprocessing) and compile again there, once
        return (compile_template, (self.source,))


#: The former private name, kept while the prompt modules still import it.
_Compiled = Compiled


@functools.lru_cache(maxsize=2048)
def compile_template(source: str, name: str = "<template>") -> Compiled:
    """Parse and compile ``source`` once; later calls with the same text hit the cache."""
    env = environment()
    try:
        ast = env.parse(source)
        variables = frozenset(meta.find_undeclared_variables(ast))
        template = env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(
            f"{name}: template syntax error on line {exc.lineno}: {exc.message}. Fix the "
            "template; to show jinja2 syntax literally, wrap it in {% raw %}...{% endraw %}."
        ) from None
    return Compiled(source, template, variables)


def render_compiled(compiled: Compiled, context: Mapping[str, Any], *, name: str) -> str:
    """Render with promptkit's errors in place of jinja2's."""
    if compiled.trivial is not None:
        value = context.get(compiled.trivial)
        if type(value) is str:
            return value
    try:
        return compiled.template.render(context)
    except (SecurityError, OverflowError) as exc:
        raise TemplateSecurityError(
            f"{name}: the template tried something the sandbox forbids "
            f"({str(exc).rstrip('.')}). Templates may only format the variables they are given."
        ) from None
    except jinja2.UndefinedError as exc:
        raise PromptError(
            f"{name}: {exc.message}. Check the variable's fields, or guard the use with "
            "`{% if ... is defined %}`."
        ) from None
    except (TypeError, ValueError, ZeroDivisionError, LookupError) as exc:
        raise PromptError(
            f"{name}: rendering failed: {str(exc).rstrip('.')}. Check the template and the "
            "types of the values passed to it."
        ) from None


def check_variables(
    given: Iterable[str],
    required: frozenset[str],
    *,
    optional: Iterable[str] = (),
    name: str,
    extra_vars: ExtraVars = "forbid",
) -> None:
    """Raise one error naming every missing variable, or every unexpected one."""
    given_set = set(given)
    missing = required - given_set
    known = required | set(optional)
    unexpected = given_set - known
    candidates = sorted(known)
    hints = {
        u: next(iter(difflib.get_close_matches(u, candidates, n=1, cutoff=0.6)), None)
        for u in unexpected
    }
    if missing:
        raise MissingVariablesError(sorted(missing), prompt=name, unexpected=hints)
    if extra_vars == "forbid" and unexpected:
        raise UnexpectedVariablesError(hints, prompt=name, expected=sorted(required))


def load_source(value: str | Path) -> str:
    """A template given as a string, or as a path to a file holding it."""
    if isinstance(value, Path):
        try:
            return value.read_text(encoding="utf-8")
        except OSError as exc:
            raise PromptError(f"Cannot read template file {value}: {exc.strerror}.") from None
    return value


class Template:
    """A jinja2 template for your own text, rendered in promptkit's sandbox.

    >>> t = Template("Translate to {{ language }}: {{ text }}")
    >>> sorted(t.variables)
    ['language', 'text']
    >>> t.render(language="French", text="{{ 7*7 }}")
    'Translate to French: {{ 7*7 }}'

    Missing variables raise :class:`~promptkit.MissingVariablesError`; unknown ones raise
    :class:`~promptkit.UnexpectedVariablesError` unless ``extra_vars="ignore"``.
    """

    __slots__ = ("_compiled", "extra_vars", "name")

    def __init__(
        self, source: str | Path, *, name: str = "Template", extra_vars: ExtraVars = "forbid"
    ) -> None:
        self.name = name
        self.extra_vars: ExtraVars = extra_vars
        self._compiled = compile_template(load_source(source), name)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Template:
        """Load a template from a UTF-8 text file."""
        p = Path(path)
        return cls(p, name=kwargs.pop("name", p.name), **kwargs)

    @property
    def source(self) -> str:
        """The template text."""
        return self._compiled.source

    @property
    def variables(self) -> frozenset[str]:
        """The names the template needs (jinja2's undeclared variables)."""
        return self._compiled.variables

    def render(self, **variables: Any) -> str:
        """Render with ``variables``; values are inserted as data, never as template code."""
        check_variables(
            variables, self._compiled.variables, name=self.name, extra_vars=self.extra_vars
        )
        return render_compiled(self._compiled, variables, name=self.name)

    def __repr__(self) -> str:
        return f"Template({self._compiled.source!r})"


_PACKAGE_TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def builtin_template(name: str) -> str:
    """The text of one of the package's default layout templates."""
    return (_PACKAGE_TEMPLATES / f"{name}.j2").read_text(encoding="utf-8")
