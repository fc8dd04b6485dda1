"""The search: bootstrap examples, screen instructions then techniques on train items,
validate the finalists against the start with a paired test, measure once on test."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._params import SamplingParams, merge_params
from .._pricing import LOCAL_BACKENDS, Price, PriceLike
from .._sync import blocking_twin
from .._tokens import approx_tokens
from .._types import Message, Usage
from ..evaluation._dataset import Dataset, Record, as_dataset
from ..evaluation._report import ItemResult, VariantResult
from ..evaluation._run import (
    Variant,
    aevaluate,
    as_price,
    check_overlap,
    out_folder,
)
from ..evaluation.metrics import Metric, as_metric
from ..prompts import ChainOfThought, Example, FewShot, Prompt, ZeroShot
from ._errors import BudgetError, OptimizeError
from ._report import Budget, Candidate, OptimizeReport, Spend
from ._stats import holm, paired_test

if TYPE_CHECKING:
    from .._client import LLM

__all__ = ["aoptimize", "optimize"]

#: The techniques the search composes, by name.
TECHNIQUES = frozenset({"zero_shot", "few_shot", "chain_of_thought"})
REASONING = "Let's think step by step."
ANSWER_FORMAT = "The answer is <answer>."
#: Completion tokens assumed per reply when no ``max_tokens`` is set (for estimates).
OUTPUT_GUESS = 64

PROPOSER_SYSTEM = (
    "You improve the instruction given to a language model for a task. You are shown the "
    "current instruction and solved examples of the task (input, correct answer and, when "
    "it failed, what the model replied). Write {n} different alternative instructions that "
    "would make the model answer correctly and in the expected form. Write one instruction "
    "per line, with no numbering, no quotes and no commentary."
)


@dataclass
class _Cand:
    name: str
    stage: str
    changes: tuple[str, ...]
    prompt: Prompt
    k: int | None = None

    def variant(self, extract: Callable[[str], Any] | None, seed: int) -> Variant:
        if self.k:
            from ..strategies import SelfConsistency

            return Variant(SelfConsistency(self.prompt, k=self.k, seed=seed), extract=extract)
        return Variant(self.prompt, extract=extract)


def _digest(prompt: Prompt, k: int | None) -> str:
    from .._files import prompt_to_dict

    selector = prompt.example_selector  # not part of the file: told apart by its repr
    extra = None if selector is None else f"{type(selector).__name__}:{selector!r}"
    data = json.dumps([prompt_to_dict(prompt), k, extra], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:6]


def _as_data(dataset: Any, expected: str) -> Dataset:
    data = as_dataset(dataset, expected)
    if data is not None:
        return data
    raise OptimizeError(
        f"dataset={type(dataset).__name__}: expected a Dataset, a .jsonl/.csv path or a list "
        "of dicts (the optimiser splits it into train, validation and test itself)."
    )


def _values(prompt: Prompt, rec: Record, inputs: Mapping[str, str] | None) -> dict[str, Any]:
    values = dict(rec.fields)
    for var, column in (inputs or {}).items():
        if column in rec.fields:
            values[var] = rec.fields[column]
    return {k: v for k, v in values.items() if k in prompt.variables}


@dataclass
class _Search:
    """One optimisation run: its options, what it has spent and what it has logged."""

    llm: LLM
    llm_label: str
    price: Price | None
    metric: Metric
    budget: Budget | None
    inputs: Mapping[str, str] | None
    ex_input: str | dict[str, str]
    rationale: str | None
    extract: Callable[[str], Any] | None
    seed: int
    proposer: LLM | None
    n_proposals: int
    proposer_params: SamplingParams | None
    max_examples: int
    confidence: float
    params: SamplingParams | None
    concurrency: int
    out: Path | None
    progress: bool | None
    verbose: bool
    spent: Spend = field(default_factory=Spend)
    lines: list[str] = field(default_factory=list)
    stopped: str | None = None
    seen: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------ logging, cost

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.verbose:
            print(f"optimize: {line}", file=sys.stderr, flush=True)

    def per_item(self, cand: _Cand, items: Sequence[Record]) -> Spend:
        """Upper estimate of one candidate over ``items``: every reply sent (no cache)."""
        params = merge_params(self.params, cand.prompt.params)
        out_tokens = (params.max_tokens if params is not None else None) or OUTPUT_GUESS
        samples = cand.k or 1
        tin = 0
        for rec in items:
            try:
                messages = cand.prompt.render(**_values(cand.prompt, rec, self.inputs))
                tin += sum(approx_tokens(m.content) for m in messages)
            except Exception:  # an estimate only: the run itself reports bad inputs
                tin += approx_tokens(json.dumps(dict(rec.fields), default=str))
        calls = samples * len(items)
        tin, tout = samples * tin, calls * out_tokens
        usd = None if self.price is None else self.price.cost(Usage(tin, tout, tin + tout))
        return Spend(calls, tin + tout, usd)

    def estimate(self, cands: Sequence[_Cand], items: Sequence[Record]) -> Spend:
        total = Spend()
        for c in cands:
            total = total + self.per_item(c, items)
        return total

    def actual(self, result: VariantResult) -> Spend:
        usage = Usage()
        for it in result.items:
            if it.calls:
                usage = usage + it.usage
        tokens = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
        usd = None if self.price is None else self.price.cost(usage)
        return Spend(result.calls, tokens, usd)

    def fits(self, what: str, more: Spend) -> bool:
        if self.budget is None:
            return True
        why = self.budget.exceeded(self.spent, more)
        if why is not None:
            self.stopped = f"{what} not run ({why})"
            self.say(f"budget: {self.stopped}")
            return False
        return True

    # ------------------------------------------------------------------ running

    def cand(self, label: str, stage: str, changes: Sequence[str], prompt: Prompt,
             k: int | None = None) -> _Cand | None:  # fmt: skip
        digest = _digest(prompt, k)
        if digest in self.seen:
            return None  # the same prompt reached another way: tried already
        self.seen.add(digest)
        return _Cand(f"{label} #{digest}", stage, tuple(changes), prompt, k)

    async def run(
        self, label: str, cands: Sequence[_Cand], items: Dataset
    ) -> dict[str, VariantResult]:
        variants = {c.name: c.variant(self.extract, self.seed) for c in cands}
        out = self.out / label if self.out is not None else None
        self.say(f"round {label}: {len(cands)} candidate(s) x {len(items)} items")
        report = await aevaluate(
            variants,
            items,
            self.llm,
            metric=self.metric,
            inputs=self.inputs,
            params=self.params,
            concurrency=self.concurrency,
            out=out,
            progress=self.progress,
            prices={self.llm_label: self.price} if self.price is not None else None,
            confidence=self.confidence,
        )
        results = {c.name: report[c.name] for c in cands}
        for r in results.values():
            self.spent = self.spent + self.actual(r)
        return results

    # ------------------------------------------------------------------ examples

    def labelled(self, pool: Dataset) -> list[Example]:
        n = min(self.max_examples, len(pool))
        return pool.examples(n, input=self.ex_input, rationale=self.rationale)

    def bootstrapped(
        self, pool: Dataset, result: VariantResult, cot: Prompt | None
    ) -> list[Example]:
        """The pool records ``result`` got right, as examples: the expected answer as the
        output (the gold label, not the reply's wording) and, for a chain-of-thought
        prompt ``cot``, the reply's reasoning as the rationale."""
        kept = [rec for rec, it in zip(pool, result.items, strict=True) if it.correct]
        if not kept:
            return []
        examples = Dataset(kept).examples(input=self.ex_input)
        if cot is None:
            return examples
        out = []
        for ex, it in zip(examples, [i for i in result.items if i.correct], strict=True):
            out.append(
                Example(input=ex.input, output=ex.output, rationale=_rationale(it.text, cot))
            )
        return out

    # ------------------------------------------------------------------ proposals

    async def proposals(
        self, start: Prompt, pool: Dataset, boot: VariantResult | None, reserve: Spend
    ) -> list[str]:
        if self.proposer is None or self.n_proposals < 1:
            return []
        shown = []
        items: list[tuple[Record, ItemResult | None]] = (
            list(zip(pool, boot.items, strict=True)) if boot is not None else []
        )
        wrong = [(r, i) for r, i in items if i is not None and not i.correct][:3]
        right = [(r, i) for r, i in items if i is not None and i.correct][:2]
        chosen: list[tuple[Record, ItemResult | None]] = [*wrong, *right]
        if not chosen:
            chosen = [(r, None) for r in list(pool)[:5]]
        for rec, it in chosen:
            values = _values(start, rec, self.inputs)
            block = f"Input: {json.dumps(values, ensure_ascii=False, default=str)}\n"
            block += f"Correct answer: {rec.expected}"
            if it is not None and not it.correct:
                block += f"\nModel replied: {(it.text or '').strip()[:300]}"
            shown.append(block)
        user = (
            f"Current instruction:\n{start.instruction or '(none)'}\n\nExamples:\n\n"
            + "\n\n".join(shown)
        )
        messages = [
            Message(role="system", content=PROPOSER_SYSTEM.format(n=self.n_proposals)),
            Message(role="user", content=user),
        ]
        key = hashlib.sha256(
            json.dumps([m.model_dump(mode="json") for m in messages]).encode()
        ).hexdigest()[:12]
        journal = self.out / f"proposals-{key}.json" if self.out is not None else None
        if journal is not None and journal.is_file():
            saved = json.loads(journal.read_text(encoding="utf-8"))
            self.say(f"instruction proposals read back from {journal.name}")
            return [str(s) for s in saved]
        more = Spend(1, sum(approx_tokens(m.content) for m in messages) + 400, 0.0)
        if self.budget is not None and self.budget.exceeded(self.spent, more + reserve):
            self.stopped = "instruction proposals not requested (budget)"
            self.say(self.stopped)
            return []
        completion = await self.proposer.acomplete(messages, params=self.proposer_params)
        usage = completion.usage
        tokens = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
        self.spent = self.spent + Spend(completion.requests, tokens, 0.0)
        found = _parse_proposals(completion.text, start.instruction, self.n_proposals)
        if journal is not None:
            tmp = journal.with_suffix(".tmp")
            tmp.write_text(json.dumps(found, ensure_ascii=False, indent=2), encoding="utf-8")
            os.replace(tmp, journal)
        self.say(f"{len(found)} instruction proposal(s) from the proposer model")
        return found


def _rationale(text: str | None, prompt: Prompt) -> str | None:
    """The reasoning of a chain-of-thought reply: the reply without its answer line."""
    if not text:
        return None
    prefix = (prompt.answer_format or ANSWER_FORMAT).split("<answer>")[0].strip()
    at = text.rfind(prefix)
    body = text[:at] if at > 0 else text
    return " ".join(body.split()) or None


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|\(\d+\))\s*")


def _parse_proposals(text: str, current: str | None, n: int) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip().strip("\"'\u201c\u201d").strip()
        if len(line) < 8 or line.endswith(":") or line == (current or "").strip():
            continue
        if line not in out:
            out.append(line)
    return out[:n]


def _compose(prompt: Prompt, update: Mapping[str, Any]) -> Prompt:
    """``prompt`` with ``update`` applied, validated like a new prompt. The plain
    techniques follow what the prompt now is (a ZeroShot given examples becomes a FewShot,
    one given reasoning a ChainOfThought, a FewShot without examples a ZeroShot), so the
    saved file names the technique it holds; other classes (Role, Instruction ...) keep
    theirs."""
    data = {
        k: getattr(prompt, k) for k in type(prompt).model_fields if k in prompt.model_fields_set
    }
    data.update(update)
    cls: type[Prompt] = type(prompt)
    if cls in (Prompt, ZeroShot, FewShot, ChainOfThought):
        if cls is ChainOfThought or data.get("reasoning"):
            cls = ChainOfThought
        elif data.get("examples"):
            cls = FewShot
        elif data.get("instruction"):
            cls = ZeroShot
        else:
            cls = Prompt
    composed: Prompt = cls.model_validate(data)
    return composed


def _cot(prompt: Prompt) -> Prompt:
    if prompt.reasoning:
        return prompt
    return _compose(prompt, {"reasoning": REASONING, "answer_format": ANSWER_FORMAT})


def _splits(data: Dataset, holdout: tuple[float, float], seed: int) -> tuple[Dataset, ...]:
    val_frac, test_frac = holdout
    if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise OptimizeError(
            f"holdout={holdout!r}: expected (validation share, test share), each between 0 "
            "and 1, together below 1, e.g. (0.3, 0.3)."
        )
    if len(data) < 8:
        raise OptimizeError(
            f"the dataset has {len(data)} records: an optimisation needs at least 8 (train "
            "for examples and screening, validation for selection, test for the final figure)."
        )
    rest, test = data.split(holdout=test_frac, seed=seed)
    train, val = rest.split(holdout=min(0.9, val_frac / (1 - test_frac)), seed=seed + 1)
    if len(train) < 2:
        raise OptimizeError(f"holdout={holdout!r} leaves {len(train)} train record(s): need 2.")
    pool, dev = train.split(holdout=0.5, seed=seed + 2)
    return pool, dev, val, test


async def aoptimize(
    prompt: Prompt,
    dataset: Any,
    llm: LLM,
    *,
    metric: Metric | str | Callable[..., float | bool] = "exact_match",
    budget: Budget | None = None,
    expected: str = "expected",
    inputs: Mapping[str, str] | None = None,
    examples_input: str | Mapping[str, str] | None = None,
    rationale: str | None = None,
    extract: Callable[[str], Any] | None = None,
    holdout: tuple[float, float] = (0.3, 0.3),
    seed: int = 0,
    instructions: Sequence[str] = (),
    proposer: LLM | None = None,
    proposals: int = 3,
    proposer_params: SamplingParams | None = None,
    techniques: Sequence[str] = ("few_shot", "chain_of_thought"),
    roles: Sequence[str] = (),
    self_consistency: int | None = None,
    max_examples: int = 4,
    subsets: int = 1,
    selector: Any = None,
    finalists: int = 3,
    confidence: float = 0.95,
    params: SamplingParams | None = None,
    concurrency: int = 4,
    out: str | os.PathLike[str] | None = None,
    prices: Mapping[str, PriceLike] | None = None,
    progress: bool | None = False,
    verbose: bool = True,
) -> OptimizeReport:
    """Async twin of :func:`optimize` (the same arguments; await it in async code)."""
    if not isinstance(prompt, Prompt):
        raise OptimizeError(
            f"prompt: expected a technique prompt (ZeroShot, FewShot, ChainOfThought ...), got "
            f"{type(prompt).__name__}: the optimiser composes instructions, examples and "
            "techniques onto it."
        )
    unknown = sorted(set(techniques) - TECHNIQUES)
    if unknown:
        raise OptimizeError(
            f"techniques: unknown {unknown}; known: {sorted(TECHNIQUES)} (self-consistency is "
            "self_consistency=k, role is roles=[...])."
        )
    for name, value, low in (("max_examples", max_examples, 1), ("finalists", finalists, 1),
                             ("subsets", subsets, 0), ("proposals", proposals, 0),
                             ("concurrency", concurrency, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise OptimizeError(f"{name}={value!r}: expected a whole number >= {low}.")
    if self_consistency is not None and (
        isinstance(self_consistency, bool) or not isinstance(self_consistency, int)
        or self_consistency < 2
    ):  # fmt: skip
        raise OptimizeError(f"self_consistency={self_consistency!r}: expected k >= 2 samples.")
    if not (isinstance(confidence, float) and 0.5 <= confidence < 1.0):
        raise OptimizeError(f"confidence={confidence!r}: expected a fraction such as 0.95.")
    if budget is not None and not isinstance(budget, Budget):
        raise OptimizeError(
            f"budget={budget!r}: expected pk.Budget(calls=..., tokens=..., usd=...)."
        )
    data = _as_data(dataset, expected)
    scorer = as_metric(metric)
    vars_ = sorted(prompt.variables)
    ex_input: str | dict[str, str]
    if examples_input is not None:
        ex_input = examples_input if isinstance(examples_input, str) else dict(examples_input)
    elif len(vars_) == 1:
        ex_input = (inputs or {}).get(vars_[0], vars_[0])
    else:
        ex_input = {v: (inputs or {}).get(v, v) for v in vars_}
    # the starting prompt's own examples must not be items we score (the overlap refusal)
    start_variant = Variant(prompt)
    check_overlap("start", start_variant, data, [_values(prompt, r, inputs) for r in data])
    pool, dev, val, test = _splits(data, holdout, seed)
    label = str(llm.model or llm.backend.name)
    table = {str(k): as_price(str(k), v) for k, v in (prices or {}).items()}
    price = table.get(label) or table.get(llm.backend.name)
    if price is None and llm.backend.name in LOCAL_BACKENDS:
        price = Price(0.0, 0.0)
    out_dir = out_folder(out, "journal")
    s = _Search(
        llm=llm, llm_label=label, price=price, metric=scorer, budget=budget, inputs=inputs,
        ex_input=ex_input, rationale=rationale, extract=extract, seed=seed, proposer=proposer,
        n_proposals=proposals, proposer_params=proposer_params, max_examples=max_examples,
        confidence=confidence, params=params, concurrency=concurrency, out=out_dir,
        progress=progress, verbose=verbose,
    )  # fmt: skip
    s.say(
        f"{len(data)} records: {len(pool)} example pool, {len(dev)} train screening, "
        f"{len(val)} validation, {len(test)} held-out test (seed {seed})"
    )
    start = s.cand("start", "start", (), prompt)
    assert start is not None

    # ---------------------------------------------------------------- the plan's estimate
    want_cot = "chain_of_thought" in techniques
    n_instr = 1 + len(instructions) + (proposals if proposer is not None else 0)
    n_boot = min(len(pool), 4 * max_examples)
    n_tech = (
        ("few_shot" in techniques) * (2 + subsets) + 2 * want_cot + bool(self_consistency)
        + len(roles) + ("zero_shot" in techniques) + (selector is not None)
    )  # fmt: skip
    demo = _Cand("demo", "", (), _compose(prompt, {"examples": s.labelled(pool)}))
    worst = demo if len(demo.prompt.examples) else start
    one_boot = s.per_item(start, pool[:n_boot])
    mandatory = s.per_item(start, val) + s.per_item(start, test)
    plan = (
        one_boot + (one_boot if want_cot else Spend())
        + _times(s.per_item(start, dev), n_instr)
        + _times(s.per_item(worst, dev), n_tech)
        + _times(s.per_item(worst, val), finalists) + s.per_item(worst, test)
    )  # fmt: skip
    if self_consistency:
        plan = plan + _times(s.per_item(worst, dev), self_consistency - 1)
    s.say(
        f"estimate before the run (no cache hits assumed): up to {plan}; budget: "
        f"{budget or 'unlimited'}"
    )
    estimate = plan
    if budget is not None:
        why = budget.exceeded(Spend(), mandatory)
        if why is not None:
            raise BudgetError(
                f"the budget ({budget}) cannot pay for measuring the starting prompt on the "
                f"validation and test items ({mandatory}): {why}. Raise the budget or use "
                "fewer records.",
                needed=str(mandatory),
                budget=str(budget),
            )

    def reserve(worst_item: _Cand, n_final: int) -> Spend:
        return (
            s.per_item(start, val) + _times(s.per_item(worst_item, val), n_final)
            + s.per_item(start, test) + s.per_item(worst_item, test)
        )  # fmt: skip

    screened: list[_Cand] = []
    results: dict[str, VariantResult] = {}

    # ---------------------------------------------------------------- 1. bootstrap
    boot_items = pool[:n_boot]
    boot_cands = [start]
    cot_start = _cot(prompt)
    cot_probe = None
    if want_cot and not prompt.reasoning:
        cot_probe = _Cand(f"bootstrap-cot #{_digest(cot_start, None)}", "bootstrap", (), cot_start)
        boot_cands.append(cot_probe)
    boot: dict[str, VariantResult] = {}
    if s.fits("bootstrap", s.estimate(boot_cands, boot_items) + reserve(worst, finalists)):
        boot = await s.run("1-bootstrap", boot_cands, boot_items)
    boot_plain = s.bootstrapped(boot_items, boot[start.name], None) if boot else []
    boot_cot: list[Example] = []
    if boot and cot_probe is not None:
        boot_cot = s.bootstrapped(boot_items, boot[cot_probe.name], cot_start)
    elif boot and prompt.reasoning:
        boot_cot = s.bootstrapped(boot_items, boot[start.name], prompt)
    s.say(
        f"bootstrapped demonstrations: {len(boot_plain)} plain, {len(boot_cot)} with rationale "
        f"(of {len(boot_items)} pool items run)"
    )

    # ---------------------------------------------------------------- 2. instructions
    texts = list(dict.fromkeys(t.strip() for t in instructions if t and t.strip()))
    if s.stopped is None:
        texts += [
            t
            for t in await s.proposals(
                prompt, boot_items, boot.get(start.name), reserve(worst, finalists)
            )
            if t not in texts
        ]
    instr_cands = [start]
    for i, text in enumerate(texts, 1):
        c = s.cand(f"instruction {i}", "instruction", ("instruction rewritten",),
                   _compose(prompt, {"instruction": text}))  # fmt: skip
        if c is not None:
            instr_cands.append(c)
    base = start
    if s.stopped is None and s.fits(
        "instruction screening", s.estimate(instr_cands, dev) + reserve(worst, finalists)
    ):
        got = await s.run("2-instructions", instr_cands, dev)
        results.update(got)
        screened += instr_cands[1:]
        base = max(instr_cands, key=lambda c: got[c.name].accuracy)  # first on ties: start
        if base is not start:
            s.say(f"best instruction on train: {base.name}")

    # ---------------------------------------------------------------- 3. techniques
    bp = base.prompt
    bchanges = base.changes
    tech: list[_Cand | None] = []
    rng = random.Random(seed)
    if "zero_shot" in techniques and bp.examples:
        tech.append(s.cand("zero-shot", "technique", (*bchanges, "examples removed"),
                           _compose(bp, {"examples": []})))  # fmt: skip
    if "few_shot" in techniques:
        sets: list[tuple[str, list[Example]]] = [("labelled", s.labelled(boot_items))]
        if boot_plain:
            sets.append(("bootstrapped", boot_plain[:max_examples]))
        source = boot_plain or s.labelled(boot_items)
        for j in range(subsets):
            if len(source) >= 2:
                k = min(max_examples, len(source))
                sets.append((f"subset {j + 1}", rng.sample(source, k)))
        for what, exs in sets:
            tech.append(s.cand(f"few-shot {what}", "technique",
                               (*bchanges, f"{len(exs)} {what} examples"),
                               _compose(bp, {"examples": exs})))  # fmt: skip
        if selector is not None:
            allx = boot_items.examples(input=s.ex_input, rationale=s.rationale)
            tech.append(s.cand("few-shot selector", "technique",
                               (*bchanges, f"examples chosen per input from {len(allx)}"),
                               _compose(bp, {"examples": allx,
                                                     "example_selector": selector})))  # fmt: skip
    cot_best: Prompt | None = None
    if want_cot:
        cot = _cot(bp)
        added = () if bp.reasoning else ("chain of thought",)
        tech.append(s.cand("chain of thought", "technique", (*bchanges, *added), cot))
        cot_best = cot
        if boot_cot:
            exs = boot_cot[:max_examples]
            cot_best = _compose(cot, {"examples": exs})
            tech.append(s.cand("chain of thought + demos", "technique",
                               (*bchanges, *added, f"{len(exs)} bootstrapped reasoning examples"),
                               cot_best))  # fmt: skip
    if self_consistency:
        sc_prompt = cot_best or _cot(bp)
        tech.append(s.cand(f"self-consistency k={self_consistency}", "technique",
                           (*bchanges, "chain of thought", f"{self_consistency} samples voted"),
                           sc_prompt, self_consistency))  # fmt: skip
    for i, role in enumerate(roles, 1):
        tech.append(s.cand(f"role {i}", "technique", (*bchanges, f"role: {role}"),
                           _compose(bp, {"role": role})))  # fmt: skip
    tech_cands = [c for c in tech if c is not None]
    if tech_cands and s.stopped is None:
        worst_t = max(tech_cands, key=lambda c: s.per_item(c, dev[:3]).tokens)
        if s.fits("technique screening",
                  s.estimate(tech_cands, dev) + reserve(worst_t, finalists)):  # fmt: skip
            if start.name not in results:  # the start's train score, for comparison
                tech_cands = [start, *tech_cands]
            got = await s.run("3-techniques", tech_cands, dev)
            results.update(got)
            screened += [c for c in tech_cands if c is not start]

    # ---------------------------------------------------------------- 4. validation
    base_dev = results[start.name].accuracy if start.name in results else None
    better = [
        c for c in screened
        if c.name in results and (base_dev is None or results[c.name].accuracy > base_dev)
    ]  # fmt: skip
    order = {c.name: i for i, c in enumerate(screened)}
    better.sort(key=lambda c: (-results[c.name].accuracy, order[c.name]))
    chosen_list = better[:finalists]
    while chosen_list:
        worst_f = max(chosen_list, key=lambda c: s.per_item(c, val[:3]).tokens)
        if s.budget is None or s.budget.exceeded(
            s.spent, s.estimate([start, *chosen_list], val) + s.per_item(start, test)
            + s.per_item(worst_f, test)
        ) is None:  # fmt: skip
            break
        dropped = chosen_list.pop()
        s.stopped = s.stopped or "fewer finalists validated (budget)"
        s.say(f"budget: finalist {dropped.name} dropped")
    s.say(
        f"{len(better)} candidate(s) beat the start on train; {len(chosen_list)} finalist(s) "
        "go to validation"
    )
    val_res = await s.run("4-validation", [start, *chosen_list], val)
    alpha = 1.0 - confidence
    tests = [
        paired_test([i.score for i in val_res[c.name].items],
                    [i.score for i in val_res[start.name].items], seed=seed)
        for c in chosen_list
    ]  # fmt: skip
    adjusted = holm([t.p_value for t in tests])

    # ---------------------------------------------------------------- the candidates
    def full(c: _Cand) -> Candidate:
        return Candidate(c.name, c.stage, c.changes, c.prompt, c.k, train=results.get(c.name),
                         validation=val_res.get(c.name))  # fmt: skip

    everyone = {c.name: full(c) for c in [start, *screened]}
    accepted: list[Candidate] = []
    for c, t, adj in zip(chosen_list, tests, adjusted, strict=True):
        cc = everyone[c.name]
        cc.paired, cc.adjusted_p = t, adj
        cc.accepted = adj <= alpha and t.diff > 0
        if cc.accepted:
            accepted.append(cc)
    first = everyone[start.name]
    chosen = first
    if accepted:
        chosen = max(accepted, key=lambda c: c.validation.accuracy if c.validation else 0.0)
        pt = chosen.paired
        assert pt is not None and chosen.validation is not None
        decision = (
            f"chosen: {chosen.name} ({'; '.join(chosen.changes)}): validation "
            f"{chosen.validation.accuracy:.1%} vs start "
            f"{val_res[start.name].accuracy:.1%}, +{pt.wins}/-{pt.losses} items, Holm-adjusted "
            f"p={chosen.adjusted_p:.3g} <= {alpha:.3g}"
        )
    elif chosen_list:
        decision = (
            f"the starting prompt stands: no finalist beat it on the {len(val)} validation items "
            f"at {100 * confidence:g}% confidence (best adjusted p={min(adjusted):.3g})"
        )
    else:
        decision = "the starting prompt stands: no candidate beat it on the train items"
    s.say(decision)

    # ---------------------------------------------------------------- 5. held-out test
    final = [start] if chosen is first else [start, next(c for c in chosen_list
                                                           if c.name == chosen.name)]  # fmt: skip
    test_res = await s.run("5-test", final, test)
    test_chosen = test_res.get(chosen.name) if chosen is not first else None
    test_pt = None
    if test_chosen is not None:
        test_pt = paired_test([i.score for i in test_chosen.items],
                              [i.score for i in test_res[start.name].items], seed=seed)  # fmt: skip
    report = OptimizeReport(
        start=first,
        chosen=chosen,
        candidates=list(everyone.values()),
        test_start=test_res[start.name],
        test_chosen=test_chosen,
        test_paired=test_pt,
        spent=s.spent,
        estimate=estimate,
        budget=budget,
        stopped=s.stopped,
        confidence=confidence,
        correction="Holm-Bonferroni",
        sizes={
            "example pool": len(pool),
            "train screening": len(dev),
            "validation": len(val),
            "test": len(test),
        },
        seed=seed,
        metric=scorer.name,
        dataset=data.name,
        decision=decision,
        log=s.lines,
    )
    s.say(f"held-out: {report.summary()[1]}; spent {s.spent}")
    return report


def _times(spend: Spend, n: int) -> Spend:
    usd = None if spend.usd is None else spend.usd * n
    return Spend(spend.calls * n, spend.tokens * n, usd)


@blocking_twin(
    aoptimize,
    instead="await promptkit.aoptimize(...)",
    closing=lambda args: (args["llm"], args["proposer"]),
)
def optimize(*args: Any, **kwargs: Any) -> OptimizeReport:
    """Search for a better prompt on data, and keep it only when it is measurably better.

    ``prompt`` is the starting prompt (any technique prompt); ``dataset`` a
    :class:`~promptkit.Dataset`, a ``.jsonl``/``.csv`` path or a list of dicts, which the
    optimiser cuts (seeded) into an *example pool* and *screening* items (the train part),
    *validation* items and *held-out test* items (``holdout=(0.3, 0.3)``: the validation
    and test shares). The search, in rounds:

    1. **bootstrap**: the starting prompt (and its chain-of-thought composition) answers
       pool items; those it gets right become demonstrations, with their reasoning as
       rationale for chain of thought.
    2. **instructions**: the user's ``instructions=[...]`` variants and ``proposals``
       rewrites asked of ``proposer`` (any LLM, e.g. a stronger one) are screened on the
       train items; the best becomes the base of round 3.
    3. **techniques** composed onto that base (never replacing the rest of the prompt):
       zero-shot, few-shot with labelled, bootstrapped and ``subsets`` random
       subsets/orderings of demonstrations (and a retrieval ``selector``, optional), chain
       of thought (with bootstrapped reasoning), ``self_consistency=k`` and ``roles``.
    4. **validation**: the ``finalists`` best on train (only those better than the start
       there) and the start answer the validation items; each finalist is compared with
       the start by a one-sided *paired* test on the same items (exact McNemar for 0/1
       scores, paired bootstrap otherwise; see :mod:`promptkit.optimization._stats`), the
       p-values adjusted by Holm-Bonferroni, and a finalist is accepted only when its
       adjusted p-value is at most ``1 - confidence``. Otherwise the start stands.
    5. **test**: the start and the chosen prompt are measured once on the held-out test
       items, which nothing before has seen.

    Demonstrations come only from the pool, so they are never scored items; the starting
    prompt's own examples must not be dataset records (:class:`~promptkit.OverlapError`).

    ``budget=pk.Budget(calls=, tokens=, usd=)`` is checked before each round against the
    round's estimate plus what validation and test still need; a round that does not fit
    is skipped and the report's ``stopped`` says so. The estimate of the whole run is
    printed (stderr) before it starts. ``out="journal/"`` makes the run durable: every
    round's replies go to JSONL files through the batch runner, and running again (after
    a crash or a kill) resumes, sending only what is missing; the LLM's response cache
    makes a repeated run free. For a given ``seed`` and cache the run is deterministic.

    Other options: ``metric``, ``inputs`` (``{variable: field}``), ``examples_input`` and
    ``rationale`` (dataset fields for labelled demonstrations), ``extract``, ``params``,
    ``concurrency``, ``prices`` (as :func:`~promptkit.evaluate`), ``max_examples``,
    ``confidence``, ``progress`` (bars), ``verbose`` (the round log on stderr).

    >>> import promptkit as pk
    >>> rows = [{"input": f"code {i}", "expected": f"C-{i}"} for i in range(40)]
    >>> def reply(request):  # right only when shown examples of the code format
    ...     code = request.messages[-1].content.split()[-1]
    ...     return f"C-{code}" if len(request.messages) > 2 else code
    >>> report = pk.optimize(pk.ZeroShot(instruction="Give the code."), rows,
    ...                      pk.LLM(pk.FakeBackend(reply)), verbose=False)
    >>> report.improved, report.chosen.technique, report.test_chosen.accuracy
    (True, 'few-shot (4)', 1.0)
    """
    raise AssertionError("never called: blocking_twin makes the entry that runs aoptimize")
