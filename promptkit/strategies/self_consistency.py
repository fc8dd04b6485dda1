"""Self-consistency: sample several replies, extract each one's answer, take the majority.

>>> import promptkit as pk
>>> from promptkit.strategies import SelfConsistency
>>> llm = pk.LLM(pk.FakeBackend([
...     "6 x 7 = 42. The answer is 42.",
...     "Six sevens are 42.0. The answer is 42.0.",
...     "6 x 7 = 41. The answer is 41.",
... ]))
>>> vote = SelfConsistency(pk.ChainOfThought(), k=3).run(llm, input="What is 6 x 7?")
>>> vote.answer, vote.counts, round(vote.agreement, 2), vote.tie
('42', {'42': 2, '41': 1}, 0.67, False)
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .._errors import ParameterError
from .._params import SamplingParams, merge_params
from .._types import Choice, Usage
from . import extract as _extract
from ._plan import (
    Call,
    Plan,
    Strategy,
    check_choices,
    one,
    prompt_params,
    prompt_variables,
    rendered,
    traced,
)
from .normalize import Normaliser, as_normaliser, canonical

if TYPE_CHECKING:
    from .._client import LLM
    from ..prompts import PromptBase
    from .extract import Extractor

__all__ = ["DEFAULT_TEMPERATURE", "Sample", "SelfConsistency", "Vote"]

T = TypeVar("T")

#: The temperature used when no layer of parameters sets one (greedy samples would all agree).
DEFAULT_TEMPERATURE = 0.7
#: The largest k (what one request with ``n`` may ask for).
MAX_K = 128


@dataclass(frozen=True)
class Sample(Generic[T]):
    """One sampled reply and the answer extracted from it.

    ``text`` is the whole reply (the reasoning and the answer line); ``answer`` is what the
    extractor returned and ``key`` its normalised form, the thing voted for. A sample with
    no answer has ``answer`` and ``key`` ``None`` and the reason in ``error``.
    """

    index: int
    text: str
    answer: T | None
    key: str | None
    finish_reason: str | None = None
    error: str | None = None

    @property
    def extracted(self) -> bool:
        """Whether an answer was extracted (and so voted)."""
        return self.key is not None

    @property
    def reasoning(self) -> str:
        """The whole reply: the reasoning that led to the answer."""
        return self.text


@dataclass(frozen=True)
class Vote(Generic[T]):
    """The result of :class:`SelfConsistency`.

    - ``answer``: the winning answer, as extracted from the first sample that gave it
      (``None`` when no sample had an extractable answer); ``key``: its normalised form.
    - ``counts``: votes by normalised answer, most votes first (ties in order of first
      appearance); samples with no extractable answer are counted under ``None``, last.
    - ``agreement``: the winner's votes divided by all samples taken, unextractable ones
      included (so they lower it).
    - ``tie`` / ``tied``: whether several answers share the top count, and which
      (winner first). **Tie rule**: among tied answers, the one that appeared first (the
      lowest sample index) wins.
    - ``samples``: every sample, in order, with its text and extracted answer.
    - ``usage``: tokens summed over every call; ``requests``: HTTP requests (or local calls)
      made; ``k``: samples asked for; ``calls_saved``: samples not drawn thanks to early
      stopping (0 without it); ``seed``: the first seed used, when seeds were sent.
    """

    answer: T | None
    key: str | None
    counts: dict[str | None, int]
    agreement: float
    tie: bool
    tied: tuple[str, ...]
    samples: tuple[Sample[T], ...] = field(repr=False)
    usage: Usage = field(default_factory=Usage, repr=False)
    k: int = 0
    requests: int = 0
    calls_saved: int = 0
    seed: int | None = field(default=None, repr=False)

    @property
    def output(self) -> T | None:
        """The answer (what a chain step passes on)."""
        return self.answer

    @property
    def votes(self) -> int:
        """The winner's vote count."""
        return self.counts.get(self.key, 0) if self.key is not None else 0

    @property
    def unextracted(self) -> int:
        """How many samples had no extractable answer."""
        return self.counts.get(None, 0)

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping ended the sampling before ``k`` samples."""
        return self.calls_saved > 0


def _decided(counts: Mapping[str, int], first: Mapping[str, int], remaining: int) -> bool:
    """Whether no ``remaining`` samples could change the winner (under the tie rule)."""
    if remaining <= 0:
        return True
    if not counts:
        return False
    order = sorted(counts, key=lambda key: (-counts[key], first[key]))
    leader = order[0]
    top = counts[leader]
    # an answer not seen yet appears after the leader, so it needs strictly more votes
    if remaining > top:
        return False
    for other in order[1:]:
        reach = counts[other] + remaining
        if reach > top or (reach == top and first[other] < first[leader]):
            return False
    return True


def _optimistic_round(
    counts: Mapping[str, int], first: Mapping[str, int], done: int, k: int
) -> int:
    """The fewest further samples after which stopping is possible (if they all agree with
    the current leader)."""
    remaining = k - done
    # the optimistic case: every new sample agrees with the leader (or with one new answer)
    leader = min(counts, key=lambda key: (-counts[key], first[key])) if counts else "\x00new"
    for x in range(1, remaining):
        trial = dict(counts)
        trial[leader] = trial.get(leader, 0) + x
        trial_first = dict(first)
        trial_first.setdefault(leader, done)
        if _decided(trial, trial_first, remaining - x):
            return x
    return remaining


class SelfConsistency(Strategy["Vote[T]"], Generic[T]):
    """Self-consistency over any prompt (typically :class:`~promptkit.ChainOfThought`):
    ``k`` samples, an answer extracted from each, normalised, and a majority vote.

    - ``extract``: an extractor (see :mod:`promptkit.strategies.extract`), or any function
      ``str -> answer | None``. Default: the prompt's answer line when it declares one
      (``answer_format`` / ``answer_pattern``, as ChainOfThought does), else the last line.
      A sample whose answer cannot be extracted is kept, counted under ``None``, and lowers
      the agreement.
    - ``normalize``: a function ``str -> str`` or a sequence of them applied in order to each
      string answer before voting (default :data:`promptkit.strategies.normalize.DEFAULT`:
      whitespace, case, punctuation, numbers). Non-string answers are keyed by
      :func:`~promptkit.strategies.normalize.canonical`.
    - Sampling: one request with ``n=k`` where the backend honours ``n``; otherwise ``k``
      concurrent requests (bounded by ``LLM.max_concurrency``) with distinct seeds. When a
      server returns fewer choices than asked, further requests top up: ``k`` samples
      asked means ``k`` samples voted. ``run`` gets the same concurrency as ``arun`` (it
      uses threads).
    - ``temperature``: used when none of the LLM's, the prompt's, this object's or the
      call's parameters set one. ``seed``: the first seed (sample *i* gets ``seed + i``
      where requests are sent one per sample); without one, a random first seed is drawn
      when the backend takes seeds, unless the LLM has a response cache (then repeated
      runs are answered from it, each sample stored apart).
    - ``early_stop=True``: sample in rounds and stop once no remaining sample could change
      the winner; ``Vote.calls_saved`` says how many samples that saved. Rounds are as
      small as allows stopping after them (the first is ``ceil(k / 2)``), or ``batch``
      samples each. Without it, all ``k`` samples are requested at once.

    ``params`` are defaults over the prompt's own; a call's ``params`` override both.
    """

    @overload
    def __init__(
        self: SelfConsistency[str],
        prompt: PromptBase,
        k: int = 5,
        *,
        extract: None = None,
        normalize: Normaliser | Sequence[Normaliser] | None = None,
        params: SamplingParams | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        early_stop: bool = False,
        batch: int | None = None,
        name: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: SelfConsistency[T],
        prompt: PromptBase,
        k: int = 5,
        *,
        extract: Extractor[T],
        normalize: Normaliser | Sequence[Normaliser] | None = None,
        params: SamplingParams | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        early_stop: bool = False,
        batch: int | None = None,
        name: str | None = None,
    ) -> None: ...

    def __init__(
        self,
        prompt: PromptBase,
        k: int = 5,
        *,
        extract: Extractor[Any] | None = None,
        normalize: Normaliser | Sequence[Normaliser] | None = None,
        params: SamplingParams | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        seed: int | None = None,
        early_stop: bool = False,
        batch: int | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise ParameterError(f"k={k!r}: expected a whole number of samples from 1 to {MAX_K}.")
        if batch is not None and (not isinstance(batch, int) or batch < 1):
            raise ParameterError(f"batch={batch!r}: expected a whole number >= 1.")
        if not 0.0 <= temperature <= 2.0:
            raise ParameterError(
                f"temperature={temperature!r} is out of range: expected 0.0 to 2.0."
            )
        render = getattr(prompt, "render", None)
        if not callable(render):
            raise ParameterError(f"SelfConsistency needs a prompt; got {type(prompt).__name__}.")
        self.prompt = prompt
        self.k = k
        self.extract: Extractor[Any] = (
            extract if extract is not None else _extract.default_for(prompt)
        )
        self.normalize: Normaliser = as_normaliser(normalize)
        self.params = params
        self.temperature = temperature
        self.seed = seed
        self.early_stop = early_stop
        self.batch = batch
        self.name = name or getattr(prompt, "name", None)

    def __repr__(self) -> str:
        extra = ", early_stop=True" if self.early_stop else ""
        label = getattr(self.prompt, "label", type(self.prompt).__name__)
        return f"SelfConsistency({label}, k={self.k}{extra})"

    @property
    def variables(self) -> frozenset[str] | None:
        """The prompt's variables."""
        return prompt_variables(self.prompt)

    def value(self, result: Any) -> Any:
        """A chain step passes on the winning answer."""
        return result.answer

    # ------------------------------------------------------------------ voting

    def sample(self, index: int, text: str, finish_reason: str | None = None) -> Sample[T]:
        """A :class:`Sample` of ``text``: its answer extracted and normalised."""
        got, error = _extract.apply(self.extract, text)
        key: str | None = None
        if got is not None:
            key = self.normalize(got) if isinstance(got, str) else canonical(got)
            if not key:
                got, key, error = None, None, "the answer is empty once normalised"
        return Sample(index, text, got, key, finish_reason, error)

    def vote(self, texts: Sequence[str | Choice]) -> Vote[T]:
        """Vote over replies you already have (no model calls).

        >>> from promptkit import ChainOfThought
        >>> from promptkit.strategies import SelfConsistency
        >>> sc = SelfConsistency(ChainOfThought(), k=4)
        >>> v = sc.vote(["The answer is B.", "The answer is A.", "It's a. The answer is a.",
        ...              "The answer is b"])
        >>> v.answer, v.tie, v.tied
        ('B', True, ('b', 'a'))
        """
        samples = [
            self.sample(i, t.text, t.finish_reason) if isinstance(t, Choice) else self.sample(i, t)
            for i, t in enumerate(texts)
        ]
        return self._tally(samples, usage=Usage(), requests=0, seed=None, k=len(samples))

    def _tally(
        self, samples: Sequence[Sample[T]], *, usage: Usage, requests: int, seed: int | None,
        k: int,
    ) -> Vote[T]:  # fmt: skip
        counts: dict[str, int] = {}
        first: dict[str, int] = {}
        representative: dict[str, T] = {}
        unextracted = 0
        for s in samples:
            if s.key is None or s.answer is None:
                unextracted += 1
                continue
            counts[s.key] = counts.get(s.key, 0) + 1
            if s.key not in first:
                first[s.key] = s.index
                representative[s.key] = s.answer
        order = sorted(counts, key=lambda key: (-counts[key], first[key]))
        ordered: dict[str | None, int] = {key: counts[key] for key in order}
        if unextracted:
            ordered[None] = unextracted
        winner = order[0] if order else None
        top = counts[winner] if winner is not None else 0
        tied = tuple(key for key in order if counts[key] == top)
        return Vote(
            answer=representative[winner] if winner is not None else None,
            key=winner,
            counts=ordered,
            agreement=top / len(samples) if samples else 0.0,
            tie=len(tied) > 1,
            tied=tied,
            samples=tuple(samples),
            usage=usage,
            k=k,
            requests=requests,
            calls_saved=max(0, k - len(samples)),
            seed=seed,
        )

    # ------------------------------------------------------------------ sampling

    def plan(
        self, llm: LLM, variables: Mapping[str, Any], params: SamplingParams | None = None
    ) -> Plan[Vote[T]]:
        """Sample, extract and vote (see the class doc); a generator of calls. Traced as a
        ``promptkit.self_consistency`` span over the samples' client spans."""
        return traced(
            "promptkit.self_consistency",
            {"promptkit.strategy": self.label, "promptkit.vote.k": self.k},
            self._plan(llm, variables, params),
            lambda vote: {
                "promptkit.vote.samples": len(vote.samples),
                "promptkit.vote.requests": vote.requests,
                "promptkit.vote.agreement": vote.agreement,
                "promptkit.vote.tie": vote.tie,
            },
        )

    def _plan(
        self, llm: LLM, variables: Mapping[str, Any], params: SamplingParams | None
    ) -> Plan[Vote[T]]:
        messages = yield from rendered(self.prompt, variables)
        call_params = prompt_params(self.prompt, self.params, params)
        supports = llm.backend.supports
        effective = llm.params.merge(call_params) if call_params is not None else llm.params
        fill: dict[str, Any] = {}
        if effective.temperature is None and "temperature" in supports:
            fill["temperature"] = self.temperature
        seed = self.seed if self.seed is not None else effective.seed
        if seed is None and "seed" in supports and getattr(llm, "cache", None) is None:
            # distinct seeds even on a server whose default seed is fixed; not with a
            # response cache, where a random seed would make every run a miss (the
            # samples' indexes keep cached samples apart)
            seed = random.randrange(2**31)

        samples: list[Sample[T]] = []
        counts: dict[str, int] = {}
        first: dict[str, int] = {}
        usage = Usage()
        requests = 0
        k = self.k
        while len(samples) < k:
            done_n = len(samples)
            if not self.early_stop:
                size = k - done_n
            elif self.batch is not None:
                size = min(self.batch, k - done_n)
            else:
                size = _optimistic_round(counts, first, done_n, k)
            round_fill = dict(fill)
            if seed is not None:
                round_fill["seed"] = seed + done_n
            round_params = merge_params(
                call_params, SamplingParams(**round_fill) if round_fill else None
            )
            done = yield from one(Call(messages, round_params, n=size))
            check_choices(done, llm.backend.name)
            usage = usage + done.usage
            requests += done.requests
            for choice in done.choices[:size]:
                s = self.sample(len(samples), choice.text, choice.finish_reason)
                samples.append(s)
                if s.key is not None:
                    counts[s.key] = counts.get(s.key, 0) + 1
                    first.setdefault(s.key, s.index)
            if self.early_stop and _decided(counts, first, k - len(samples)):
                break
        return self._tally(samples, usage=usage, requests=requests, seed=seed, k=k)
