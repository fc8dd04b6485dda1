"""Running an evaluation: every variant over the scored items, on every backend."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, PriceError, PromptkitError
from .._params import SamplingParams, merge_params
from .._pricing import LOCAL_BACKENDS, Price, PriceLike, price_for
from .._pricing import as_price as _as_price
from .._progress import Progress
from .._sync import blocking_twin
from .._telemetry import span
from .._types import Completion, Usage
from ..prompts import Example, PromptBase
from ..strategies import extract as _extract
from ..strategies._plan import PASS_THROUGH, Plan, Strategy, adrive, prompt_variables
from ._dataset import Dataset, Record, Split, as_dataset
from ._errors import EvaluationError, OverlapError
from ._report import EvalReport, ItemResult, VariantResult
from .metrics import Judge, Metric, as_metric

if TYPE_CHECKING:
    from .._client import LLM

__all__ = ["LOCAL_BACKENDS", "Price", "Variant", "aevaluate", "evaluate"]

#: Dataset fields to prompt variables: ``{variable: field}``, or a function of the record.
InputMap = Mapping[str, str] | Callable[[Record], Mapping[str, Any]]


@dataclass(frozen=True)
class Variant:
    """One contender: a prompt (any :class:`~promptkit.Prompt`, run through the batch
    runner) or a strategy (:class:`~promptkit.SelfConsistency`, :class:`~promptkit.Chain`
    ...), and how to use it.

    - ``extract``: the reply text -> the prediction (see
      :mod:`promptkit.strategies.extract`). Default for a prompt: its answer line when it
      declares one (``ChainOfThought``'s "The answer is ..."), else the whole reply,
      stripped. For a strategy the default prediction is its result's value
      (``Vote.answer``); an ``extract`` is then applied to that value.
    - ``inputs``: ``{prompt variable: dataset field}`` for this variant (over
      :func:`evaluate`'s ``inputs``), or a function from a :class:`Record` to the variables.
    - ``params``: sampling parameters for this variant, over :func:`evaluate`'s ``params``.
    """

    prompt: Any
    extract: Callable[[str], Any] | None = None
    inputs: InputMap | None = None
    params: SamplingParams | None = None

    def __post_init__(self) -> None:
        target = self.prompt
        if not (isinstance(target, PromptBase) or callable(getattr(target, "arun", None))):
            raise EvaluationError(
                f"a variant needs a prompt or a strategy (with arun()); got "
                f"{type(target).__name__}."
            )
        if self.extract is not None and not callable(self.extract):
            raise EvaluationError(f"extract={self.extract!r}: expected a function str -> answer.")

    @property
    def is_prompt(self) -> bool:
        """Whether the variant runs through the batch runner (a prompt, not a strategy)."""
        return isinstance(self.prompt, PromptBase)

    def extractor(self) -> Callable[[str], Any]:
        """The function that turns a reply into the prediction."""
        if self.extract is not None:
            return self.extract
        target = self.prompt
        pattern = getattr(target, "answer_pattern", None)
        fmt = getattr(target, "answer_format", None)
        if pattern or (isinstance(fmt, str) and "<answer>" in fmt):
            return _extract.answer(target)
        return _whole_reply

    def prompts(self) -> list[PromptBase]:
        """Every prompt inside the variant (a strategy's prompts too)."""
        return _prompts_in(self.prompt, 0)


def _whole_reply(text: str) -> str | None:
    return text.strip() or None


def _prompts_in(obj: Any, depth: int) -> list[PromptBase]:
    if isinstance(obj, PromptBase):
        return [obj]
    if depth > 4 or isinstance(obj, (str, bytes, int, float)) or obj is None:
        return []
    if isinstance(obj, (list, tuple)):
        return [p for x in obj for p in _prompts_in(x, depth + 1)]
    try:
        attrs = vars(obj)
    except TypeError:
        return []
    out: list[PromptBase] = []
    for value in attrs.values():
        # prompts, strategies, lists of them, and chain steps (which keep theirs as `runner`)
        if isinstance(value, (PromptBase, Strategy, list, tuple)) or hasattr(value, "runner"):
            out.extend(_prompts_in(value, depth + 1))
    return list({id(p): p for p in out}.values())


def as_price(key: str, value: PriceLike) -> Price:
    """One entry of evaluate()'s price table (an :class:`EvaluationError` when malformed)."""
    try:
        return _as_price(key, value)
    except PriceError as exc:
        raise EvaluationError(str(exc)) from None


def out_folder(out: str | os.PathLike[str] | None, what: str) -> Path | None:
    """The ``out=`` folder, created (with its parents) when missing; ``what`` names it in
    the :class:`ConfigurationError` raised when it cannot be created."""
    if out is None:
        return None
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"out={str(folder)!r}: cannot create the {what} folder: {exc.strerror}."
        ) from None
    return folder


# --------------------------------------------------------------------------- normalising


def _as_dataset(dataset: Any, expected: str) -> Dataset:
    if isinstance(dataset, Split):
        return dataset.test
    data = as_dataset(dataset, expected)
    if data is not None:
        return data
    raise EvaluationError(
        f"dataset={type(dataset).__name__}: expected a Dataset, a Split (its test part is "
        "scored), a .jsonl/.csv path or a list of dicts."
    )


def _is_llm(value: Any) -> bool:
    return callable(getattr(value, "acomplete", None)) and hasattr(value, "backend")


def _as_backends(llm: Any) -> dict[str, LLM]:
    if _is_llm(llm):
        return {str(llm.model or llm.backend.name): llm}
    if isinstance(llm, Mapping) and llm:
        for name, value in llm.items():
            if not isinstance(name, str) or not name:
                raise EvaluationError(
                    f"llm: backend names must be non-empty strings, got {name!r}."
                )
            if not _is_llm(value):
                raise EvaluationError(
                    f"llm[{name!r}] is a {type(value).__name__}, not an LLM (from pk.connect())."
                )
        return dict(llm)
    raise EvaluationError(
        "llm: expected an LLM (from pk.connect()) or a dict of them by name, e.g. "
        "{'local': pk.connect(), 'gpt': pk.connect('openai')}."
    )


def _as_variants(variants: Any) -> dict[str, Variant]:
    if not isinstance(variants, Mapping) or not variants:
        raise EvaluationError(
            "variants: expected a dict of name -> prompt, strategy or Variant, e.g. "
            "{'zero-shot': pk.ZeroShot(...), 'few-shot': pk.FewShot(...)}."
        )
    out = {}
    for name, value in variants.items():
        if not isinstance(name, str) or not name.strip():
            raise EvaluationError(f"variants: names must be non-empty strings, got {name!r}.")
        out[name] = value if isinstance(value, Variant) else Variant(value)
    return out


def _variables(name: str, variant: Variant, rec: Record, inputs: InputMap | None) -> dict[str, Any]:
    mapping = variant.inputs if variant.inputs is not None else inputs
    if callable(mapping):
        values = dict(mapping(rec))
    else:
        values = dict(rec.fields)
        for var, column in (mapping or {}).items():
            if column not in rec.fields:
                have = ", ".join(repr(k) for k in rec.fields) or "none"
                raise EvaluationError(
                    f"variant {name!r}: inputs maps {var!r} to field {column!r}, which record "
                    f"{rec.id!r} ({rec.source}) does not have; it has {have}."
                )
            values[var] = rec.fields[column]
    names = prompt_variables(variant.prompt)
    if names is None:
        return values
    missing = sorted(names - values.keys())
    if missing:
        have = ", ".join(repr(k) for k in rec.fields) or "none"
        raise EvaluationError(
            f"variant {name!r} needs variable(s) {', '.join(map(repr, missing))}, which record "
            f"{rec.id!r} ({rec.source}) does not provide (its fields: {have}). Map fields to "
            f"variables with inputs={{{missing[0]!r}: '<field>'}}."
        )
    return {k: v for k, v in values.items() if k in names or k in PASS_THROUGH}


def _norm(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


def check_overlap(
    name: str, variant: Variant, records: Dataset, variables: list[dict[str, Any]]
) -> None:
    """Raise :class:`OverlapError` when one of the variant's few-shot examples is one of
    the scored records: its input equals one of the record's fields (or, for an example
    with several variables, all of them equal the record's variables), compared with case
    and whitespace folded."""
    examples: list[Example] = [ex for p in variant.prompts() for ex in getattr(p, "examples", [])]
    if not examples:
        return
    overlaps: list[tuple[int, str]] = []
    for rec, values in zip(records, variables, strict=True):
        texts = {_norm(v) for v in (*rec.fields.values(), *values.values()) if isinstance(v, str)}
        for i, ex in enumerate(examples):
            if isinstance(ex.input, str):
                hit = bool(ex.input.strip()) and _norm(ex.input) in texts
            else:
                hit = bool(ex.input) and all(
                    k in values and _norm(values[k]) == _norm(v) for k, v in ex.input.items()
                )
            if hit:
                overlaps.append((i, rec.id))
    if overlaps:
        shown = ", ".join(f"example {i + 1} is item {rid!r}" for i, rid in overlaps[:3])
        more = f" (and {len(overlaps) - 3} more)" if len(overlaps) > 3 else ""
        raise OverlapError(
            f"variant {name!r}: {shown}{more}. Scoring a prompt on its own few-shot examples "
            "inflates its accuracy: draw the examples from the train part of a split "
            "(train, test = dataset.split(...); train.examples(...)) and score the test part, "
            "or pass allow_overlap=True.",
            variant=name,
            overlaps=overlaps,
        )


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"
    if slug != text:
        slug += "-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:6]
    return slug


def _show(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


# --------------------------------------------------------------------------- running


@dataclass
class _Raw:
    """What a variant produced for one item, before scoring."""

    prediction: Any = None
    text: str | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    calls: int = 0
    latency_s: float | None = None
    cached: bool = False
    resumed: bool = False


@dataclass(frozen=True)
class _Options:
    params: SamplingParams | None
    concurrency: int
    out: Path | None
    progress: bool | None
    retry_failed: bool


def _predict(extractor: Callable[[str], Any], value: Any) -> Any:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    got, _ = _extract.apply(extractor, text)
    return got


async def _run_prompt(
    name: str, variant: Variant, llm: LLM, variables: list[dict[str, Any]], out: Path | None,
    opts: _Options,
) -> list[_Raw]:  # fmt: skip
    from ..batch import arun_batch

    extractor = variant.extractor()
    batch = await arun_batch(
        variant.prompt,
        llm,
        variables,
        params=merge_params(opts.params, variant.params),
        concurrency=opts.concurrency,
        out=out,
        progress=opts.progress,
        retry_failed=opts.retry_failed,
    )
    raws = []
    for item in batch:
        c = item.completion
        if c is None:
            raws.append(
                _Raw(error=f"{item.error_type}: {item.error_message}", resumed=item.resumed)
            )
            continue
        raws.append(
            _Raw(
                prediction=_predict(extractor, c.text),
                text=c.text,
                usage=c.usage,
                calls=c.requests,
                latency_s=None if item.resumed else c.latency_s,
                cached=c.cached,
                resumed=item.resumed,
            )
        )
    return raws


async def _adrive_counting(plan: Plan[Any], llm: LLM, raw: _Raw) -> Any:
    """Drive a strategy's plan (:func:`~promptkit.strategies._plan.adrive`) while counting
    its requests and whether every reply came from the cache."""
    cached = True
    seen = False

    def count(done: list[Completion]) -> None:
        nonlocal cached, seen
        for c in done:
            seen = True
            raw.calls += c.requests
            cached = cached and c.cached

    result = await adrive(plan, llm, observe=count)
    raw.cached = seen and cached
    return result


def _strategy_text(result: Any, value: Any) -> str | None:
    samples = getattr(result, "samples", None)
    if isinstance(samples, (list, tuple)) and samples and hasattr(samples[0], "text"):
        return "\n---\n".join(str(s.text) for s in samples)
    text = getattr(result, "text", None)
    if isinstance(text, str):
        return text
    return value if isinstance(value, str) else None


async def _run_strategy(
    name: str, variant: Variant, llm: LLM, variables: list[dict[str, Any]], opts: _Options
) -> list[_Raw]:
    target = variant.prompt
    params = merge_params(opts.params, variant.params)
    sem = asyncio.Semaphore(opts.concurrency)
    bar = Progress(len(variables), label=name) if _show(opts.progress) else None

    async def one(values: dict[str, Any]) -> _Raw:
        raw = _Raw()
        async with sem:
            started = time.perf_counter()
            try:
                if isinstance(target, Strategy):
                    result = await _adrive_counting(target.plan(llm, values, params), llm, raw)
                    value = target.value(result)
                else:
                    result = await target.arun(llm, params=params, **values)
                    raw.calls = int(getattr(result, "requests", 0) or 0)
                    value = getattr(result, "output", result)
            except PromptkitError as exc:
                raw.error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a strategy's bug must not lose the other items
                raw.error = f"{type(exc).__name__}: {exc}"
            else:
                usage = getattr(result, "usage", None)
                raw.usage = usage if isinstance(usage, Usage) else Usage()
                raw.text = _strategy_text(result, value)
                if variant.extract is not None:
                    raw.prediction = _predict(variant.extract, value)
                elif isinstance(value, str):
                    raw.prediction = value.strip() or None
                else:
                    raw.prediction = value
            raw.latency_s = time.perf_counter() - started
        if bar is not None:
            bar.update(ok=raw.error is None, cached=raw.cached)
        return raw

    try:
        return list(await asyncio.gather(*(one(v) for v in variables)))
    finally:
        if bar is not None:
            bar.close()


@dataclass
class _Judged:
    scores: list[float]
    texts: list[str | None]
    calls: int = 0
    usage: Usage = field(default_factory=Usage)
    unparsed: int = 0


async def _judge(
    judge: Judge, llm: LLM, records: Dataset, raws: list[_Raw], out: Path | None,
    opts: _Options,
) -> _Judged:  # fmt: skip
    from ..batch import arun_batch

    judged = _Judged([0.0] * len(raws), [None] * len(raws))
    todo = [i for i, r in enumerate(raws) if r.prediction is not None]
    if not todo:
        return judged
    inputs = [
        judge.variables(raws[i].prediction, records[i].expected, records[i], raws[i].text)
        for i in todo
    ]
    batch = await arun_batch(
        judge.prompt,
        llm,
        inputs,
        params=judge.params,
        concurrency=opts.concurrency,
        out=out,
        progress=opts.progress,
        retry_failed=opts.retry_failed,
    )
    for i, item in zip(todo, batch, strict=True):
        c = item.completion
        if c is None:
            judged.texts[i] = f"judge call failed: {item.error_type}: {item.error_message}"
            judged.unparsed += 1
            continue
        judged.texts[i] = c.text
        judged.calls += c.requests
        judged.usage = judged.usage + c.usage
        verdict = judge.verdict(c.text)
        if verdict is None:
            judged.unparsed += 1
        judged.scores[i] = verdict or 0.0
    return judged


def _score(metric: Metric, rec: Record, raw: _Raw) -> float:
    try:
        return metric(raw.prediction, rec.expected, rec)
    except EvaluationError:
        raise
    except Exception as exc:
        raise EvaluationError(
            f"metric {metric.name!r} failed on item {rec.id!r} ({rec.source}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _price_for(label: str | None, llm: LLM, prices: Mapping[str, Price]) -> Price | None:
    """evaluate()'s own ``prices`` first, then the LLM's table (connect(), promptkit.toml)."""
    own = getattr(getattr(llm, "observers", None), "prices", None)
    table = {**own, **prices} if own else prices
    return price_for(table, llm.backend.name, label, llm.model)


async def _traced(
    name: str, bname: str, n: int, progress: bool | None, work: Awaitable[VariantResult]
) -> VariantResult:
    """Await ``work`` (one variant of ``n`` items on one backend) under its span."""
    if _show(progress):
        print(f"eval: {name} @ {bname} ({n} items)", file=sys.stderr, flush=True)
    attrs = {"promptkit.eval.variant": name, "promptkit.eval.backend": bname}
    async with span("promptkit.evaluate.variant", attrs) as traced:
        result = await work
        traced.set("promptkit.eval.accuracy", result.accuracy)
        traced.set("promptkit.cost_usd", result.cost_usd)
        return result


async def _evaluate_variant(
    name: str,
    variant: Variant,
    variables: list[dict[str, Any]],
    bname: str,
    bllm: LLM,
    data: Dataset,
    scorer: Metric,
    backends: Mapping[str, LLM],
    prices: Mapping[str, Price],
    opts: _Options,
    confidence: float,
) -> VariantResult:
    """Run one variant on one backend, score it, and add it up."""
    stem = f"{_slug(name)}@{_slug(bname)}"
    started = time.perf_counter()
    if variant.is_prompt:
        path = opts.out / f"{stem}.jsonl" if opts.out is not None else None
        raws = await _run_prompt(name, variant, bllm, variables, path, opts)
    else:
        raws = await _run_strategy(name, variant, bllm, variables, opts)
    wall = time.perf_counter() - started
    judged: _Judged | None = None
    judge_cost: float | None = None
    if isinstance(scorer, Judge):
        jllm = scorer.llm if scorer.llm is not None else bllm
        jpath = opts.out / f"{stem}.judge.jsonl" if opts.out is not None else None
        judged = await _judge(scorer, jllm, data, raws, jpath, opts)
        jlabel = next((k for k, v in backends.items() if v is jllm), None)
        jprice = _price_for(jlabel, jllm, prices)
        judge_cost = jprice.cost(judged.usage) if jprice is not None else None
        scores = judged.scores
    else:
        scores = [_score(scorer, rec, raw) for rec, raw in zip(data, raws, strict=True)]
    items = tuple(
        ItemResult(
            id=rec.id,
            expected=rec.expected,
            prediction=raw.prediction,
            score=score,
            text=raw.text,
            error=raw.error,
            usage=raw.usage,
            calls=raw.calls,
            latency_s=raw.latency_s,
            cached=raw.cached,
            resumed=raw.resumed,
            judge_text=judged.texts[i] if judged is not None else None,
        )
        for i, (rec, raw, score) in enumerate(zip(data, raws, scores, strict=True))
    )
    usage = Usage()
    for it in items:
        usage = usage + it.usage
    price = _price_for(bname, bllm, prices)
    return VariantResult(
        variant=name,
        backend=bname,
        model=str(bllm.model or bllm.backend.name),
        items=items,
        confidence=confidence,
        wall_s=wall,
        cost_usd=price.cost(usage) if price is not None else None,
        judged=judged is not None,
        judge_calls=judged.calls if judged is not None else 0,
        judge_usage=judged.usage if judged is not None else Usage(),
        judge_cost_usd=judge_cost,
        judge_unparsed=judged.unparsed if judged is not None else 0,
    )


async def aevaluate(
    variants: Mapping[str, Any],
    dataset: Any,
    llm: LLM | Mapping[str, LLM],
    *,
    metric: Metric | str | Callable[..., float | bool] = "exact_match",
    expected: str = "expected",
    inputs: InputMap | None = None,
    params: SamplingParams | None = None,
    concurrency: int = 4,
    out: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    prices: Mapping[str, PriceLike] | None = None,
    allow_overlap: bool = False,
    retry_failed: bool = False,
    confidence: float = 0.95,
) -> EvalReport:
    """Async twin of :func:`evaluate`."""
    data = _as_dataset(dataset, expected)
    if not len(data):
        raise EvaluationError("the dataset holds no items to score.")
    backends = _as_backends(llm)
    scorer = as_metric(metric)
    plan = _as_variants(variants)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise EvaluationError(f"concurrency={concurrency!r}: expected a whole number >= 1.")
    if not (isinstance(confidence, float) and 0.0 < confidence < 1.0):
        raise EvaluationError(f"confidence={confidence!r}: expected a fraction such as 0.95.")
    table = {str(k): as_price(str(k), v) for k, v in (prices or {}).items()}
    prepared = {
        name: [_variables(name, v, rec, inputs) for rec in data] for name, v in plan.items()
    }
    if not allow_overlap:
        for name, v in plan.items():
            check_overlap(name, v, data, prepared[name])
    out_dir = out_folder(out, "results")
    opts = _Options(params, concurrency, out_dir, progress, retry_failed)
    results: dict[tuple[str, str], VariantResult] = {}
    for bname, bllm in backends.items():  # backend by backend: one model loaded at a time
        for name, variant in plan.items():  # one variant at a time: latencies stay its own
            work = _evaluate_variant(
                name, variant, prepared[name], bname, bllm, data, scorer, backends, table, opts,
                confidence,
            )  # fmt: skip
            results[(name, bname)] = await _traced(name, bname, len(data), opts.progress, work)
    ordered = [results[(name, b)] for name in plan for b in backends]
    return EvalReport(ordered, dataset=data.name, metric=scorer.name, confidence=confidence)


def _clients(args: Mapping[str, Any]) -> list[LLM]:  # what evaluate() closes
    llms = list(_as_backends(args["llm"]).values())
    metric = args["metric"]
    if isinstance(metric, Judge) and metric.llm is not None:
        llms.append(metric.llm)
    return llms


@blocking_twin(aevaluate, instead="await promptkit.aevaluate(...)", closing=_clients)
def evaluate(*args: Any, **kwargs: Any) -> EvalReport:
    """Run every variant over the scored items of ``dataset`` on every backend, score the
    predictions with ``metric`` and return an :class:`EvalReport`.

    - ``variants``: ``{name: prompt | strategy | Variant}`` (see :class:`Variant`).
    - ``dataset``: a :class:`Dataset`, a :class:`Split` (its ``test`` part is scored), a
      ``.jsonl``/``.csv`` path, or a list of dicts; ``expected`` names the answer field
      when it is read here.
    - ``llm``: one LLM, or ``{name: LLM}`` to compare backends (a result per variant x
      backend).
    - ``metric``: a :mod:`~promptkit.evaluation.metrics` metric, its name, or a function
      ``(prediction, expected) -> bool | float``.
    - ``inputs``: ``{prompt variable: dataset field}``; fields named like a variable are
      passed without it.
    - ``params``: sampling parameters for every call (a variant's own ``params`` win).
    - ``concurrency``: items in flight per variant. ``progress``: progress bars on stderr
      (default: when it is a terminal).
    - ``out``: a folder for durable results: each prompt variant's replies are appended to
      ``<variant>@<backend>.jsonl`` as they arrive (the judge's to ``...judge.jsonl``), and
      running again resumes from them; ``retry_failed=True`` sends failed items again.
    - ``prices``: ``{model or backend name: Price | (input, output)}`` in dollars per
      million tokens; local backends (llamacpp, fake) cost 0 unless priced.
    - ``allow_overlap``: score even when a variant's few-shot examples are scored items
      (refused by default with :class:`OverlapError`).
    - ``confidence``: of the accuracy intervals (Wilson score, see
      :func:`~promptkit.evaluation.wilson_interval`).

    Prompts go through the batch runner (:func:`promptkit.run_batch`: bounded
    concurrency, progress, rate limits, the LLM's response cache, durable ``out``).
    Strategies are not prompts: they run with the same bounded concurrency and progress
    and use the LLM's cache, but have no durable results file. Variants run one after
    another, so their latencies do not disturb each other.

    >>> import promptkit as pk
    >>> from promptkit.evaluation import evaluate
    >>> llm = pk.LLM(pk.FakeBackend(lambda r: "4" if "2+2" in r.messages[-1].content else "?"))
    >>> report = evaluate(
    ...     {"terse": pk.ZeroShot(instruction="Answer with a number.")},
    ...     [{"input": "2+2?", "expected": 4}, {"input": "3+3?", "expected": 6}],
    ...     llm, metric="numeric", progress=False,
    ... )
    >>> r = report["terse"]
    >>> r.accuracy, r.calls, [round(x, 3) for x in r.ci]
    (0.5, 2, [0.095, 0.905])
    """
    raise AssertionError("never called: blocking_twin makes the entry that runs aevaluate")
