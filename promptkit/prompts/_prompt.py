"""``Prompt``: the fields every technique shares, their validation, and what a prompt
derives from them once (compiled templates, the shared layout, the variables, caches).

``render()`` runs the pipeline in :mod:`._pipeline` (variables, user message, examples
chosen by :mod:`._examples`, system message, history); the text of each part comes from
the layout (:mod:`._layout`).
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    field_serializer,
    field_validator,
    model_validator,
)

from .._render import (
    Compiled,
    ExtraVars,
    compile_template,
    load_source,
    render_compiled,
)
from .._tokens import TokenCounter
from .._types import Message
from ..retrieval._protocols import ExampleSelector, example_text
from . import _examples, _pipeline
from ._answers import extract_answer
from ._base import PromptBase
from ._layout import LAYOUT_TEMPLATES, Layout, layout_for
from ._parts import (
    Document,
    Example,
    Perspective,
    coerce_documents,
)
from ._pipeline import RESERVED

__all__ = ["RESERVED", "Prompt"]


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _new_list() -> list[Any]:
    # a Python function, not ``list``: pydantic inspects a default factory's signature when
    # it builds a model's schema (on the first prompt of a process), which costs about a
    # millisecond for a builtin
    return []


def _new_dict() -> dict[str, Any]:
    return {}


class _Derived:
    """What a prompt derives from its fields once, at construction (the fields are frozen)."""

    __slots__ = (
        "body",
        "context",
        "example_texts",
        "examples_cache",
        "fence",
        "fixed_selection",
        "instr",
        "layout",
        "names",
        "required",
        "static_instruction",
        "system_cache",
    )

    def __init__(self, layout: Layout, body: Compiled, instr: Compiled | None) -> None:
        self.layout = layout
        self.body = body
        self.instr = instr
        self.names: tuple[str, ...] = ()
        self.required: frozenset[str] = frozenset()
        self.static_instruction: str | None = None
        self.context: dict[str, Any] = {}
        self.fence = 3
        self.fixed_selection: tuple[int, ...] = ()
        self.example_texts: tuple[str, ...] = ()
        self.system_cache: dict[tuple[Any, ...], str] = {}
        self.examples_cache: dict[tuple[int, tuple[int, ...]], list[Message]] = {}

    def __eq__(self, other: object) -> bool:
        # a function of the fields, which pydantic compares: equal prompts, equal state
        return isinstance(other, _Derived)

    __hash__ = None  # type: ignore[assignment]


class Prompt(PromptBase):
    """The base of every technique: all composable fields, one documented layout.

    >>> p = Prompt(instruction="Answer in one word.", role="a geographer")
    >>> [m.role for m in p.render(input="Capital of France?")]
    ['system', 'user']
    >>> p.render(input="Capital of France?")[0].content
    'You are a geographer.\\n\\nAnswer in one word.'
    """

    #: Fields a technique requires (checked at construction, with a clear message).
    _requires: ClassVar[tuple[str, ...]] = ()
    #: Whether a render needs documents (Context).
    _requires_documents: ClassVar[bool] = False

    instruction: str | None = None
    template: str = "{{ input }}"
    role: str | None = None
    output_format: str | None = None
    length: str | None = None
    style: str | None = None
    audience: str | None = None
    avoid: list[str] = Field(default_factory=_new_list)
    examples: list[Example] = Field(default_factory=_new_list)
    examples_layout: Literal["turns", "inline"] = "turns"
    max_examples: int | None = Field(default=None, ge=0)
    example_selector: ExampleSelector | None = Field(default=None, exclude=True, repr=False)
    delimit: list[str] = Field(default_factory=_new_list)
    documents: list[Document] = Field(default_factory=_new_list)
    not_found: str = "The documents do not contain the answer."
    perspectives: list[Perspective] = Field(default_factory=_new_list)
    synthesis: str | None = None
    history: list[Message] = Field(default_factory=_new_list)
    max_turns: int | None = Field(default=None, ge=0)
    max_history_tokens: int | None = Field(default=None, ge=0)
    token_counter: TokenCounter | Callable[[str], int] | None = Field(
        default=None, exclude=True, repr=False
    )
    reasoning: str | None = None
    answer_format: str | None = None
    answer_pattern: str | None = None
    templates: dict[str, str] = Field(default_factory=_new_dict)
    inputs: type[BaseModel] | None = None
    extra_vars: ExtraVars = "forbid"
    untrusted: list[str] = Field(default_factory=_new_list)
    neutralise_untrusted: bool = True
    special_tokens: list[str] | None = None

    _d: _Derived = PrivateAttr()

    # ------------------------------------------------------------------ validation

    @field_validator("perspectives", mode="before")
    @classmethod
    def _perspective_strings(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [{"name": p} if isinstance(p, str) else p for p in v]
        return v

    @field_validator("documents", mode="before")
    @classmethod
    def _document_strings(cls, v: Any) -> Any:
        return coerce_documents(v)

    @field_validator("templates", mode="before")
    @classmethod
    def _template_files(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: load_source(s) if isinstance(s, Path) else s for k, s in v.items()}
        return v

    @field_validator("instruction", "template", mode="before")
    @classmethod
    def _template_file(cls, v: Any) -> Any:
        return load_source(v) if isinstance(v, Path) else v

    @field_validator("inputs", mode="before")
    @classmethod
    def _import_inputs(cls, v: Any) -> Any:
        if isinstance(v, str):
            module, _, qual = v.partition(":")
            try:
                obj: Any = importlib.import_module(module)
                for part in qual.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError):
                raise ValueError(
                    f"cannot import inputs model {v!r} (expected 'module:Class')"
                ) from None
            return obj
        return v

    @field_serializer("inputs", when_used="json")
    def _inputs_path(self, v: type[BaseModel] | None) -> str | None:
        return None if v is None else f"{v.__module__}:{v.__qualname__}"

    @field_validator("history")
    @classmethod
    def _history_roles(cls, v: list[Message]) -> list[Message]:
        if any(m.role == "system" for m in v):
            raise ValueError(
                "history may not hold system messages: put them in role/instruction, which "
                "always stay in the system message"
            )
        return v

    @model_validator(mode="after")
    def _prepare(self) -> Prompt:
        label = self.label
        for field in self._requires:
            value = getattr(self, field)
            if value is None or (isinstance(value, (list, str)) and len(value) == 0):
                raise ValueError(f"{label} needs {field!r}")
        unknown = set(self.templates) - set(LAYOUT_TEMPLATES)
        if unknown:
            name = sorted(unknown)[0]
            close = difflib.get_close_matches(name, LAYOUT_TEMPLATES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"templates has no part {name!r}{hint}; the parts are {', '.join(LAYOUT_TEMPLATES)}"
            )
        instr = (
            compile_template(self.instruction, f"{label} instruction") if self.instruction else None
        )
        body = compile_template(self.template, f"{label} template")
        d = _Derived(layout_for(self.templates, label), body, instr)
        self._d = d
        for name in self.delimit:
            if not _IDENT.match(name):
                raise ValueError(f"delimit names variables; {name!r} is not a valid name")
            if name in body.variables:
                raise ValueError(
                    f"{name!r} is delimited, so it is shown in its own section: remove "
                    f"{{{{ {name} }}}} from the template"
                )
        if len(set(self.delimit)) != len(self.delimit):
            raise ValueError("delimit lists a variable twice")
        instr_vars = instr.variables if instr else frozenset()
        for name in self.untrusted:
            if name not in instr_vars | body.variables:
                raise ValueError(
                    f"untrusted names template variables; {name!r} is not one "
                    f"(the variables are {sorted(instr_vars | body.variables)})"
                )
        required = instr_vars | body.variables | frozenset(self.delimit)
        clash = required & RESERVED
        if clash:
            raise ValueError(
                f"{', '.join(sorted(clash))} is a reserved name (documents, history, params and "
                "output are taken by promptkit); rename the template variable"
            )
        d.required = required
        d.names = tuple(sorted(body.variables | set(self.delimit)))
        if instr is not None and not instr_vars:
            text = instr.source
            # text without jinja2 syntax or \r (which jinja2 turns into \n) renders as itself
            d.static_instruction = (
                text
                if "{" not in text and "\r" not in text
                else render_compiled(instr, {}, name=f"{label} instruction")
            )
        if len(self.documents) > 1 and len({doc.id for doc in self.documents}) != len(
            self.documents
        ):
            raise ValueError("document ids must be unique")
        if self.answer_pattern is not None:
            try:
                re.compile(self.answer_pattern)
            except re.error as exc:
                raise ValueError(
                    f"answer_pattern is not a valid regular expression: {exc}"
                ) from None
        if self.perspectives and len({p.name for p in self.perspectives}) != len(self.perspectives):
            raise ValueError("perspective names must be unique")
        # with a selector, any example may be rendered
        candidates = self.examples if self.example_selector is not None else self.used_examples
        d.fence = _examples.check_examples(candidates, d.names, self.template)
        d.fixed_selection = tuple(range(len(self.used_examples)))
        if self.example_selector is not None:
            d.example_texts = tuple(example_text(ex) for ex in self.examples)
        d.context = {
            "role": self.role,
            "output_format": self.output_format,
            "length": self.length,
            "style": self.style,
            "audience": self.audience,
            "avoid": self.avoid,
            "perspectives": self.perspectives,
            "synthesis": self.synthesis,
            "not_found": self.not_found,
            "answer_format": self.answer_format,
        }
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Any:
        """A copy with ``update`` applied, validated like a new prompt (so every check and
        derived value holds for the copy).

        >>> from promptkit import ZeroShot
        >>> ZeroShot(instruction="Hi.").model_copy(update={"extra_vars": "ignore"}).extra_vars
        'ignore'
        """
        data = {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set}
        data.update(update or {})
        return type(self).model_validate(data)

    # ------------------------------------------------------------------ public helpers

    @property
    def _instr(self) -> Compiled | None:
        """The compiled instruction (shared by every prompt with the same text)."""
        return self._d.instr

    @property
    def variables(self) -> frozenset[str]:
        """The variables ``render()`` needs."""
        return self._d.required

    @property
    def used_examples(self) -> list[Example]:
        """The fixed examples: the first ``max_examples``, in the given order. These are
        rendered unless an ``example_selector`` chooses per input (see
        :meth:`select_examples`)."""
        if self.max_examples is None:
            return self.examples
        return self.examples[: self.max_examples]

    def select_examples(self, **variables: Any) -> list[Example]:
        """The examples ``render(**variables)`` shows, in their order (see
        :mod:`promptkit.prompts._examples`)."""
        state = _pipeline.begin(self, self._with_documents(variables))
        return [self.examples[i] for i in _examples.select(self, state)]

    def extract_answer(self, text: str) -> str | None:
        """The answer in a reply: the last match of ``answer_pattern`` (its first group),
        or else of the line that ``answer_format`` asks for. ``None`` when absent.

        >>> from promptkit import ChainOfThought
        >>> ChainOfThought().extract_answer("3 + 4 = 7. The answer is 7.")
        '7'
        """
        return extract_answer(
            text, answer_pattern=self.answer_pattern, answer_format=self.answer_format
        )

    # ------------------------------------------------------------------ rendering

    def render(self, **variables: Any) -> list[Message]:
        """The exact chat messages this prompt sends, with ``variables`` filled in.

        ``documents=`` (Context) and ``history=`` (Conversation) may be given here to
        replace the prompt's own for this call.
        """
        state = _pipeline.begin(self, self._with_documents(variables))
        if self.example_selector is None:
            return _pipeline.finish(self, state, self._d.fixed_selection)
        return _pipeline.finish(self, state, _examples.select(self, state))

    async def arender(self, **variables: Any) -> list[Message]:
        """Async twin of :meth:`render`: a retriever's ``aretrieve`` and a selector's
        ``aselect`` are awaited when they have them."""
        state = _pipeline.begin(self, await self._awith_documents(variables))
        return _pipeline.finish(self, state, await _examples.aselect(self, state))

    def _with_documents(self, variables: dict[str, Any]) -> dict[str, Any]:
        """Hook: the variables with documents added (Context retrieves here)."""
        return variables

    async def _awith_documents(self, variables: dict[str, Any]) -> dict[str, Any]:
        return variables
