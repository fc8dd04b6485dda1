"""The render pipeline: what ``Prompt.render()`` does, step by step.

1. :func:`begin`: the variables checked (or validated against ``inputs``), untrusted
   values neutralised, the template and the instruction rendered, the user message built,
   the history trimmed; everything that does not depend on which examples are shown.
2. the examples chosen (:mod:`._examples`);
3. :func:`finish`: the system message (cached per prompt for each instruction text), the
   example turns (cached per prompt; their messages shared between prompts), the history,
   the user message.

The text of each part comes from the prompt's layout (:mod:`._layout`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from .._errors import InputValidationError, PromptError
from .._render import check_variables, render_compiled
from .._types import Message, fast_message
from ._answers import ANSWER
from ._history import trim_history
from ._layout import fence_need
from ._media_vars import attach_document_media, refuse_in_text, split_media, swap_media
from ._neutralise import neutralise_values
from ._parts import Document, Example, validate_documents, validate_history

if TYPE_CHECKING:
    from ._prompt import Prompt

__all__ = ["RESERVED", "RenderState", "begin", "example_pair", "finish", "system_message"]

#: Variable names that a technique consumes itself; they are never template variables.
RESERVED = frozenset({"documents", "history", "params", "output"})


class RenderState:
    """What a render computed before the examples are chosen."""

    __slots__ = ("documents", "history", "instruction", "need", "user", "variables")

    def __init__(
        self,
        variables: dict[str, Any],
        documents: list[Document],
        history: list[Message],
        need: int,
        instruction: str | None,
        user: str | tuple[Any, ...],
    ) -> None:
        self.variables = variables
        self.documents = documents
        self.history = history
        self.need = need
        self.instruction = instruction
        self.user = user


def example_vars(ex: Example, names: Sequence[str]) -> dict[str, Any]:
    """The template variables of an example's input (``names``: the template's, sorted)."""
    if isinstance(ex.input, str):
        return {names[0]: ex.input}
    return dict(ex.input)


def begin(p: Prompt, variables: dict[str, Any]) -> RenderState:
    """Everything of a render that does not depend on which examples are shown."""
    d = p._d
    label = p.label
    documents = p.documents
    history = p.history
    if "documents" in variables:
        documents = validate_documents(variables.pop("documents"), label)
    if "history" in variables:
        history = validate_history(variables.pop("history"), label)
    if p.inputs is not None:
        variables = _validate_inputs(p, variables)
    elif variables.keys() != d.required:
        check_variables(
            variables, d.required, name=label, extra_vars=p.extra_vars, optional=RESERVED
        )
    if p.neutralise_untrusted and (p.delimit or p.untrusted or documents):
        documents = neutralise_values(
            variables,
            documents,
            delimit=p.delimit,
            untrusted=p.untrusted,
            special_tokens=p.special_tokens,
            label=label,
        )
    if p._requires_documents and not documents:
        raise PromptError(
            f"{label} needs documents: pass documents=[...] to render()/run() or set "
            "them on the prompt."
        )

    # media values (pk.Image, ...) render as markers, split into parts below
    table: list[Any] = []
    swapped = swap_media(variables, table)
    rendered = variables if swapped is None else swapped[0]
    media_names = {} if swapped is None else swapped[1]
    if documents and any(doc.media for doc in documents):
        documents, doc_media = attach_document_media(documents, table)
        media_names.update(doc_media)
    body = render_compiled(d.body, rendered, name=f"{label} template")
    # the fence: one longer than any run of '<' in any text of the user message
    need = d.fence
    if "<<<" in body:
        need = max(need, fence_need(body))
    for name in p.delimit:
        value = variables[name]
        if not isinstance(value, str):
            raise PromptError(
                f"{label}: delimited variable {name!r} must be a str, got "
                f"{type(value).__name__}; convert it first."
            )
        if "<<<" in value:
            need = max(need, fence_need(value))
    for doc in documents:
        if "<<<" in doc.text or (doc.title and "<<<" in doc.title):
            need = max(need, fence_need(doc.text), fence_need(doc.title or ""))

    instruction = d.static_instruction
    if instruction is None and d.instr is not None:
        instruction = render_compiled(d.instr, rendered, name=f"{label} instruction")
        if swapped is not None:
            refuse_in_text(instruction, "the instruction", label)
    text = d.layout.user(
        body,
        documents,
        [(name, variables[name]) for name in p.delimit],
        need,
        p.reasoning,
        label,
    )
    user = split_media(text, table, media_names, label) if table else text
    if history:
        history = trim_history(
            history,
            max_turns=p.max_turns,
            max_history_tokens=p.max_history_tokens,
            token_counter=p.token_counter,
        )
    return RenderState(variables, documents, history, need, instruction, user)


def system_message(p: Prompt, state: RenderState, inline: tuple[int, ...]) -> str:
    """The system message's text (``inline``: the examples shown in it, if any)."""
    d = p._d
    documents = state.documents
    has_sections = bool(p.delimit or documents)
    key: tuple[Any, ...] = (
        state.instruction,
        state.need,
        has_sections,
        documents[0].id if documents else None,
    )
    if inline:
        key += inline
    system = d.system_cache.get(key)
    if system is None:
        o, c = "<" * state.need, ">" * state.need
        context = {
            **d.context,
            "instruction": state.instruction or "",
            "has_documents": bool(documents),
            "first_document_id": documents[0].id if documents else "",
            "has_sections": has_sections,
            "open_marker": f"{o}LABEL{c}",
            "close_marker": f"{o}END LABEL{c}",
            "inline_examples": _inline_examples(p, state.need, inline),
        }
        system = d.layout.system(context, p.label)
        if len(d.system_cache) > 64:
            d.system_cache.clear()
        d.system_cache[key] = system
    return system


def finish(p: Prompt, state: RenderState, selected: tuple[int, ...]) -> list[Message]:
    """The messages, with the examples ``selected`` (indices into ``p.examples``)."""
    turns = p.examples_layout == "turns"
    system = system_message(p, state, () if turns else selected)
    messages: list[Message] = [fast_message("system", system)] if system else []
    if selected and turns:
        messages.extend(_example_messages(p, state.need, selected))
    if state.history:
        messages.extend(state.history)
    if not state.user and not messages:
        raise PromptError(
            f"{p.label} renders no message: give it an instruction, a template or input."
        )
    messages.append(fast_message("user", state.user))
    return messages


def _validate_inputs(p: Prompt, variables: dict[str, Any]) -> dict[str, Any]:
    assert p.inputs is not None
    try:
        model = p.inputs.model_validate(variables)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(inputs)"
            lines.append(f"{loc}: {err['msg']}")
        raise InputValidationError(
            f"{p.label} inputs failed validation against {p.inputs.__name__}: "
            + "; ".join(lines)
            + ". Fix the values passed to render()/run().",
            errors=[dict(e) for e in exc.errors()],
        ) from None
    values = {k: getattr(model, k) for k in type(model).model_fields}
    missing = p._d.required - set(values)
    if missing:
        check_variables(values, p._d.required, name=p.label, extra_vars="ignore")
    return values


# --------------------------------------------------------------------------- examples as text


def _example_parts(
    p: Prompt, examples: Iterable[Example], need: int
) -> list[tuple[Any, str | None, str]]:
    """Each example as (user message text, rationale, output in the answer format)."""
    d = p._d
    label = p.label
    names, body, layout, delimit = d.names, d.body, d.layout, p.delimit
    answer_format = p.answer_format
    if not answer_format or ANSWER not in answer_format:
        answer_format = None
    bare = not delimit and "user" not in layout.custom
    body_name = f"{label} template"
    out = []
    for ex in examples:
        variables = example_vars(ex, names)
        # a str input (the common case) holds no media
        swapped = None
        if not isinstance(ex.input, str):
            table: list[Any] = []
            swapped = swap_media(variables, table)
        user: Any = render_compiled(
            body, variables if swapped is None else swapped[0], name=body_name
        )
        if not bare:
            delimited = [(name, variables[name]) for name in delimit]
            user = layout.user(user, (), delimited, need, None, label)
        if swapped is not None:
            user = split_media(user, table, swapped[1], f"{label} example")
        output = ex.output
        if ex.rationale and answer_format is not None:
            output = answer_format.replace(ANSWER, output)
        out.append((user, ex.rationale, output))
    return out


def _inline_examples(p: Prompt, need: int, selected: tuple[int, ...]) -> list[dict[str, Any]]:
    examples = p.examples
    out = []
    for user, rationale, output in _example_parts(p, (examples[i] for i in selected), need):
        if not isinstance(user, str):
            raise PromptError(
                f"{p.label}: an example with an image, audio or file cannot be shown inline "
                "in the system message; use examples_layout='turns' (the default)."
            )
        out.append({"input": user, "rationale": rationale, "output": output})
    return out


def _example_pairs(p: Prompt, examples: Iterable[Example], need: int) -> list[tuple[Any, str]]:
    """Each example as its (user, assistant) message contents."""
    layout, label = p._d.layout, p.label
    return [
        (user, layout.render("few_shot_output", {"rationale": r, "output": o}, label))
        for user, r, o in _example_parts(p, examples, need)
    ]


def example_pair(p: Prompt, ex: Example, need: int) -> tuple[Any, str]:
    """The (user, assistant) message contents of one example."""
    return _example_pairs(p, (ex,), need)[0]


def _example_messages(p: Prompt, need: int, selected: tuple[int, ...]) -> list[Message]:
    d = p._d
    key = (need, selected)
    cached = d.examples_cache.get(key)
    if cached is not None:
        return cached
    examples = p.examples
    out: list[Message] = []
    for user, assistant in _example_pairs(p, (examples[i] for i in selected), need):
        out.append(_shared_message("user", user))
        out.append(_shared_message("assistant", assistant))
    if len(d.examples_cache) > 64:
        d.examples_cache.clear()
    d.examples_cache[key] = out
    return out


_SHARED: dict[tuple[str, Any], Message] = {}


def _shared_message(role: Literal["user", "assistant"], content: Any) -> Message:
    """An example's message. Messages are frozen values, so prompts whose examples render
    to the same texts (prompts built per request from the same examples) share them."""
    key = (role, content)
    message = _SHARED.get(key)
    if message is None:
        if len(_SHARED) >= 4096:
            _SHARED.clear()
        message = _SHARED[key] = fast_message(role, content)
    return message
