"""The result of an evaluation: per item, per variant x backend, and the whole report with
its renderings (terminal table, JSON, PNG chart, self-contained HTML)."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from .._types import Usage
from ._errors import EvaluationError
from ._stats import percentile, wilson_interval

__all__ = ["EvalReport", "ItemResult", "VariantResult"]

FORMAT = "promptkit-eval"
VERSION = 1


@dataclass(frozen=True)
class ItemResult:
    """One scored item of one variant on one backend.

    ``prediction`` is the extracted answer (``None``: none could be extracted, or the call
    failed and ``error`` says why); ``text`` the reply it came from (for a strategy, every
    sample, separated by ``---`` lines). ``calls`` counts the requests sent for it in this
    run (0 when served from the cache or resumed from a results file); ``usage`` its
    tokens, cached or not. ``latency_s`` is the time the client waited for it (``None``
    when resumed). ``judge_text`` is the judge's reply, when a judge scored it.
    """

    id: str
    expected: Any
    prediction: Any
    score: float
    text: str | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    calls: int = 0
    latency_s: float | None = None
    cached: bool = False
    resumed: bool = False
    judge_text: str | None = None

    @property
    def correct(self) -> bool:
        """Whether the item got full marks."""
        return self.score >= 1.0

    def to_dict(self) -> dict[str, Any]:
        """The item as JSON-ready data."""
        return {
            "id": self.id,
            "expected": _jsonable(self.expected),
            "prediction": _jsonable(self.prediction),
            "score": self.score,
            "text": self.text,
            "error": self.error,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "calls": self.calls,
            "latency_s": self.latency_s,
            "cached": self.cached,
            "resumed": self.resumed,
            "judge_text": self.judge_text,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemResult:
        """An item from :meth:`to_dict`'s form."""
        p, c = data.get("prompt_tokens"), data.get("completion_tokens")
        total = None if p is None and c is None else (p or 0) + (c or 0)
        return cls(
            id=str(data["id"]),
            expected=data.get("expected"),
            prediction=data.get("prediction"),
            score=float(data["score"]),
            text=data.get("text"),
            error=data.get("error"),
            usage=Usage(p, c, total),
            calls=int(data.get("calls") or 0),
            latency_s=data.get("latency_s"),
            cached=bool(data.get("cached")),
            resumed=bool(data.get("resumed")),
            judge_text=data.get("judge_text"),
        )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


@dataclass(frozen=True)
class VariantResult:
    """One variant on one backend: its items and what they add up to.

    - ``accuracy``: the mean score over every scored item (failed calls and unextractable
      answers score 0); ``ci``: its Wilson score interval at the report's ``confidence``.
    - ``calls``: requests sent in this run; ``cache_hits`` / ``resumed``: items served
      from the response cache / read back from a results file.
    - ``prompt_tokens`` / ``completion_tokens``: summed over the items, cached ones
      included (they measure the technique, not this run's bill).
    - ``latency_median_s`` / ``latency_p95_s``: per item; ``wall_s``: the variant's run.
    - ``cost_usd``: tokens priced by the price table (0 for local models, ``None`` when the
      model has no price or the backend reports no tokens).
    - ``judge_*``: the model-as-judge's own calls, tokens and cost (not in the above).
    """

    variant: str
    backend: str
    model: str
    items: tuple[ItemResult, ...]
    confidence: float = 0.95
    wall_s: float = 0.0
    cost_usd: float | None = None
    judged: bool = False
    judge_calls: int = 0
    judge_usage: Usage = field(default_factory=Usage)
    judge_cost_usd: float | None = None
    judge_unparsed: int = 0

    @property
    def n(self) -> int:
        """How many items were scored."""
        return len(self.items)

    @property
    def score(self) -> float:
        """The sum of the scores."""
        return sum(i.score for i in self.items)

    @property
    def accuracy(self) -> float:
        """The mean score (0 for no items)."""
        return self.score / self.n if self.n else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        """The Wilson score interval of the accuracy."""
        return wilson_interval(self.score, self.n, self.confidence)

    @property
    def answered(self) -> int:
        """Items with a prediction."""
        return sum(i.prediction is not None for i in self.items)

    @property
    def errors(self) -> int:
        """Items whose call failed."""
        return sum(i.error is not None for i in self.items)

    @property
    def calls(self) -> int:
        """Requests sent in this run."""
        return sum(i.calls for i in self.items)

    @property
    def cache_hits(self) -> int:
        """Items answered from the response cache."""
        return sum(i.cached and not i.resumed for i in self.items)

    @property
    def resumed(self) -> int:
        """Items read back from a results file."""
        return sum(i.resumed for i in self.items)

    @property
    def usage(self) -> Usage:
        """Tokens summed over the items."""
        total = Usage()
        for i in self.items:
            total = total + i.usage
        return total

    @property
    def prompt_tokens(self) -> int | None:
        """Prompt (input) tokens summed over the items."""
        return self.usage.prompt_tokens

    @property
    def completion_tokens(self) -> int | None:
        """Completion (output) tokens summed over the items."""
        return self.usage.completion_tokens

    @property
    def tokens_per_item(self) -> float | None:
        """Prompt plus completion tokens per item."""
        u = self.usage
        if (u.prompt_tokens is None and u.completion_tokens is None) or not self.n:
            return None
        return ((u.prompt_tokens or 0) + (u.completion_tokens or 0)) / self.n

    @property
    def cost_per_item(self) -> float | None:
        """``cost_usd`` per item."""
        return None if self.cost_usd is None or not self.n else self.cost_usd / self.n

    @property
    def latency_median_s(self) -> float | None:
        """The median latency per item."""
        return percentile(self._latencies(), 50)

    @property
    def latency_p95_s(self) -> float | None:
        """The 95th percentile of the latency per item."""
        return percentile(self._latencies(), 95)

    def _latencies(self) -> list[float]:
        return [i.latency_s for i in self.items if i.latency_s is not None]

    def to_dict(self, *, items: bool = True) -> dict[str, Any]:
        """The result as JSON-ready data (with every item unless ``items=False``)."""
        lo, hi = self.ci
        out: dict[str, Any] = {
            "variant": self.variant,
            "backend": self.backend,
            "model": self.model,
            "n": self.n,
            "score": self.score,
            "accuracy": self.accuracy,
            "ci_low": lo,
            "ci_high": hi,
            "answered": self.answered,
            "errors": self.errors,
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "resumed": self.resumed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_median_s": self.latency_median_s,
            "latency_p95_s": self.latency_p95_s,
            "wall_s": self.wall_s,
            "cost_usd": self.cost_usd,
            "judge": None,
        }
        if self.judged:
            out["judge"] = {
                "calls": self.judge_calls,
                "prompt_tokens": self.judge_usage.prompt_tokens,
                "completion_tokens": self.judge_usage.completion_tokens,
                "cost_usd": self.judge_cost_usd,
                "unparsed": self.judge_unparsed,
            }
        if items:
            out["items"] = [i.to_dict() for i in self.items]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, confidence: float = 0.95) -> VariantResult:
        """A result from :meth:`to_dict`'s form (with its items)."""
        judge = data.get("judge")
        jp = judge.get("prompt_tokens") if judge else None
        jc = judge.get("completion_tokens") if judge else None
        return cls(
            variant=str(data["variant"]),
            backend=str(data["backend"]),
            model=str(data.get("model") or ""),
            items=tuple(ItemResult.from_dict(i) for i in data.get("items") or ()),
            confidence=confidence,
            wall_s=float(data.get("wall_s") or 0.0),
            cost_usd=data.get("cost_usd"),
            judged=judge is not None,
            judge_calls=int(judge.get("calls") or 0) if judge else 0,
            judge_usage=Usage(jp, jc, None if jp is None and jc is None else (jp or 0) + (jc or 0)),
            judge_cost_usd=judge.get("cost_usd") if judge else None,
            judge_unparsed=int(judge.get("unparsed") or 0) if judge else 0,
        )


# --------------------------------------------------------------------------- formatting


def fmt_pct(x: float) -> str:
    """``0.625`` -> ``'62.5%'``."""
    return f"{100 * x:.1f}%"


def fmt_ci(ci: tuple[float, float]) -> str:
    """An interval in percent, one decimal."""
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def fmt_int(x: int | None) -> str:
    """Thousands separators; ``-`` for unknown."""
    return "-" if x is None else f"{x:,}"


def fmt_s(x: float | None) -> str:
    """Seconds with two decimals (milliseconds below 0.1 s); ``-`` for unknown."""
    if x is None:
        return "-"
    return f"{x * 1000:.0f}ms" if x < 0.1 else f"{x:.2f}s"


def fmt_usd(x: float | None) -> str:
    """Dollars: ``$0`` for free, three significant digits below a dollar; ``-`` for unknown.

    >>> fmt_usd(0.0), fmt_usd(3.18e-05), fmt_usd(0.5), fmt_usd(1234.5), fmt_usd(None)
    ('$0', '$0.0000318', '$0.500', '$1,234.50', '-')
    """
    if x is None:
        return "-"
    if x == 0:
        return "$0"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(abs(x))))
    return f"${x:.{decimals}f}"


class EvalReport(Sequence[VariantResult]):
    """Every variant x backend result of one evaluation, in the order of the variants.

    Index it by position, by variant name (``report["few-shot"]``, when there is one
    backend) or by ``(variant, backend)``. Render it with :meth:`table` (terminal text),
    :meth:`to_json`, :meth:`save_png` (needs matplotlib) or :meth:`save_html` (no
    dependency); :meth:`load` reads a saved JSON report back.
    """

    def __init__(
        self,
        results: Sequence[VariantResult],
        *,
        dataset: str = "dataset",
        metric: str = "metric",
        confidence: float = 0.95,
    ) -> None:
        self.results: tuple[VariantResult, ...] = tuple(results)
        self.dataset = dataset
        self.metric = metric
        self.confidence = confidence

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[VariantResult]:
        return iter(self.results)

    @overload
    def __getitem__(self, key: int) -> VariantResult: ...

    @overload
    def __getitem__(self, key: slice) -> Sequence[VariantResult]: ...

    @overload
    def __getitem__(self, key: str | tuple[str, str]) -> VariantResult: ...

    def __getitem__(
        self, key: int | slice | str | tuple[str, str]
    ) -> VariantResult | Sequence[VariantResult]:
        if isinstance(key, (int, slice)):
            return self.results[key]
        if isinstance(key, str):
            found = [r for r in self.results if r.variant == key]
            if len(found) > 1:
                raise KeyError(
                    f"variant {key!r} ran on {len(found)} backends: index by (variant, backend)"
                )
        else:
            found = [r for r in self.results if (r.variant, r.backend) == tuple(key)]
        if not found:
            raise KeyError(key)
        return found[0]

    def __repr__(self) -> str:
        return f"<EvalReport {len(self.results)} results on {self.dataset!r} ({self.metric})>"

    def __str__(self) -> str:
        return self.table()

    @property
    def variants(self) -> list[str]:
        """The variant names, in order."""
        return list(dict.fromkeys(r.variant for r in self.results))

    @property
    def backends(self) -> list[str]:
        """The backend names, in order."""
        return list(dict.fromkeys(r.backend for r in self.results))

    @property
    def n(self) -> int:
        """Items scored per variant."""
        return max((r.n for r in self.results), default=0)

    def best(self) -> VariantResult:
        """The most accurate result; ties go to the cheaper one (cost, then tokens)."""
        if not self.results:
            raise EvaluationError("the report is empty.")
        return max(
            self.results,
            key=lambda r: (r.accuracy, -(r.cost_usd or 0.0), -(r.tokens_per_item or 0.0)),
        )

    def label(self, result: VariantResult) -> str:
        """How tables and charts name a result: the variant, plus the backend when the
        report has several."""
        if len(self.backends) > 1:
            return f"{result.variant} @ {result.backend}"
        return result.variant

    # ------------------------------------------------------------------ rendering

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """The table's header and rows, as text (what :meth:`table` and the HTML show)."""
        multi = len(self.backends) > 1
        judged = any(r.judged for r in self.results)
        errors = any(r.errors for r in self.results)
        cached = any(r.cache_hits or r.resumed for r in self.results)
        pct = f"{100 * self.confidence:g}% CI"
        header = ["variant"] + (["backend"] if multi else []) + ["accuracy", pct, "answered"]
        header += ["errors"] if errors else []
        header += ["calls"] + (["reused"] if cached else [])
        header += ["tokens in", "tokens out", "latency p50", "p95", "wall", "cost"]
        header += ["judge calls", "judge cost"] if judged else []
        rows = []
        for r in self.results:
            row = [r.variant] + ([r.backend] if multi else [])
            row += [fmt_pct(r.accuracy), fmt_ci(r.ci), f"{r.answered}/{r.n}"]
            row += [str(r.errors)] if errors else []
            row += [fmt_int(r.calls)] + ([str(r.cache_hits + r.resumed)] if cached else [])
            row += [fmt_int(r.prompt_tokens), fmt_int(r.completion_tokens)]
            row += [fmt_s(r.latency_median_s), fmt_s(r.latency_p95_s), fmt_s(r.wall_s)]
            row += [fmt_usd(r.cost_usd)]
            if judged:
                row += [fmt_int(r.judge_calls), fmt_usd(r.judge_cost_usd)]
            rows.append(row)
        return header, rows

    def footer(self) -> str:
        """One line saying what the numbers are."""
        pct = f"{100 * self.confidence:g}%"
        return (
            f"{self.n} items of {self.dataset}, metric {self.metric}; {pct} Wilson score "
            "intervals; latency per item, wall for the whole run; tokens and cost include "
            "reused replies (from the cache or a resumed run)."
        )

    def table(self) -> str:
        """The results as an aligned text table, for a terminal.

        >>> from promptkit.evaluation import ItemResult, VariantResult, EvalReport
        >>> items = tuple(ItemResult(str(i), 1, 1 if i < 3 else 0, float(i < 3)) for i in range(4))
        >>> table = EvalReport([VariantResult("zero-shot", "local", "m", items)]).table()
        >>> table.splitlines()[0].split()[:5]
        ['variant', 'accuracy', '95%', 'CI', 'answered']
        >>> table.splitlines()[2].split()
        ['zero-shot', '75.0%', '[30.1,', '95.4]', '4/4', '0', '-', '-', '-', '-', '0ms', '-']
        """
        header, rows = self.rows()
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        left = {0, 1} if len(self.backends) > 1 else {0}

        def line(cells: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if i in left else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        out = [line(header), "  ".join("-" * w for w in widths)]
        out += [line(r) for r in rows]
        out.append(self.footer())
        return "\n".join(out)

    def to_dict(self, *, items: bool = True) -> dict[str, Any]:
        """The report as JSON-ready data (see :meth:`to_json`)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "dataset": self.dataset,
            "metric": self.metric,
            "confidence": self.confidence,
            "interval": "wilson",
            "n": self.n,
            "results": [r.to_dict(items=items) for r in self.results],
        }

    def to_json(self, *, items: bool = True, indent: int | None = 2) -> str:
        """The report as JSON: ``{"format": "promptkit-eval", "version": 1, "dataset",
        "metric", "confidence", "interval": "wilson", "n", "results": [...]}``, each
        result with the fields of :class:`VariantResult` (``ci_low``/``ci_high``,
        ``judge`` or null) and, unless ``items=False``, its ``items``."""
        return json.dumps(self.to_dict(items=items), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalReport:
        """A report from :meth:`to_dict`'s form (saved with its items)."""
        if data.get("format") != FORMAT:
            raise EvaluationError("not a promptkit evaluation report (no format 'promptkit-eval').")
        confidence = float(data.get("confidence") or 0.95)
        results = [
            VariantResult.from_dict(r, confidence=confidence) for r in data.get("results") or ()
        ]
        return cls(
            results,
            dataset=str(data.get("dataset") or "dataset"),
            metric=str(data.get("metric") or "metric"),
            confidence=confidence,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EvalReport:
        """Read a report saved with :meth:`save_json`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EvaluationError(f"cannot read the report {os.fspath(path)!r}: {exc}") from None
        return cls.from_dict(data)

    def save_json(self, path: str | os.PathLike[str], *, items: bool = True) -> Path:
        """Write :meth:`to_json` to ``path``; returns the path."""
        p = Path(path)
        p.write_text(self.to_json(items=items) + "\n", encoding="utf-8")
        return p

    def svg(self) -> str:
        """The accuracy-against-cost chart as an SVG document (no dependency)."""
        from ._chart import svg

        return svg(self)

    def save_png(self, path: str | os.PathLike[str], *, dpi: int = 144) -> Path:
        """Draw accuracy (with its interval as error bars) against cost per item, or
        tokens per item when no result has a price, to a PNG file. Needs matplotlib:
        ``pip install "promptkit[eval]"``; raises :class:`~promptkit.ConfigurationError`
        without it."""
        from ._chart import save_png

        return save_png(self, Path(path), dpi=dpi)

    def to_html(self) -> str:
        """A self-contained HTML page: the table, the chart (inline SVG) and every item's
        prediction; all text escaped."""
        return _html(self)

    def save_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_html` to ``path`` (open it in a browser); returns the path."""
        p = Path(path)
        p.write_text(self.to_html(), encoding="utf-8")
        return p


# --------------------------------------------------------------------------- HTML

REPORT_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d2433; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #dde1e8; text-align: right;
         vertical-align: top; }
th:first-child, td:first-child, td.text, table.items th { text-align: left; }
thead th { background: #f3f5f8; }
td.text pre { margin: 0; white-space: pre-wrap; max-width: 36rem; font-size: 0.8rem; }
tr.right td.score { color: #137333; } tr.wrong td.score { color: #b3261e; }
.note { color: #5b6475; font-size: 0.85rem; }
details { margin: 0.5rem 0; } summary { cursor: pointer; font-weight: 600; }
figure { margin: 1rem 0; } .scroll { overflow-x: auto; }
table.summary th, table.summary td { white-space: nowrap; }
"""


def escape(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(_jsonable(value), ensure_ascii=False)


def _html(report: EvalReport) -> str:
    header, rows = report.rows()
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>promptkit evaluation: {escape(report.dataset)}</title>",
        f"<style>{REPORT_CSS}</style></head><body>",
        f"<h1>Evaluation on {escape(report.dataset)}</h1>",
        f'<p class="note">{escape(report.footer())}</p>',
        f'<div class="scroll"><table class="summary"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>",
        f"<figure>{report.svg()}</figure>",
        "<h2>Items</h2>",
    ]
    for r in report.results:
        judged = r.judged
        cols = ["id", "expected", "prediction", "score", "error", "reply"]
        cols += ["judge"] if judged else []
        trs = []
        for item in r.items:
            cls = "right" if item.correct else "wrong"
            cells = [
                f"<td>{escape(item.id)}</td>",
                f'<td class="text">{escape(_cell_value(item.expected))}</td>',
                f'<td class="text">{escape(_cell_value(item.prediction))}</td>',
                f'<td class="score">{item.score:g}</td>',
                f'<td class="text">{escape(item.error)}</td>',
                f'<td class="text"><pre>{escape(item.text)}</pre></td>',
            ]
            if judged:
                cells.append(f'<td class="text"><pre>{escape(item.judge_text)}</pre></td>')
            trs.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
        summary = f"{report.label(r)}: {fmt_pct(r.accuracy)} ({r.score:g}/{r.n})"
        parts.append(
            f'<details><summary>{escape(summary)}</summary><table class="items"><thead><tr>'
            + "".join(f"<th>{escape(c)}</th>" for c in cols)
            + "</tr></thead><tbody>"
            + "".join(trs)
            + "</tbody></table></details>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)
