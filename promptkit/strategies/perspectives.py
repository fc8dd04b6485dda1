"""Perspectives run: ask each viewpoint separately (concurrently), then synthesise.

>>> import promptkit as pk
>>> from promptkit.strategies import PerspectivesRun
>>> dam = pk.Perspectives(perspectives=["Economist", "Ecologist"], synthesis="Weigh both.")
>>> def reply(request):  # the viewpoints run concurrently: answer by the role asked
...     system = request.messages[0].content
...     if "Economist" in system:
...         return "Cheap power."
...     return "Lost river habitat." if "Ecologist" in system else "Build, with fish ladders."
>>> llm = pk.LLM(pk.FakeBackend(reply))
>>> result = PerspectivesRun(dam).run(llm, input="Should we build the dam?")
>>> result.answers
{'Economist': 'Cheap power.', 'Ecologist': 'Lost river habitat.'}
>>> result.synthesis
'Build, with fish ladders.'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import ParameterError
from .._params import merge_params
from .._types import Completion, Usage
from ..prompts import Perspectives, Prompt, PromptBase
from ._plan import (
    Call,
    Plan,
    Strategy,
    adrive,
    drive,
    one,
    prompt_params,
    prompt_variables,
    rendered,
    select,
    total_usage,
)

if TYPE_CHECKING:
    from .._client import LLM
    from .._params import SamplingParams

__all__ = ["PerspectivesResult", "PerspectivesRun", "arun_perspectives", "run_perspectives"]

DEFAULT_SYNTHESIS = "Weigh them and give one balanced answer."


@dataclass(frozen=True)
class PerspectivesResult:
    """Each viewpoint's answer (``answers``, by name, in the prompt's order), the synthesis
    (None when it was not asked for), every Completion and the usage summed over all."""

    answers: dict[str, str]
    synthesis: str | None
    completions: dict[str, Completion] = field(default_factory=dict, repr=False)
    synthesis_completion: Completion | None = field(default=None, repr=False)
    usage: Usage = field(default_factory=Usage, repr=False)

    @property
    def output(self) -> str:
        """The synthesis, or (without one) every answer under its name's heading."""
        return self.synthesis if self.synthesis is not None else format_answers(self.answers)

    @property
    def text(self) -> str:
        """Same as :attr:`output`."""
        return self.output


def format_answers(answers: Mapping[str, str]) -> str:
    """The answers as the synthesis sees them: a ``## name`` heading above each.

    >>> print(format_answers({"A": "yes", "B": "no"}))
    ## A
    yes
    <BLANKLINE>
    ## B
    no
    """
    return "\n\n".join(f"## {name}\n{text.strip()}" for name, text in answers.items())


def default_synthesis(prompt: Perspectives) -> Prompt:
    """The synthesis prompt used when none is given: the prompt's role, its ``synthesis``
    instruction, the answers in a delimited section and the original question."""
    instruction = "The marked section holds answers to the question from several perspectives. " + (
        prompt.synthesis or DEFAULT_SYNTHESIS
    )
    return Prompt(
        name="synthesis",
        role=prompt.role,
        instruction=instruction,
        template="{{ question }}",
        delimit=["answers"],
    )


class PerspectivesRun(Strategy[PerspectivesResult]):
    """Run a :class:`~promptkit.Perspectives` prompt one viewpoint at a time: each viewpoint
    is asked separately (``prompt.viewpoint(name)``, all concurrently), then a synthesis
    step combines the answers.

    The synthesis prompt (default: :func:`default_synthesis`, built from the prompt's
    ``synthesis`` instruction) gets ``question`` (the original user message), ``answers``
    (every answer under a ``## name`` heading) and the run's variables it uses.
    ``synthesize=False`` skips it.
    """

    def __init__(
        self,
        prompt: Perspectives,
        *,
        synthesis: PromptBase | None = None,
        synthesize: bool = True,
        params: SamplingParams | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(prompt, Perspectives):
            raise ParameterError(
                f"PerspectivesRun needs a Perspectives prompt; got {type(prompt).__name__}."
            )
        self.prompt = prompt
        self.synthesis = synthesis if synthesis is not None else default_synthesis(prompt)
        self.synthesize = synthesize
        self.params = params
        self.name = name or prompt.name

    def __repr__(self) -> str:
        names = [p.name for p in self.prompt.perspectives]
        return f"PerspectivesRun({names!r}, synthesize={self.synthesize})"

    @property
    def variables(self) -> frozenset[str] | None:
        """The prompt's variables (and those of a custom synthesis prompt)."""
        names = set(self.prompt.variables)
        if self.synthesize:
            synth = prompt_variables(self.synthesis)
            if synth is None:
                return None
            names |= synth - {"question", "answers"}
        return frozenset(names)

    def plan(
        self, llm: LLM, variables: Mapping[str, Any], params: SamplingParams | None = None
    ) -> Plan[PerspectivesResult]:
        """Every viewpoint in one concurrent batch, then the synthesis."""
        own = merge_params(self.params, params)
        given = select(self.prompt, variables)
        question = (yield from rendered(self.prompt, given))[-1].content
        names = [p.name for p in self.prompt.perspectives]
        calls = []
        for name in names:
            single = self.prompt.viewpoint(name)
            messages = yield from rendered(single, given)
            calls.append(Call(messages, prompt_params(single, own)))
        done: list[Completion] = yield calls
        completions = dict(zip(names, done, strict=True))
        answers = {name: c.text for name, c in completions.items()}
        synthesis: str | None = None
        synth_done: Completion | None = None
        if self.synthesize:
            available = {**variables, "question": question, "answers": format_answers(answers)}
            chosen = select(self.synthesis, available)
            messages = yield from rendered(self.synthesis, chosen)
            synth_done = yield from one(Call(messages, prompt_params(self.synthesis, own)))
            synthesis = synth_done.text
        every = [*done, *([synth_done] if synth_done is not None else [])]
        return PerspectivesResult(answers, synthesis, completions, synth_done, total_usage(every))


def run_perspectives(
    prompt: Perspectives,
    llm: LLM,
    *,
    synthesis: PromptBase | None = None,
    synthesize: bool = True,
    params: SamplingParams | None = None,
    **variables: Any,
) -> PerspectivesResult:
    """``PerspectivesRun(prompt, ...).run(llm, **variables)``: each viewpoint, then a
    synthesis."""
    run = PerspectivesRun(prompt, synthesis=synthesis, synthesize=synthesize)
    return drive(run.plan(llm, variables, params), llm)


async def arun_perspectives(
    prompt: Perspectives,
    llm: LLM,
    *,
    synthesis: PromptBase | None = None,
    synthesize: bool = True,
    params: SamplingParams | None = None,
    **variables: Any,
) -> PerspectivesResult:
    """Async twin of :func:`run_perspectives`."""
    run = PerspectivesRun(prompt, synthesis=synthesis, synthesize=synthesize)
    return await adrive(run.plan(llm, variables, params), llm)
