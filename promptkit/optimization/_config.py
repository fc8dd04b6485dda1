"""Optimisation configuration files: what ``promptkit optimize CONFIG`` runs.

A TOML (``.toml``) or YAML (``.yaml``/``.yml``) file; paths in it are relative to the
file. Only ``dataset`` and ``prompt`` are required; the keys shared with ``promptkit eval``
(``expected``, ``id``, ``media``, ``inputs``, ``metric``, ``params``, ``prices``, ``concurrency``,
``confidence``, ``out``) mean the same there::

    dataset = "data/arithmetic.jsonl"
    expected = "answer"
    inputs = { input = "question" }
    metric = "numeric"
    prompt = "prompts/start.yaml"        # a prompt file, or a table:
                                         # prompt = { technique = "ZeroShot", instruction = "..." }
    backend = { backend = "llamacpp" }   # connect() arguments, or a profile name (default:
                                         # connect() with no arguments)
    proposer = "big"                     # the model that proposes instruction rewrites
    proposals = 3
    instructions = ["Reply with the number only."]   # your own variants
    techniques = ["few_shot", "chain_of_thought"]    # and zero_shot
    roles = ["a careful maths tutor"]
    self_consistency = 3                 # k samples, voted (a candidate)
    max_examples = 4
    examples_input = "question"          # the field shown as an example's input
    rationale = "rationale"              # a field of worked reasoning, for labelled examples
    extract = "number"                   # as in promptkit eval
    holdout = { validation = 0.3, test = 0.3 }
    seed = 0
    finalists = 3
    confidence = 0.95
    budget = { calls = 400, tokens = 200000, usd = 0.50 }
    params = { preset = "precise", max_tokens = 48 }
    out = "journal/"                     # durable; run again to resume

    [outputs]                            # written after the run (the CLI's flags win)
    prompt = "best.yaml"                 # .json, .yaml or .prompty
    json = "optimize.json"
    html = "optimize.html"
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _config as _connect_config
from .._errors import ConfigurationError, PromptkitError
from ..evaluation import _config as _eval_config
from ..evaluation._dataset import Dataset
from ..evaluation._run import as_price
from ..prompts import Prompt
from ._report import Budget, OptimizeReport
from ._search import TECHNIQUES, optimize

if TYPE_CHECKING:
    from .._client import LLM

__all__ = ["OptimizeConfig", "load_config"]

_TOP = frozenset(
    {
        "dataset", "expected", "id", "media", "inputs", "metric", "prompt", "backend",
        "proposer",
        "proposals", "instructions", "techniques", "roles", "self_consistency", "max_examples",
        "subsets", "examples_input", "rationale", "extract", "holdout", "seed", "finalists",
        "confidence", "budget", "params", "concurrency", "out", "prices", "outputs",
    }
)  # fmt: skip


@dataclass
class OptimizeConfig:
    """A loaded configuration; :meth:`run` optimises."""

    path: Path
    dataset: Dataset
    prompt: Prompt
    backend: Any
    proposer: Any
    options: dict[str, Any]
    outputs: dict[str, Path] = field(default_factory=dict)

    def _connect(self, spec: Any, where: str) -> LLM:
        try:
            if isinstance(spec, str):
                return _connect_config.connect(profile=spec)
            return _connect_config.connect(**(spec or {}))
        except TypeError as exc:
            raise ConfigurationError(f"{self.path}: {where}: {exc}.") from None

    def run(self, *, progress: bool | None = None) -> OptimizeReport:
        """Connect the backends and run :func:`~promptkit.optimization`."""
        llm = self._connect(self.backend, "backend")
        options = dict(self.options)
        if self.proposer is not None:
            options["proposer"] = self._connect(self.proposer, "proposer")
        metric = options.get("metric")
        if metric is not None and hasattr(metric, "build"):  # a judge: its backend now
            options["metric"] = metric.build({"backend": llm}, self.path)
        return optimize(self.prompt, self.dataset, llm, progress=progress, **options)


def _whole(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigurationError(f"{where}: expected a whole number >= {low}, got {value!r}.")
    return value


def _texts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigurationError(f"{where}: expected a list of non-empty strings.")
    return list(value)


def load_config(path: str | os.PathLike[str]) -> OptimizeConfig:
    """Read an optimisation config (see the module docs); errors name the file and key."""
    return _eval_config.read_config(path, "optimisation", _build)


def _build(data: dict[str, Any], p: Path, base: Path) -> OptimizeConfig:
    from .._files import load_prompt, prompt_from_dict

    _eval_config.check_keys(data, _TOP)
    for key in ("dataset", "prompt"):
        if key not in data:
            raise ConfigurationError(f"`{key} = ...` is missing.")
    dataset = _eval_config.load_dataset_key(data, base, str(data.get("expected", "expected")))
    spec = data["prompt"]
    try:
        if isinstance(spec, str):
            prompt = load_prompt(_eval_config.as_path(base, spec, "prompt"))
        else:
            prompt = prompt_from_dict(
                _eval_config.as_table(spec, "prompt"), where="prompt", base_dir=base
            )
    except (PromptkitError, ValueError) as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"prompt: {' '.join(str(exc).split())}") from None
    if not isinstance(prompt, Prompt):
        raise ConfigurationError(
            f"prompt: a {type(prompt).__name__} cannot be optimised; give a technique prompt."
        )
    opts: dict[str, Any] = {"verbose": True}
    if "inputs" in data:
        opts["inputs"] = _eval_config.as_strings(data["inputs"], "inputs")
    if "metric" in data:
        opts["metric"] = _eval_config.parse_metric(data["metric"], base)
    if "params" in data:
        opts["params"] = _eval_config.as_params(data["params"], "params")
    if "extract" in data:
        opts["extract"] = _eval_config.parse_extractor(data["extract"], prompt, "extract")
    if "prices" in data:
        opts["prices"] = {
            k: as_price(k, v) for k, v in _eval_config.as_table(data["prices"], "prices").items()
        }
    if data.get("out"):
        opts["out"] = _eval_config.as_path(base, data["out"], "out")
    for key, low in (("proposals", 0), ("max_examples", 1), ("subsets", 0), ("finalists", 1),
                     ("concurrency", 1), ("seed", 0), ("self_consistency", 2)):  # fmt: skip
        if key in data:
            opts[key] = _whole(data[key], key, low)
    for key in ("instructions", "roles"):
        if key in data:
            opts[key] = _texts(data[key], key)
    if "techniques" in data:
        techniques = _texts(data["techniques"], "techniques")
        bad = sorted(set(techniques) - TECHNIQUES)
        if bad:
            raise ConfigurationError(f"techniques: unknown {bad}; known: {sorted(TECHNIQUES)}.")
        opts["techniques"] = techniques
    for key in ("examples_input", "rationale"):
        if key in data:
            if not isinstance(data[key], str):
                raise ConfigurationError(f"{key}: expected a field name, got {data[key]!r}.")
            opts[key] = data[key]
    if "confidence" in data:
        opts["confidence"] = float(data["confidence"])
    if "holdout" in data:
        h = _eval_config.as_table(data["holdout"], "holdout")
        extra = sorted(set(h) - {"validation", "test"})
        if extra:
            raise ConfigurationError(f"holdout: unknown key(s) {extra}; it takes validation, test.")
        opts["holdout"] = (float(h.get("validation", 0.3)), float(h.get("test", 0.3)))
    if "budget" in data:
        b = _eval_config.as_table(data["budget"], "budget")
        extra = sorted(set(b) - {"calls", "tokens", "usd"})
        if extra:
            raise ConfigurationError(
                f"budget: unknown key(s) {extra}; it takes calls, tokens, usd."
            )
        try:
            opts["budget"] = Budget(**b)
        except PromptkitError as exc:
            raise ConfigurationError(f"budget: {exc}") from None
    outputs = {
        k: _eval_config.as_path(base, v, f"outputs.{k}")
        for k, v in _eval_config.as_table(data.get("outputs", {}), "outputs").items()
    }
    extra = sorted(set(outputs) - {"prompt", "json", "html"})
    if extra:
        raise ConfigurationError(f"outputs: unknown key(s) {extra}; it takes prompt, json, html.")
    return OptimizeConfig(
        path=p,
        dataset=dataset,
        prompt=prompt,
        backend=data.get("backend"),
        proposer=data.get("proposer"),
        options=opts,
        outputs=outputs,
    )
