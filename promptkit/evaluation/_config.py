"""Evaluation configuration files: what ``promptkit eval CONFIG`` runs.

A TOML (``.toml``) or YAML (``.yaml``/``.yml``) file; paths in it are relative to the
file. Every key but ``dataset`` and ``variants`` is optional::

    dataset = "data/arithmetic.jsonl"   # .jsonl or .csv
    expected = "answer"                 # the field holding the expected answer
    # media = { photo = "image" }       # columns holding a path/URL of an image/audio/file
    inputs = { input = "question" }     # prompt variable = dataset field, for every variant
    metric = "numeric"                  # exact_match | contains | regex | numeric | judge,
                                        # or a table: { type = "numeric", tolerance = 0.5 }
                                        # { type = "custom", function = "module:function" }
                                        # { type = "judge", backend = "big", scale = [1, 5] }
    split = { holdout = 0.5, seed = 0 } # few-shot examples from train, scoring on test
    limit = 20                          # score the first N test items only
    concurrency = 4
    out = "results/"                    # durable, resumable results (one JSONL per variant)
    params = { preset = "precise", max_tokens = 64 }   # for every variant

    [backends]                          # default: one, connect() with no arguments
    local = { backend = "llamacpp" }    # a table: connect() keyword arguments
    gpt = "openai"                      # a string: a profile of promptkit.toml

    [prices]                            # dollars per million tokens (input, output)
    "gpt-4o-mini" = [0.15, 0.60]

    [variants.zero-shot]
    technique = "ZeroShot"              # a technique and its fields, as in prompt files
    instruction = "Solve the problem. Reply with the number only."

    [variants.few-shot]
    file = "prompts/few_shot.yaml"      # or a .json, .yaml or .prompty prompt file
    examples_from_train = 4             # the first 4 train items become its examples
    examples_input = "question"         # (default: the field mapped to `input`)

    [variants.cot]
    technique = "ChainOfThought"
    instruction = "Solve the problem."
    examples_from_train = 1
    examples_rationale = "rationale"    # a field of worked reasoning
    params = { max_tokens = 128 }

    [variants.vote]
    technique = "ChainOfThought"
    instruction = "Solve the problem."
    self_consistency = { k = 5, temperature = 0.7, seed = 1 }
    extract = "number"                  # answer | text | last_line | number | regex:PATTERN
                                        # | one_of:a|b|c | json:field.path

    [outputs]                           # written after the run (the CLI's flags win)
    json = "report.json"
    html = "report.html"
    png = "report.png"
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from .._errors import ConfigurationError, PromptError, PromptkitError
from .._params import PRESETS, SamplingParams
from ..prompts import Example, Prompt, PromptBase
from ..strategies import extract as _extract
from ._dataset import Dataset, Split
from ._errors import DatasetError
from ._report import EvalReport
from ._run import Price, Variant, as_price, evaluate
from .metrics import Metric, as_metric, contains, custom, exact_match, judge, numeric, regex

if TYPE_CHECKING:
    from .._client import LLM

__all__ = ["EvalConfig", "load_config"]

_T = TypeVar("_T")

_TOP = frozenset(
    {
        "dataset", "expected", "id", "media", "inputs", "metric", "split", "limit",
        "concurrency", "confidence", "out", "params", "backends", "prices", "variants",
        "outputs", "allow_overlap", "retry_failed",
    }
)  # fmt: skip
_EVAL_KEYS = frozenset(
    {
        "file", "extract", "inputs", "params", "self_consistency", "examples_from_train",
        "examples_input", "examples_rationale",
    }
)  # fmt: skip


@dataclass
class EvalConfig:
    """A loaded configuration: everything :func:`~promptkit.evaluate` needs, and where to
    write the report. Build it with :func:`load_config`; :meth:`run` evaluates."""

    path: Path
    scored: Dataset
    split: Split | None
    variants: dict[str, Variant]
    backends: dict[str, Any]
    metric: Metric
    inputs: dict[str, str] | None = None
    params: SamplingParams | None = None
    concurrency: int = 4
    confidence: float = 0.95
    prices: dict[str, Price] = field(default_factory=dict)
    out: Path | None = None
    allow_overlap: bool = False
    retry_failed: bool = False
    outputs: dict[str, Path] = field(default_factory=dict)

    def llms(self) -> dict[str, LLM]:
        """The backends, connected (llama.cpp loads its model on the first call only)."""
        from .._config import connect

        out: dict[str, LLM] = {}
        for name, spec in self.backends.items():
            try:
                out[name] = connect(profile=spec) if isinstance(spec, str) else connect(**spec)
            except TypeError as exc:
                raise ConfigurationError(f"{self.path}: backends.{name}: {exc}.") from None
        if not out:
            llm = connect()
            out[str(llm.model or llm.backend.name)] = llm
        return out

    def run(self, *, progress: bool | None = None) -> EvalReport:
        """Run the evaluation."""
        llms = self.llms()
        metric = self.metric
        if isinstance(metric, _PendingJudge):
            metric = metric.build(llms, self.path)
        return evaluate(
            self.variants,
            self.scored,
            llms,
            metric=metric,
            inputs=self.inputs,
            params=self.params,
            concurrency=self.concurrency,
            out=self.out,
            progress=progress,
            prices=self.prices,
            allow_overlap=self.allow_overlap,
            retry_failed=self.retry_failed,
            confidence=self.confidence,
        )


class _PendingJudge(Metric):
    """A judge whose backend is connected when the run starts."""

    def __init__(self, spec: Mapping[str, Any], base: Path, where: str) -> None:
        self.name = "judge"
        self.spec = dict(spec)
        self.base = base
        self.where = where

    def build(self, llms: Mapping[str, LLM], path: Path) -> Metric:
        from .._config import connect
        from .._files import load_prompt

        spec = dict(self.spec)
        backend = spec.pop("backend", None)
        llm: LLM | None = None
        if isinstance(backend, str):
            llm = llms[backend] if backend in llms else connect(profile=backend)
        elif isinstance(backend, Mapping):
            llm = connect(**backend)
        elif backend is not None:
            raise ConfigurationError(f"{self.where}.backend: expected a name or a table.")
        prompt: PromptBase | None = None
        if "prompt" in spec:
            prompt = load_prompt(as_path(self.base, spec.pop("prompt"), f"{self.where}.prompt"))
        scale = spec.pop("scale", None)
        params = as_params(spec.pop("params", None), f"{self.where}.params")
        if spec:
            raise ConfigurationError(f"{path}: {self.where}: unknown key(s) {sorted(spec)}.")
        if scale is not None:
            if not (isinstance(scale, list) and len(scale) == 2):
                raise ConfigurationError(f"{self.where}.scale: expected [low, high].")
            return judge(prompt, llm, scale=(scale[0], scale[1]), params=params)
        return judge(prompt, llm, params=params)

    def score(self, prediction: Any, expected: Any, record: Any) -> float:  # pragma: no cover
        raise ConfigurationError("a configured judge is built when the run starts")


# --------------------------------------------------------------------------- reading


def read_config(
    path: str | os.PathLike[str], what: str, build: Callable[[dict[str, Any], Path, Path], _T]
) -> _T:
    """Read the ``what`` config file at ``path`` and ``build(data, path, folder)`` from it;
    a :class:`ConfigurationError` from building names the file (the load_config of
    ``promptkit eval`` and ``promptkit optimize``)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigurationError(f"{p}: no such {what} config file.")
    data = read_file(p)
    base = p.resolve().parent
    try:
        return build(data, p, base)
    except ConfigurationError as exc:  # other errors (dataset, prompt files) name their file
        message = str(exc)
        raise ConfigurationError(
            message if message.startswith(str(p)) else f"{p}: {message}"
        ) from None


def check_keys(data: Mapping[str, Any], known: frozenset[str]) -> None:
    """Refuse keys of ``data`` that are not ``known``, suggesting the closest known one."""
    unknown = sorted(set(data) - known)
    if unknown:
        import difflib

        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, sorted(known), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigurationError(f"unknown key(s) {', '.join(hints)}.")


def read_file(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        from .._config import load_toml

        return load_toml(path)
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"{path} cannot be read: {exc.strerror}.") from None
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path} is not valid YAML: {exc}.") from None
        if not isinstance(data, dict):
            raise ConfigurationError(f"{path}: expected a mapping of settings at the top.")
        return data
    raise ConfigurationError(
        f"{path}: an evaluation config is a .toml or .yaml file (got {suffix or 'no suffix'!r})."
    )


def as_path(base: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}: expected a path, got {value!r}.")
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else base / p


def as_table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where}: expected a table, got {type(value).__name__}.")
    return {str(k): v for k, v in value.items()}


def as_params(value: Any, where: str) -> SamplingParams | None:
    if value is None:
        return None
    table = as_table(value, where)
    preset_name = table.pop("preset", None)
    base: SamplingParams | None = None
    if preset_name is not None:
        base = PRESETS.get(str(preset_name))
        if base is None:
            raise ConfigurationError(
                f"{where}.preset: unknown preset {preset_name!r}; known: {', '.join(PRESETS)}."
            )
    try:
        own = SamplingParams(**table)
    except (ValidationError, PromptkitError, TypeError) as exc:
        raise ConfigurationError(f"{where}: {' '.join(str(exc).split())}") from None
    return own if base is None else base.merge(own)


def load_dataset_key(data: Mapping[str, Any], base: Path, expected: str) -> Dataset:
    """The config's ``dataset`` file, read with its ``id`` and ``media`` keys."""
    media = as_strings(data["media"], "media") if "media" in data else None
    return Dataset.load(
        as_path(base, data["dataset"], "dataset"),
        expected=expected,
        id=str(data.get("id", "id")),
        media=media,
    )


def as_strings(value: Any, where: str) -> dict[str, str]:
    table = as_table(value, where)
    for k, v in table.items():
        if not isinstance(v, str):
            raise ConfigurationError(f"{where}.{k}: expected a field name, got {v!r}.")
    return table


def _function(spec: Any, where: str, base: Path) -> Callable[..., Any]:
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigurationError(f"{where}: expected 'module:function', got {spec!r}.")
    module, _, qual = spec.partition(":")
    added = str(base)
    sys.path.insert(0, added)  # modules beside the config file
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"{where}: cannot import {spec!r}: {exc}.") from None
    finally:
        if added in sys.path:
            sys.path.remove(added)
    if not callable(obj):
        raise ConfigurationError(f"{where}: {spec!r} is not callable.")
    fn: Callable[..., Any] = obj
    return fn


def parse_metric(value: Any, base: Path) -> Metric:
    if value is None:
        return exact_match()
    if isinstance(value, str):
        if value == "judge":
            return _PendingJudge({}, base, "metric")
        try:
            return as_metric(value)
        except PromptkitError as exc:
            raise ConfigurationError(f"metric: {exc}") from None
    spec = as_table(value, "metric")
    kind = spec.pop("type", None)
    try:
        if kind == "exact_match":
            norm = spec.pop("normalize", "default")
            if norm not in ("default", "none"):
                raise ConfigurationError("metric.normalize: expected 'default' or 'none'.")
            metric = exact_match() if norm == "default" else exact_match(normalize=None)
        elif kind == "contains":
            metric = contains(whole_word=bool(spec.pop("whole_word", False)))
        elif kind == "regex":
            metric = regex(spec.pop("pattern", None))
        elif kind == "numeric":
            metric = numeric(spec.pop("tolerance", 0.0), relative=bool(spec.pop("relative", False)))
        elif kind == "custom":
            metric = custom(_function(spec.pop("function", None), "metric.function", base))
        elif kind == "judge":
            return _PendingJudge(spec, base, "metric")
        else:
            raise ConfigurationError(
                f"metric.type: {kind!r} is not one of exact_match, contains, regex, numeric, "
                "custom, judge."
            )
    except PromptkitError as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"metric: {exc}") from None
    if spec:
        raise ConfigurationError(f"metric: unknown key(s) {sorted(spec)} for type {kind!r}.")
    return metric


def parse_extractor(spec: Any, prompt: Any, where: str) -> Callable[[str], Any] | None:
    if spec is None:
        return None
    if not isinstance(spec, str):
        raise ConfigurationError(f"{where}: expected a string such as 'number', got {spec!r}.")
    kind, _, arg = spec.partition(":")
    try:
        if kind == "answer" and not arg:
            return _extract.answer(prompt if isinstance(prompt, PromptBase) else prompt.prompt)
        if kind == "text" and not arg:
            return lambda text: text.strip() or None
        if kind == "last_line" and not arg:
            return _extract.last_line()
        if kind == "number" and not arg:
            return _extract.number()
        if kind == "regex" and arg:
            return _extract.regex(arg)
        if kind == "one_of" and arg:
            return _extract.one_of([o for o in arg.split("|") if o])
        if kind == "json" and arg:
            return _extract.json_field(arg)
    except (ValueError, AttributeError) as exc:
        raise ConfigurationError(f"{where}: {exc}.") from None
    raise ConfigurationError(
        f"{where}: {spec!r} is not one of answer, text, last_line, number, regex:PATTERN, "
        "one_of:a|b|c, json:field.path."
    )


def _train_examples(
    spec: Mapping[str, Any], where: str, split: Split | None, inputs: Mapping[str, str] | None
) -> list[Example] | None:
    n = spec.get("examples_from_train")
    if n is None:
        return None
    if split is None:
        raise ConfigurationError(
            f"{where}.examples_from_train needs a split (split = {{ holdout = 0.5 }}): "
            "examples come from its train part."
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigurationError(f"{where}.examples_from_train: expected a whole number.")
    column = spec.get("examples_input") or (inputs or {}).get("input", "input")
    rationale = spec.get("examples_rationale")
    try:
        return split.train.examples(
            n, input=str(column), rationale=None if rationale is None else str(rationale)
        )
    except DatasetError as exc:
        raise ConfigurationError(f"{where}.examples_from_train: {exc}") from None


def _variant(
    name: str, value: Any, base: Path, split: Split | None, inputs: dict[str, str] | None
) -> Variant:
    from .._files import load_prompt, prompt_from_dict

    where = f"variants.{name}"
    spec = as_table(value, where)
    own_inputs = as_strings(spec["inputs"], f"{where}.inputs") if "inputs" in spec else None
    prompt_data = {k: v for k, v in spec.items() if k not in _EVAL_KEYS}
    examples = _train_examples(spec, where, split, own_inputs if own_inputs is not None else inputs)
    prompt: PromptBase
    try:
        if "file" in spec:
            if prompt_data:
                raise ConfigurationError(
                    f"{where}: give a prompt `file` or a `technique` with its fields, not both "
                    f"(found {sorted(prompt_data)})."
                )
            prompt = load_prompt(as_path(base, spec["file"], f"{where}.file"))
            if examples is not None:
                if not isinstance(prompt, Prompt):
                    raise ConfigurationError(
                        f"{where}: a {type(prompt).__name__} takes no examples_from_train."
                    )
                prompt = prompt.model_copy(update={"examples": examples})
        elif "technique" in prompt_data:
            if examples is not None:
                prompt_data["examples"] = examples
            prompt = prompt_from_dict(prompt_data, where=where, base_dir=base)
        else:
            raise ConfigurationError(
                f'{where}: give a prompt `file = "..."` or a `technique = "ZeroShot"` (with its '
                "fields)."
            )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(prompt)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"{where}: {problems}.") from None
    except (PromptError, ValueError) as exc:
        if isinstance(exc, ConfigurationError) or str(exc).startswith(str(base)):
            raise
        raise ConfigurationError(f"{where}: {' '.join(str(exc).split())}") from None
    target: Any = prompt
    sc = spec.get("self_consistency")
    if sc is not None:
        from ..strategies import SelfConsistency

        options = as_table(sc, f"{where}.self_consistency")
        try:
            target = SelfConsistency(prompt, **options)
        except (TypeError, PromptkitError) as exc:
            raise ConfigurationError(f"{where}.self_consistency: {exc}") from None
    return Variant(
        target,
        extract=parse_extractor(spec.get("extract"), target, f"{where}.extract"),
        inputs=own_inputs,
        params=as_params(spec.get("params"), f"{where}.params"),
    )


def load_config(path: str | os.PathLike[str]) -> EvalConfig:
    """Read an evaluation config (see the module docs); errors name the file and the key."""
    return read_config(path, "evaluation", _build)


def _build(data: dict[str, Any], p: Path, base: Path) -> EvalConfig:
    check_keys(data, _TOP)
    if "dataset" not in data:
        raise ConfigurationError('`dataset = "path/to/data.jsonl"` is missing.')
    expected = str(data.get("expected", "expected"))
    dataset = load_dataset_key(data, base, expected)
    split: Split | None = None
    if data.get("split") is not None:
        spec = as_table(data["split"], "split")
        extra = sorted(set(spec) - {"holdout", "seed"})
        if extra:
            raise ConfigurationError(f"split: unknown key(s) {extra}; it takes holdout and seed.")
        split = dataset.split(spec.get("holdout", 0.5), seed=int(spec.get("seed", 0)))
    scored = split.test if split is not None else dataset
    limit = data.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit: expected a whole number >= 1, got {limit!r}.")
        scored = scored[:limit]
    inputs = as_strings(data["inputs"], "inputs") if "inputs" in data else None
    raw_variants = as_table(data.get("variants"), "variants") if "variants" in data else {}
    if not raw_variants:
        raise ConfigurationError("no [variants.NAME] tables: give at least one variant.")
    variants = {
        name: _variant(name, value, base, split, inputs) for name, value in raw_variants.items()
    }
    backends: dict[str, Any] = {}
    for name, spec in as_table(data.get("backends", {}), "backends").items():
        if isinstance(spec, str):
            backends[name] = spec
        else:
            table = as_table(spec, f"backends.{name}")
            if "params" in table:
                table["params"] = as_params(table["params"], f"backends.{name}.params")
            backends[name] = table
    prices = {k: as_price(k, v) for k, v in as_table(data.get("prices", {}), "prices").items()}
    outputs = {
        k: as_path(base, v, f"outputs.{k}")
        for k, v in as_table(data.get("outputs", {}), "outputs").items()
    }
    extra = sorted(set(outputs) - {"json", "html", "png"})
    if extra:
        raise ConfigurationError(f"outputs: unknown key(s) {extra}; it takes json, html and png.")
    concurrency = data.get("concurrency", 4)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency: expected a whole number >= 1, got {concurrency!r}.")
    return EvalConfig(
        path=p,
        scored=scored,
        split=split,
        variants=variants,
        backends=backends,
        metric=parse_metric(data.get("metric"), base),
        inputs=inputs,
        params=as_params(data.get("params"), "params"),
        concurrency=concurrency,
        confidence=float(data.get("confidence", 0.95)),
        prices=prices,
        out=as_path(base, data["out"], "out") if data.get("out") else None,
        allow_overlap=bool(data.get("allow_overlap", False)),
        retry_failed=bool(data.get("retry_failed", False)),
        outputs=outputs,
    )
