"""Metrics: how a prediction is scored against the expected answer.

A metric returns a score from 0.0 (wrong) to 1.0 (right); the accuracy of a variant is the
mean score. A prediction of ``None`` (no answer could be extracted, or the call failed)
scores 0 without asking the metric. When the expected answer is a list, it holds every
acceptable answer and the best score counts (except for :func:`custom`, which gets the list).

>>> from promptkit.evaluation import metrics
>>> metrics.exact_match()("  Paris. ", "paris"), metrics.exact_match()("42.0", 42)
(1.0, 1.0)
>>> metrics.contains()("It is Paris, France.", "paris")
1.0
>>> metrics.numeric(tolerance=0.5)("The answer is 3.4", 3), metrics.numeric()("about 7", 8)
(1.0, 0.0)
>>> metrics.regex()("ORD-1234", r"ORD-\\d{4}")
1.0
>>> metrics.custom(lambda pred, exp: len(pred) <= len(exp))("ok", "fine")
1.0

:func:`judge` asks a model (model-as-judge); its calls are counted apart from the
variant's own.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .._params import SamplingParams
from ..prompts import Delimited, PromptBase
from ..strategies import extract as _extract
from ..strategies import normalize as _normalize
from ..strategies._plan import select
from ._dataset import Record
from ._errors import EvaluationError

if TYPE_CHECKING:
    from .._client import LLM

__all__ = [
    "Judge",
    "Metric",
    "as_metric",
    "contains",
    "custom",
    "exact_match",
    "judge",
    "numeric",
    "parse_number",
    "regex",
]

Normaliser = Callable[[str], str]


class Metric:
    """Base of every metric: subclasses set ``name`` and implement :meth:`score`.

    Call a metric as ``metric(prediction, expected, record=None)``: ``None`` predictions
    score 0, lists of expected answers take the best score, and the score is checked to
    be a number from 0 to 1 (a bool counts as 0 or 1).
    """

    name: str = "metric"
    #: whether a list of expected answers means "any of these".
    any_of_list: bool = True

    def score(self, prediction: Any, expected: Any, record: Record | None) -> float | bool:
        """The score of one prediction (never ``None`` here)."""
        raise NotImplementedError

    def __call__(self, prediction: Any, expected: Any, record: Record | None = None) -> float:
        if prediction is None:
            return 0.0
        if self.any_of_list and isinstance(expected, (list, tuple)):
            return max(
                (self._checked(self.score(prediction, e, record)) for e in expected), default=0.0
            )
        return self._checked(self.score(prediction, expected, record))

    def _checked(self, value: Any) -> float:
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, (int, float)) and 0.0 <= value <= 1.0:
            return float(value)
        raise EvaluationError(
            f"metric {self.name!r} returned {value!r}: a metric returns a bool or a number "
            "from 0 to 1."
        )

    def __repr__(self) -> str:
        return f"<Metric {self.name}>"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    dump = getattr(value, "model_dump_json", None)
    if callable(dump):
        return str(dump())
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


class _Fn(Metric):
    def __init__(self, name: str, fn: Callable[[Any, Any, Record | None], float | bool]) -> None:
        self.name = name
        self._fn = fn

    def score(self, prediction: Any, expected: Any, record: Record | None) -> float | bool:
        return self._fn(prediction, expected, record)


def _as_normaliser(normalize: Normaliser | Sequence[Normaliser] | None) -> Normaliser:
    if normalize is None:
        return _normalize.identity
    if callable(normalize):
        return normalize
    return _normalize.compose(*normalize)


def exact_match(normalize: Normaliser | Sequence[Normaliser] | None = _normalize.DEFAULT) -> Metric:
    """1 when the prediction equals the expected answer once both are normalised.

    ``normalize`` is a function ``str -> str`` or a sequence of them (see
    :mod:`promptkit.strategies.normalize`); the default folds case, whitespace, surrounding
    punctuation and number spelling (``"42.0"`` == ``"42"``). ``None`` compares as is.

    >>> exact_match(normalize=None)("Paris", "paris")
    0.0
    """
    norm = _as_normaliser(normalize)

    def exact(prediction: Any, expected: Any, record: Record | None) -> bool:
        return norm(_text(prediction)) == norm(_text(expected))

    return _Fn("exact_match", exact)


def contains(
    normalize: Normaliser | Sequence[Normaliser] | None = (
        _normalize.casefold,
        _normalize.whitespace,
    ),
    *,
    whole_word: bool = False,
) -> Metric:
    """1 when the expected answer occurs in the prediction (after ``normalize``, by default
    case and whitespace folding); ``whole_word=True`` wants it between word boundaries.

    >>> contains(whole_word=True)("14 apples", "4"), contains()("14 apples", "4")
    (0.0, 1.0)
    """
    norm = _as_normaliser(normalize)

    def contains_(prediction: Any, expected: Any, record: Record | None) -> bool:
        needle = norm(_text(expected))
        hay = norm(_text(prediction))
        if not needle:
            return False
        if whole_word:
            return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", hay) is not None
        return needle in hay

    return _Fn("contains", contains_)


def regex(pattern: str | None = None, *, flags: int = re.IGNORECASE) -> Metric:
    """1 when the prediction matches a regular expression (``re.search``).

    Without ``pattern`` the expected answer *is* the pattern. With one, ``{expected}`` in
    it stands for the expected answer, escaped: ``regex(r"^\\W*{expected}\\W*$")``.

    >>> regex(r"\\b{expected}\\b")("the answer: 12.", "12")
    1.0
    """
    if pattern is not None:
        try:
            re.compile(pattern.replace("{expected}", "x"), flags)
        except re.error as exc:
            raise EvaluationError(f"regex metric: invalid pattern {pattern!r}: {exc}.") from None

    def regex_(prediction: Any, expected: Any, record: Record | None) -> bool:
        if pattern is None:
            source = _text(expected)
        else:
            source = pattern.replace("{expected}", re.escape(_text(expected)))
        try:
            compiled = re.compile(source, flags)
        except re.error as exc:
            where = f" (item {record.id})" if record is not None else ""
            raise EvaluationError(
                f"regex metric: the expected answer{where} is not a valid pattern: {exc}."
            ) from None
        return compiled.search(_text(prediction)) is not None

    return _Fn("regex" if pattern is None else f"regex({pattern})", regex_)


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def parse_number(value: Any) -> Decimal | None:
    """A number from a value: numbers as they are; in text, the last number written
    (thousands separators allowed). ``None`` when there is none.

    >>> parse_number("3 apples and 1,250.5 pears"), parse_number(7), parse_number("none")
    (Decimal('1250.5'), Decimal('7'), None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        try:
            return Decimal(str(value))
        except InvalidOperation:  # pragma: no cover - nan/inf strings parse
            return None
    found = _NUMBER.findall(_text(value))
    if not found:
        return None
    try:
        number = Decimal(found[-1].replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern only matches numbers
        return None
    return number if number.is_finite() else None


def numeric(tolerance: float = 0.0, *, relative: bool = False) -> Metric:
    """1 when the prediction's number (the last one in its text) is within ``tolerance``
    of the expected number: absolute (``|p - e| <= tolerance``), or with ``relative=True``
    a fraction of the expected value (``|p - e| <= tolerance * |e|``).

    >>> numeric(0.05, relative=True)("The total is 1,030 dollars", 1000)
    1.0
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise EvaluationError(f"numeric(tolerance={tolerance!r}): expected a number >= 0.")
    tol = Decimal(str(tolerance))

    def numeric_(prediction: Any, expected: Any, record: Record | None) -> bool:
        want = parse_number(expected)
        if want is None:
            where = f" of item {record.id}" if record is not None else ""
            raise EvaluationError(
                f"numeric metric: the expected answer{where} ({expected!r}) is not a number."
            )
        got = parse_number(prediction)
        if got is None:
            return False
        limit = tol * abs(want) if relative else tol
        return abs(got - want) <= limit

    name = "numeric" if not tolerance else f"numeric(±{tolerance}{'x' if relative else ''})"
    return _Fn(name, numeric_)


def custom(fn: Callable[..., float | bool], *, name: str | None = None) -> Metric:
    """Your own scorer: ``fn(prediction, expected)`` or ``fn(prediction, expected, record)``
    (it gets the :class:`~promptkit.evaluation.Record` when it takes three arguments),
    returning a bool or a number from 0 to 1. A list of expected answers is passed as is.

    >>> def close_enough(pred, expected, record):
    ...     return abs(len(pred) - len(expected)) <= 1
    >>> custom(close_enough).name
    'close_enough'
    """
    if not callable(fn):
        raise EvaluationError(f"custom metric: {fn!r} is not callable.")
    takes_record = _takes_three(fn)

    def custom_(prediction: Any, expected: Any, record: Record | None) -> float | bool:
        if takes_record:
            return fn(prediction, expected, record)
        return fn(prediction, expected)

    metric = _Fn(name or getattr(fn, "__name__", "custom").strip("<>") or "custom", custom_)
    metric.any_of_list = False
    return metric


def _takes_three(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3


# --------------------------------------------------------------------------- the judge

#: The instruction of the default yes/no judge.
JUDGE_INSTRUCTION = (
    "You grade an answer against a reference answer. The section EXPECTED holds the "
    "reference answer and the section PREDICTION the answer to grade. Reply with one word: "
    "yes if the answer to grade says the same as the reference answer, no otherwise."
)
_SCALE_INSTRUCTION = (
    "You grade an answer against a reference answer. The section EXPECTED holds the "
    "reference answer and the section PREDICTION the answer to grade. Rate how well the "
    "answer to grade agrees with the reference, from {lo} (not at all) to {hi} (fully). "
    "Reply with the number only."
)
_VERDICT = _extract.one_of(["yes", "no"])


class Judge(Metric):
    """Model-as-judge (see :func:`judge`). :func:`promptkit.evaluate` sends its prompts
    through the batch runner and counts its calls, tokens and cost apart from the
    variant's; called directly it makes one call per prediction."""

    any_of_list = False

    def __init__(
        self,
        prompt: PromptBase | None = None,
        llm: LLM | None = None,
        *,
        scale: tuple[int, int] | None = None,
        params: SamplingParams | None = None,
        name: str = "judge",
    ) -> None:
        if scale is not None:
            lo, hi = scale
            if not (isinstance(lo, int) and isinstance(hi, int) and lo < hi):
                raise EvaluationError(
                    f"judge(scale={scale!r}): expected (low, high) whole numbers."
                )
        if prompt is None:
            instruction = (
                JUDGE_INSTRUCTION
                if scale is None
                else _SCALE_INSTRUCTION.format(lo=scale[0], hi=scale[1])
            )
            prompt = Delimited(
                name="judge", instruction=instruction, delimit=["expected", "prediction"]
            )
        elif not isinstance(prompt, PromptBase):
            raise EvaluationError(
                f"judge(prompt=...): expected a prompt object, got {type(prompt).__name__}."
            )
        self.prompt = prompt
        self.llm = llm
        self.scale = scale
        self.params = (
            params
            if params is not None
            else SamplingParams(temperature=0.0, max_tokens=8 if scale is None else 6)
        )
        self.name = name

    def variables(
        self, prediction: Any, expected: Any, record: Record | None, reply: str | None = None
    ) -> dict[str, Any]:
        """What the judge prompt is rendered with: the record's fields, ``expected``,
        ``prediction`` and ``reply`` (the variant's whole reply), as text; only the names
        the prompt uses are passed."""
        available: dict[str, Any] = dict(record.fields) if record is not None else {}
        if isinstance(expected, (list, tuple)):
            expected_text = " | ".join(_text(e) for e in expected)
        else:
            expected_text = _text(expected)
        available.update(
            expected=expected_text,
            prediction=_text(prediction),
            reply=reply if reply is not None else _text(prediction),
        )
        return select(self.prompt, available)

    def verdict(self, text: str) -> float | None:
        """The score in the judge's reply: yes -> 1, no -> 0 (the first of them that it
        says); with a ``scale`` its first number, mapped to 0-1. ``None`` when the reply
        holds no verdict.

        >>> j = Judge(scale=(1, 5))
        >>> j.verdict("4"), j.verdict("9"), Judge().verdict("Yes, it does.")
        (0.75, None, 1.0)
        """
        if self.scale is None:
            got = _VERDICT(text)
            return None if got is None else (1.0 if got == "yes" else 0.0)
        lo, hi = self.scale
        number = _extract.number(last=False)(text)
        if number is None:
            return None
        value = float(number.replace(",", ""))
        if not lo <= value <= hi:
            return None
        return (value - lo) / (hi - lo)

    def score(self, prediction: Any, expected: Any, record: Record | None) -> float:
        if self.llm is None:
            raise EvaluationError(
                "judge(): called directly it needs llm=...; within evaluate() it defaults to "
                "the model under evaluation."
            )
        reply = self.prompt.run(
            self.llm, params=self.params, **self.variables(prediction, expected, record)
        )
        return self.verdict(reply.text) or 0.0

    def __repr__(self) -> str:
        return f"<Judge {self.prompt.label} scale={self.scale}>"


def judge(
    prompt: PromptBase | None = None,
    llm: LLM | None = None,
    *,
    scale: tuple[int, int] | None = None,
    params: SamplingParams | None = None,
    name: str = "judge",
) -> Judge:
    """Model-as-judge: a prompt that grades each prediction.

    - ``prompt``: rendered with the record's fields, ``expected``, ``prediction`` and
      ``reply`` (those it uses). Default: a yes/no grader that compares the prediction to
      the expected answer, both in delimited sections (so an answer cannot instruct the
      judge).
    - ``llm``: the judge model; default, within :func:`promptkit.evaluate`, the model under
      evaluation (which then grades itself: prefer a stronger, separate judge).
    - ``scale=(1, 5)``: the judge replies with a number on that scale instead of yes/no;
      it is mapped to 0-1 (partial credit).
    - ``params``: default ``temperature=0`` and a few tokens.

    A reply with no verdict scores 0 and is counted under ``judge_unparsed``.

    >>> import promptkit as pk
    >>> grader = judge(llm=pk.LLM(pk.FakeBackend(["yes"])))
    >>> grader("The capital is Paris", "Paris")
    1.0
    """
    return Judge(prompt, llm, scale=scale, params=params, name=name)


# --------------------------------------------------------------------------- resolving

_BY_NAME: dict[str, Callable[[], Metric]] = {
    "exact_match": exact_match,
    "contains": contains,
    "regex": regex,
    "numeric": numeric,
    "judge": judge,
}


def as_metric(metric: Metric | str | Callable[..., float | bool]) -> Metric:
    """A metric from a :class:`Metric`, a name (``"exact_match"``, ``"contains"``,
    ``"regex"``, ``"numeric"``, ``"judge"``) or a function (:func:`custom`).

    >>> as_metric("numeric").name, as_metric(lambda p, e: p == e).name
    ('numeric', 'lambda')
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        factory = _BY_NAME.get(metric)
        if factory is None:
            import difflib

            close = difflib.get_close_matches(metric, list(_BY_NAME), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise EvaluationError(
                f"unknown metric {metric!r}.{hint} Known: {', '.join(_BY_NAME)}; or pass a "
                "function (prediction, expected) -> bool | float."
            )
        return factory()
    if callable(metric):
        return custom(metric)
    raise EvaluationError(f"metric={metric!r}: expected a Metric, a metric name or a function.")
