"""Chains: prompts run in sequence, the named outputs of one step feeding the next.

>>> import promptkit as pk
>>> from promptkit.strategies import Chain, ChainWiringError, Step
>>> outline = pk.ZeroShot(instruction="Outline an essay on the topic.", template="{{ topic }}")
>>> essay = pk.ZeroShot(instruction="Write the essay from the outline.", template="{{ outline }}")
>>> chain = Chain(Step(outline, output="outline"), Step(essay, output="essay"), inputs=["topic"])
>>> llm = pk.LLM(pk.FakeBackend(["1. Bees 2. Flowers", "Bees visit flowers..."]))
>>> result = chain.run(llm, topic="pollination")
>>> result["outline"], result.output
('1. Bees 2. Flowers', 'Bees visit flowers...')
>>> [s.name for s in result.steps]
['outline', 'essay']

The wiring is checked when the chain is built, before any call:

>>> try:
...     Chain(Step(essay, output="essay"), inputs=["topic"])
... except ChainWiringError as exc:
...     print(exc)  # doctest: +ELLIPSIS
The chain is wired wrongly: step 'essay' needs 'outline', which nothing provides (...
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .._errors import ParameterError
from .._params import merge_params
from .._render import check_variables
from .._types import Completion, Usage
from ..prompts import PromptBase
from ._errors import ChainStepError, ChainWiringError, ExtractionError
from ._plan import (
    PASS_THROUGH,
    Call,
    Plan,
    Strategy,
    one,
    prompt_params,
    prompt_variables,
    rendered,
    traced,
)
from .extract import Extractor, apply
from .structured import structured_plan

if TYPE_CHECKING:
    from .._client import LLM
    from .._params import SamplingParams

__all__ = ["Chain", "ChainResult", "Step", "StepResult"]

Runner = PromptBase | Strategy[Any]


class Step:
    """One step of a :class:`Chain`: a prompt (or a strategy such as
    :class:`~promptkit.SelfConsistency`, :class:`~promptkit.Refine` or another chain) and
    what it reads and writes.

    - ``name``: the step's name in results and errors (default: the prompt's ``name``, else
      ``output``, else ``step1``, ``step2``, ...).
    - ``output``: the chain variable the step's value is stored under (default: the name).
      The value is the reply text; or, with ``extract``, what the extractor returns (a
      reply with nothing to extract fails the step); or, with ``model`` (a pydantic
      model), the validated structured output (templates can use ``{{ plan.title }}``);
      for a strategy, its result's ``output`` (a Vote's answer, a refined text, ...).
    - ``outputs``: more chain variables, each extracted from the reply text by its
      extractor: ``outputs={"title": extract.regex("Title: (.*)")}``.
    - ``inputs``: ``{prompt variable: chain variable}`` for variables named differently in
      the chain; other variables are taken by their own name. ``documents`` and ``history``
      reach a step only when mapped: ``inputs={"documents": "docs"}``.
    - ``params``: sampling parameters for this step (over the prompt's own; a run's
      ``params`` override them). ``max_attempts``: for ``model`` steps (see
      :func:`~promptkit.structured`).
    """

    def __init__(
        self,
        runner: Runner,
        *,
        name: str | None = None,
        output: str | None = None,
        extract: Extractor[Any] | None = None,
        model: type[BaseModel] | None = None,
        outputs: Mapping[str, Extractor[Any]] | None = None,
        inputs: Mapping[str, str] | None = None,
        params: SamplingParams | None = None,
        max_attempts: int = 3,
    ) -> None:
        if not isinstance(runner, (PromptBase, Strategy)):
            raise ParameterError(
                f"A Step runs a prompt or a strategy (SelfConsistency, Refine, Chain, ...); got "
                f"{type(runner).__name__}."
            )
        if extract is not None and model is not None:
            raise ParameterError("A Step takes extract= or model=, not both.")
        if isinstance(runner, Strategy) and (extract is not None or model is not None):
            raise ParameterError(
                f"extract= and model= apply to prompt steps; {runner.label} is a strategy (its "
                "step value is its result's output). Use outputs={...} to extract more."
            )
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ParameterError(f"model must be a pydantic model class; got {model!r}.")
        self.runner = runner
        self.name = name or getattr(runner, "name", None) or output
        self.output = output
        self.extract = extract
        self.model = model
        self.outputs = dict(outputs or {})
        self.inputs = dict(inputs or {})
        self.params = params
        self.max_attempts = max_attempts

    def __repr__(self) -> str:
        label = getattr(self.runner, "label", type(self.runner).__name__)
        return f"Step({label}, name={self.name!r}, output={self.output!r})"

    @property
    def uses(self) -> frozenset[str] | None:
        """The runner's variables (None when it does not say)."""
        if isinstance(self.runner, Strategy):
            return self.runner.variables
        return prompt_variables(self.runner)

    def produces(self) -> list[str]:
        """The chain variables this step writes: ``output`` then ``outputs``."""
        return [self.output or self.name or "", *self.outputs]


@dataclass(frozen=True)
class StepResult:
    """What one step did: the variables it was given, the value(s) it produced, the
    reply text, the full result (a Completion, StructuredResult, Vote, RefineResult, ...)
    and its usage."""

    name: str
    index: int
    variables: dict[str, Any]
    output: Any
    outputs: dict[str, Any]
    text: str | None
    result: Any = field(repr=False)
    usage: Usage = field(default_factory=Usage, repr=False)


@dataclass(frozen=True)
class ChainResult:
    """Every step's result, in order, and all the chain's variables.

    ``result["name"]`` is a variable (an input or a step's output); ``output`` is the last
    step's value; ``usage`` is summed over every call of every step.
    """

    steps: tuple[StepResult, ...]
    values: dict[str, Any]
    usage: Usage = field(default_factory=Usage)

    @property
    def output(self) -> Any:
        """The last step's value (None when no step completed)."""
        return self.steps[-1].output if self.steps else None

    @property
    def text(self) -> str | None:
        """The last step's reply text."""
        return self.steps[-1].text if self.steps else None

    def __getitem__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.values), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"{name!r} is not a variable of this chain result.{hint} It has: "
                f"{', '.join(map(repr, self.values)) or 'none'}."
            ) from None

    def step(self, name: str) -> StepResult:
        """The result of the step called ``name``."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"No step named {name!r}; the steps are {[s.name for s in self.steps]}.")


def _phrase(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names) or "none"


class Chain(Strategy[ChainResult]):
    """A sequence of steps; each step's named outputs become variables of the steps after it.

    ``inputs`` names the variables the caller gives to :meth:`run`. Built, the chain checks
    that every variable of every step is provided by the inputs or an earlier step, that
    no two steps write the same name, and that ``Step(inputs=...)`` maps real variables;
    the problems raise :class:`~promptkit.ChainWiringError` before any call is made.
    (A prompt that does not list its variables gets exactly its mapped ``inputs``, or all
    the variables when it maps none.)

    Every step's result is kept in :class:`ChainResult`. A failing step raises
    :class:`~promptkit.ChainStepError`, which names the step and holds the results of the
    steps before it (``.result``) and the original error (``.error``).

    A bare prompt is accepted as a step (its output is named after the prompt's ``name``,
    else ``step1``, ``step2``, ...). A chain is itself a strategy, so it can be a step.
    """

    def __init__(
        self, *steps: Step | Runner, inputs: Iterable[str] = (), name: str | None = None
    ) -> None:
        if isinstance(inputs, str):
            inputs = [inputs]
        self.inputs: tuple[str, ...] = tuple(inputs)
        self.name = name
        self.params = None
        resolved: list[Step] = []
        for i, s in enumerate(steps):
            step = copy.copy(s) if isinstance(s, Step) else Step(s)
            if step.name is None:
                step.name = f"step{i + 1}"
            if step.output is None:
                step.output = step.name
            resolved.append(step)
        if not resolved:
            raise ChainWiringError(["a chain needs at least one step."])
        self.steps: tuple[Step, ...] = tuple(resolved)
        self._check()

    def __repr__(self) -> str:
        names = ", ".join(repr(s.name) for s in self.steps)
        return f"Chain({names}, inputs={list(self.inputs)!r})"

    @property
    def variables(self) -> frozenset[str]:
        """The chain's inputs."""
        return frozenset(self.inputs)

    def _check(self) -> None:
        problems: list[str] = []
        provider: dict[str, str] = {name: "the chain's inputs" for name in self.inputs}
        if len(set(self.inputs)) != len(self.inputs):
            problems.append(f"the inputs {list(self.inputs)} name a variable twice.")
        names = [s.name for s in self.steps]
        for dup in sorted({n for n in names if names.count(n) > 1 and n is not None}):
            problems.append(f"two steps are named {dup!r}; give them distinct names.")
        later: dict[str, str] = {}
        for step in self.steps:
            for out in step.produces():
                later.setdefault(out, str(step.name))
        for step in self.steps:
            label = f"step {step.name!r}"
            uses = step.uses
            if uses is not None:
                for var in step.inputs:
                    if var not in uses and var not in PASS_THROUGH:
                        close = difflib.get_close_matches(var, sorted(uses), n=1)
                        hint = f" (did you mean {close[0]!r}?)" if close else ""
                        problems.append(
                            f"{label} maps {var!r}{hint}, which its prompt does not use (it "
                            f"uses: {_phrase(sorted(uses))})."
                        )
                needed = {step.inputs.get(v, v) for v in uses}
                needed |= {src for v, src in step.inputs.items() if v in PASS_THROUGH}
            else:
                needed = set(step.inputs.values())
            for var in sorted(needed):
                if var in provider:
                    continue
                if later.get(var) == step.name:
                    problems.append(f"{label} needs {var!r}, which only it writes itself.")
                    continue
                if var in later:
                    problems.append(
                        f"{label} needs {var!r}, which only the later step {later[var]!r} "
                        "provides; reorder the steps."
                    )
                    continue
                known = sorted(provider)
                close = difflib.get_close_matches(var, known, n=1)
                hint = f" Is {close[0]!r} a misspelling of it?" if close else ""
                earlier = [k for k in known if provider[k] != "the chain's inputs"]
                problems.append(
                    f"{label} needs {var!r}, which nothing provides (the chain's inputs: "
                    f"{_phrase(self.inputs)}"
                    + (f"; earlier outputs: {_phrase(earlier)}" if earlier else "")
                    + f").{hint} Add it to Chain(inputs=[...]) or map it with "
                    f"Step(inputs={{{var!r}: ...}})."
                )
            for out in step.produces():
                if out in provider:
                    problems.append(
                        f"{label} writes {out!r}, which {provider[out]} already provide"
                        + ("" if provider[out] == "the chain's inputs" else "s")
                        + "; give it another output name."
                    )
                else:
                    provider[out] = f"step {step.name!r}"
            # later[...] pointed at the first writer; drop this step's entries once passed
            for out in step.produces():
                if later.get(out) == step.name:
                    del later[out]
        if problems:
            raise ChainWiringError(problems)

    # ------------------------------------------------------------------ running

    def plan(
        self, llm: LLM, variables: Mapping[str, Any], params: SamplingParams | None = None
    ) -> Plan[ChainResult]:
        """Run the steps in order (see the class doc); a generator of calls. Traced as a
        ``promptkit.chain`` span with a ``promptkit.chain.step`` span per step."""
        return traced(
            "promptkit.chain",
            {"promptkit.strategy": self.label, "promptkit.chain.steps": len(self.steps)},
            self._plan(llm, variables, params),
        )

    def _plan(
        self, llm: LLM, variables: Mapping[str, Any], params: SamplingParams | None
    ) -> Plan[ChainResult]:
        check_variables(variables.keys(), frozenset(self.inputs), name=self.label)
        values: dict[str, Any] = dict(variables)
        results: list[StepResult] = []
        usage = Usage()
        for index, step in enumerate(self.steps):
            name = str(step.name)
            try:
                given = _gather(step, values)
                result = yield from traced(
                    "promptkit.chain.step",
                    {"promptkit.step.name": name, "promptkit.step.index": index},
                    _run_step(step, index, given, llm, params),
                )
            except Exception as exc:
                partial = ChainResult(tuple(results), dict(values), usage)
                raise ChainStepError(
                    f"{self.label}: step {name!r} ({index + 1} of {len(self.steps)}) failed: "
                    f"{type(exc).__name__}: {exc}",
                    step=name,
                    index=index,
                    result=partial,
                    error=exc,
                ) from exc
            results.append(result)
            values.update(result.outputs)
            usage = usage + result.usage
        return ChainResult(tuple(results), values, usage)


def _gather(step: Step, values: Mapping[str, Any]) -> dict[str, Any]:
    uses = step.uses
    if uses is None:
        if step.inputs:
            return {v: values[src] for v, src in step.inputs.items()}
        return dict(values)
    given = {v: values[step.inputs.get(v, v)] for v in uses}
    for v in PASS_THROUGH:
        src = step.inputs.get(v)
        if src is not None:
            given[v] = values[src]
    return given


def _run_step(
    step: Step, index: int, given: dict[str, Any], llm: LLM, params: SamplingParams | None
) -> Plan[StepResult]:
    runner = step.runner
    call_params = merge_params(step.params, params)
    text: str | None
    result: Any
    if isinstance(runner, Strategy):
        result = yield from runner.plan(llm, given, call_params)
        value = runner.value(result)
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            text = value if isinstance(value, str) else None
        usage = getattr(result, "usage", Usage())
    elif step.model is not None:
        result = yield from structured_plan(
            runner, llm, step.model, given, call_params, max_attempts=step.max_attempts
        )
        value, text, usage = result.value, result.text, result.usage
    else:
        messages = yield from rendered(runner, given)
        done: Completion = yield from one(Call(messages, prompt_params(runner, call_params)))
        result, text, usage = done, done.text, done.usage
        value = text
        if step.extract is not None:
            value, why = apply(step.extract, text)
            if value is None:
                raise ExtractionError(f"the extractor found no value: {why}.", text=text)
    outputs: dict[str, Any] = {str(step.output): value}
    for out, extractor in step.outputs.items():
        source = text if text is not None else str(value)
        got, why = apply(extractor, source)
        if got is None:
            raise ExtractionError(f"output {out!r}: {why}.", text=source)
        outputs[out] = got
    return StepResult(
        name=str(step.name),
        index=index,
        variables=given,
        output=value,
        outputs=outputs,
        text=text,
        result=result,
        usage=usage,
    )
