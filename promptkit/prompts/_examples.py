"""Few-shot example selection: the fixed examples, or those an example selector chooses
for the input (sync and async), and the checks of examples against the template.

>>> from promptkit import Example, FewShot
>>> p = FewShot(examples=[Example(input="a", output="1"), Example(input="b", output="2")],
...             max_examples=1)
>>> p.select_examples(input="b")
[Example(input='a', output='1', rationale=None)]
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import PromptError
from ..retrieval._protocols import ExampleCandidates, ExampleSelector, variables_text
from ._layout import fence_need
from ._parts import Example
from ._pipeline import RenderState, example_pair, system_message

if TYPE_CHECKING:
    from ._prompt import Prompt

__all__ = ["aselect", "check_examples", "select"]


def check_examples(examples: Sequence[Example], names: Sequence[str], template: str) -> int:
    """Check that every example gives exactly the template's variables ``names``; returns
    the fence length the examples need (see :func:`~._layout.fence_need`)."""
    need = fence_need(template)
    for i, ex in enumerate(examples):
        if isinstance(ex.input, str):
            if len(names) != 1:
                raise ValueError(
                    f"example {i} gives its input as a string, but the template uses "
                    f"{len(names)} variables ({', '.join(names) or 'none'}): give the input "
                    "as a dict of them"
                )
            if "<<<" in ex.input:
                need = max(need, fence_need(ex.input))
            continue
        missing = set(names) - set(ex.input)
        extra = set(ex.input) - set(names)
        if missing or extra:
            raise ValueError(
                f"example {i} input must have exactly the template's variables "
                f"{list(names)}; missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        for value in ex.input.values():
            if isinstance(value, str) and "<<<" in value:
                need = max(need, fence_need(value))
    return need


def candidates(prompt: Prompt, state: RenderState) -> ExampleCandidates:
    """What the prompt's example selector chooses from, for this render."""
    names = prompt._d.names
    query = variables_text({n: state.variables[n] for n in names if n in state.variables})
    examples = prompt.examples

    def example_messages(i: int) -> tuple[str, str]:
        return example_pair(prompt, examples[i], state.need)

    def other_messages() -> tuple[str | tuple[Any, ...], ...]:
        text = system_message(prompt, state, ())
        rest = (*(m.content for m in state.history), state.user)
        return (text, *rest) if text else rest

    return ExampleCandidates(
        query, examples, prompt._d.example_texts, example_messages, other_messages
    )


def checked(prompt: Prompt, selector: ExampleSelector, picked: Any) -> tuple[int, ...]:
    """A selector's answer as distinct indices, cut to ``max_examples``; a clear error
    for anything else."""
    n = len(prompt.examples)
    out: list[int] = []
    problem = ""
    try:
        for value in picked:
            i = operator.index(value)
            if not 0 <= i < n or i in out:
                problem = f"index {i} is out of range or repeated"
                break
            out.append(i)
    except TypeError as exc:
        problem = str(exc)
    if problem:
        raise PromptError(
            f"{prompt.label}: the example selector {selector!r} returned "
            f"{picked!r} ({problem}); it must return distinct indices from 0 to {n - 1}."
        )
    if prompt.max_examples is not None:
        out = out[: prompt.max_examples]
    return tuple(out)


def select(prompt: Prompt, state: RenderState) -> tuple[int, ...]:
    """The indices of the examples this render shows."""
    selector = prompt.example_selector
    if selector is None:
        return prompt._d.fixed_selection
    if not prompt.examples:
        return ()
    return checked(prompt, selector, selector.select(candidates(prompt, state)))


async def aselect(prompt: Prompt, state: RenderState) -> tuple[int, ...]:
    """Async twin of :func:`select`: the selector's ``aselect`` when it has one, else its
    ``select`` in a worker thread."""
    selector = prompt.example_selector
    if selector is None:
        return prompt._d.fixed_selection
    if not prompt.examples:
        return ()
    found = candidates(prompt, state)
    aselect_ = getattr(selector, "aselect", None)
    if aselect_ is None:
        import asyncio  # not loaded by `import promptkit`

        return checked(prompt, selector, await asyncio.to_thread(selector.select, found))
    return checked(prompt, selector, await aselect_(found))
