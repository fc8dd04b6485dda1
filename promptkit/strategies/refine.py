"""Iterative refinement: draft, critique, revise, until good enough or out of rounds.

>>> import promptkit as pk
>>> from promptkit.strategies import Refine
>>> draft = pk.ZeroShot(instruction="Write a slogan for the product.", template="{{ product }}")
>>> critique = pk.ZeroShot(instruction="Critique the slogan. Say LGTM if it needs no change.",
...                        template="{{ draft }}")
>>> revise = pk.ZeroShot(instruction="Rewrite the slogan to address the critique.",
...                      template="Slogan: {{ draft }}\\nCritique: {{ critique }}")
>>> llm = pk.LLM(pk.FakeBackend(["Tea good", "Too blunt.", "Tea, done well.", "LGTM"]))
>>> refine = Refine(draft, critique, revise, rounds=3, stop=lambda d, c: "LGTM" in c)
>>> result = refine.run(llm, product="loose-leaf tea")
>>> result.output, result.stopped_by, len(result.rounds)
('Tea, done well.', 'stop', 2)
>>> [r.revision for r in result.rounds]
['Tea, done well.', None]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .._errors import MissingVariablesError, ParameterError
from .._params import merge_params
from .._types import Completion, Usage
from ..prompts import PromptBase
from ._errors import ChainWiringError
from ._plan import (
    Call,
    Plan,
    Strategy,
    enter,
    leave,
    one,
    prompt_params,
    prompt_variables,
    rendered,
    select,
)

if TYPE_CHECKING:
    from .._client import LLM
    from .._params import SamplingParams

__all__ = ["Refine", "RefineResult", "RefineRound", "accepts"]

StopReason = Literal["stop", "judge", "rounds"]

_YES = re.compile(
    r"^\W*(yes|pass|passed|accept|accepted|approve|approved|good|lgtm|ok|okay|done|true)\b",
    re.IGNORECASE,
)


def accepts(verdict: str) -> bool:
    """The default reading of a judge's reply: it *starts* with yes / pass / accept(ed) /
    approve(d) / good / LGTM / OK / done / true (any case, punctuation and markup ignored).

    >>> accepts("**Yes** - it reads well."), accepts("No: too long."), accepts("PASS")
    (True, False, True)
    """
    return bool(_YES.match(verdict.strip()))


@dataclass(frozen=True)
class RefineRound:
    """One round: the ``draft`` that was critiqued, the ``critique``, the judge's
    ``verdict`` (when there is a judge), whether the loop ``stopped`` here, and the
    ``revision`` it produced (None when it stopped)."""

    number: int
    draft: str
    critique: str
    verdict: str | None = None
    stopped: bool = False
    revision: str | None = None
    completions: tuple[Completion, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class RefineResult:
    """The refined text (``output``), the first draft, every round, why the loop ended
    (``stopped_by``: ``"stop"`` the condition held, ``"judge"`` the judge accepted,
    ``"rounds"`` out of rounds) and the usage summed over every call."""

    output: str
    first_draft: str
    rounds: tuple[RefineRound, ...]
    stopped_by: StopReason
    usage: Usage = field(default_factory=Usage, repr=False)
    completions: tuple[Completion, ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        """The refined text."""
        return self.output

    @property
    def drafts(self) -> list[str]:
        """Every version, first draft to final."""
        return [self.first_draft, *(r.revision for r in self.rounds if r.revision is not None)]


class Refine(Strategy[RefineResult]):
    """Draft, then up to ``rounds`` rounds of critique and revision.

    Each round: the ``critique`` prompt gets the current draft (as ``{{ draft }}``); then
    the stop condition is checked; if it does not hold, the ``revise`` prompt gets the
    draft and the critique (``{{ draft }}``, ``{{ critique }}``) and its reply is the new
    draft. The condition is ``stop(draft, critique) -> bool`` and/or a ``judge`` prompt
    (given ``draft``, ``critique`` and the inputs it uses) whose reply ``accept`` reads
    (default :func:`accepts`: a reply starting with "yes", "pass", "LGTM", ...). Without
    either, all rounds run.

    Every prompt gets the run's variables that it uses (``documents`` and ``history`` go to
    all). ``draft_var`` / ``critique_var`` rename ``draft`` / ``critique``. Missing
    variables are reported before any call.
    """

    def __init__(
        self,
        draft: PromptBase,
        critique: PromptBase,
        revise: PromptBase,
        *,
        rounds: int = 2,
        stop: Callable[[str, str], bool] | None = None,
        judge: PromptBase | None = None,
        accept: Callable[[str], bool] = accepts,
        draft_var: str = "draft",
        critique_var: str = "critique",
        params: SamplingParams | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
            raise ParameterError(f"rounds={rounds!r}: expected a whole number >= 0.")
        for role, p in (("draft", draft), ("critique", critique), ("revise", revise),
                        ("judge", judge)):  # fmt: skip
            if p is not None and not isinstance(p, PromptBase):
                raise ParameterError(f"Refine {role} must be a prompt; got {type(p).__name__}.")
        problems = []
        crit_vars = prompt_variables(critique)
        if crit_vars is not None and draft_var not in crit_vars:
            problems.append(
                f"the critique prompt does not use {{{{ {draft_var} }}}}, so it would never see "
                f"the draft (it uses: {', '.join(sorted(crit_vars)) or 'nothing'})."
            )
        rev_vars = prompt_variables(revise)
        if rev_vars is not None and critique_var not in rev_vars:
            problems.append(
                f"the revise prompt does not use {{{{ {critique_var} }}}}, so it would never "
                f"see the critique (it uses: {', '.join(sorted(rev_vars)) or 'nothing'})."
            )
        if problems:
            raise ChainWiringError(problems)
        self.draft = draft
        self.critique = critique
        self.revise = revise
        self.rounds = rounds
        self.stop = stop
        self.judge = judge
        self.accept = accept
        self.draft_var = draft_var
        self.critique_var = critique_var
        self.params = params
        self.name = name

    def __repr__(self) -> str:
        return f"Refine({self.draft.label}, rounds={self.rounds})"

    @property
    def variables(self) -> frozenset[str] | None:
        """What the prompts need besides the draft and critique (None if a prompt does not
        say)."""
        names: set[str] = set()
        for p in (self.draft, self.critique, self.revise, self.judge):
            if p is None:
                continue
            got = prompt_variables(p)
            if got is None:
                return None
            names |= got
        return frozenset(names - {self.draft_var, self.critique_var})

    def plan(
        self, llm: LLM, variables: Mapping[str, Any], params: SamplingParams | None = None
    ) -> Plan[RefineResult]:
        """Draft, critique, revise (see the class doc); a generator of calls."""
        needed = self.variables
        if needed is not None:
            missing = needed - set(variables)
            if missing:
                raise MissingVariablesError(sorted(missing), prompt=self.label)
        own = merge_params(self.params, params)
        base = {k: v for k, v in variables.items() if k not in (self.draft_var, self.critique_var)}
        every: list[Completion] = []

        def ask(prompt: PromptBase, extra: Mapping[str, str]) -> Plan[Completion]:
            given = select(prompt, {**base, **extra})
            messages = yield from rendered(prompt, given)
            done = yield from one(Call(messages, prompt_params(prompt, own)))
            every.append(done)
            return done

        first = yield from ask(self.draft, {})
        current = first.text
        rounds: list[RefineRound] = []
        stopped_by: StopReason = "rounds"
        for number in range(1, self.rounds + 1):
            span = yield from enter(
                "promptkit.refine.round",
                {"promptkit.strategy": self.label, "promptkit.round": number},
            )
            crit = yield from ask(self.critique, {self.draft_var: current})
            notes = crit.text
            parts = [crit]
            verdict: str | None = None
            done_now = False
            if self.stop is not None and self.stop(current, notes):
                stopped_by, done_now = "stop", True
            elif self.judge is not None:
                judged = yield from ask(
                    self.judge, {self.draft_var: current, self.critique_var: notes}
                )
                parts.append(judged)
                verdict = judged.text
                if self.accept(verdict):
                    stopped_by, done_now = "judge", True
            if done_now:
                rounds.append(
                    RefineRound(number, current, notes, verdict, True, None, tuple(parts))
                )
                yield from leave(span, {"promptkit.refine.accepted": True})
                break
            revised = yield from ask(
                self.revise, {self.draft_var: current, self.critique_var: notes}
            )
            parts.append(revised)
            rounds.append(
                RefineRound(number, current, notes, verdict, False, revised.text, tuple(parts))
            )
            current = revised.text
            yield from leave(span, {"promptkit.refine.accepted": False})
        usage = Usage()
        for c in every:
            usage = usage + c.usage
        return RefineResult(current, first.text, tuple(rounds), stopped_by, usage, tuple(every))
