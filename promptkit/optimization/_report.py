"""What :func:`~promptkit.optimization` returns: every candidate with its scores and paired
test, the decision, the held-out result and the cost, as a table, JSON and HTML."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..evaluation._report import VariantResult, fmt_ci, fmt_pct, fmt_usd
from ..prompts import Example, Prompt
from ._stats import PairedTest

__all__ = ["Budget", "Candidate", "OptimizeReport", "Spend"]

FORMAT = "promptkit-optimize"
VERSION = 1


@dataclass(frozen=True)
class Spend:
    """Requests sent, tokens (prompt + completion) and dollars. Replies served from the
    response cache or resumed from the journal cost nothing here. ``usd`` is ``None`` when
    the model has no price."""

    calls: int = 0
    tokens: int = 0
    usd: float | None = 0.0

    def __add__(self, other: Spend) -> Spend:
        usd = None if self.usd is None or other.usd is None else round(self.usd + other.usd, 12)
        return Spend(self.calls + other.calls, self.tokens + other.tokens, usd)

    def __str__(self) -> str:
        return f"{self.calls:,} calls, {self.tokens:,} tokens, {fmt_usd(self.usd)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"calls": self.calls, "tokens": self.tokens, "usd": self.usd}


@dataclass(frozen=True)
class Budget:
    """A limit on what an optimisation may spend: ``calls`` (requests), ``tokens`` (prompt
    plus completion) and ``usd`` (needs a price for the model, see ``prices=``). Any left
    as ``None`` is unlimited. The budget is checked before each round against that round's
    estimate plus what selection and the held-out test still need: a round that would not
    fit is not started, and the search ends there.

    >>> Budget(calls=100).exceeded(Spend(90, 0), Spend(20, 0))
    'calls: 90 spent + ~20 needed > 100'
    """

    calls: int | None = None
    tokens: int | None = None
    usd: float | None = None

    def __post_init__(self) -> None:
        for name in ("calls", "tokens", "usd"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                from ._errors import OptimizeError

                raise OptimizeError(f"Budget {name}={value!r}: expected a number >= 0 or None.")

    def exceeded(self, spent: Spend, more: Spend) -> str | None:
        """Why ``spent`` plus ``more`` would go over the budget, or ``None`` if it fits."""
        for name in ("calls", "tokens", "usd"):
            limit = getattr(self, name)
            if limit is None:
                continue
            a, b = getattr(spent, name), getattr(more, name)
            if a is None or b is None:
                return f"{name}: the model has no price (give prices=)"
            if a + b > limit:
                if name == "usd":
                    return f"usd: {fmt_usd(a)} spent + ~{fmt_usd(b)} needed > {fmt_usd(limit)}"
                return f"{name}: {a:,} spent + ~{b:,} needed > {limit:,}"
        return None

    def __str__(self) -> str:
        parts = [
            f"{name} {fmt_usd(v) if name == 'usd' else f'{v:,}'}"
            for name in ("calls", "tokens", "usd")
            if (v := getattr(self, name)) is not None
        ]
        return ", ".join(parts) or "unlimited"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"calls": self.calls, "tokens": self.tokens, "usd": self.usd}


@dataclass
class Candidate:
    """One prompt the optimiser tried.

    - ``name``: its label in tables and journal files; ``stage``: ``"start"``,
      ``"instruction"`` or ``"technique"``; ``changes``: what differs from the start, in
      words.
    - ``prompt``: the prompt (composed from the starting one); ``k``: self-consistency
      samples, or ``None`` for one reply per item.
    - ``train``: its screening result on train items (never the items its examples come
      from); ``validation``: on the validation items, for the finalists; ``paired``: the
      one-sided paired test against the start on those items; ``adjusted_p``: its p-value
      after the Holm correction; ``accepted``: better than the start at the chosen
      confidence.
    """

    name: str
    stage: str
    changes: tuple[str, ...]
    prompt: Prompt
    k: int | None = None
    train: VariantResult | None = None
    validation: VariantResult | None = None
    paired: PairedTest | None = None
    adjusted_p: float | None = None
    accepted: bool = False

    @property
    def technique(self) -> str:
        """The technique in words: zero-shot, few-shot, chain of thought, self-consistency."""
        return _technique(self.prompt, self.k)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (scores without their items)."""
        from .._files import prompt_to_dict

        def score(r: VariantResult | None) -> dict[str, Any] | None:
            if r is None:
                return None
            lo, hi = r.ci
            return {"n": r.n, "accuracy": r.accuracy, "ci_low": lo, "ci_high": hi,
                    "calls": r.calls, "cost_usd": r.cost_usd}  # fmt: skip

        return {
            "name": self.name,
            "stage": self.stage,
            "changes": list(self.changes),
            "technique": self.technique,
            "self_consistency_k": self.k,
            "prompt": prompt_to_dict(self.prompt),
            "train": score(self.train),
            "validation": score(self.validation),
            "paired_test": self.paired.to_dict() if self.paired is not None else None,
            "adjusted_p": self.adjusted_p,
            "accepted": self.accepted,
        }


def _technique(prompt: Prompt, k: int | None) -> str:
    parts = []
    if prompt.role:
        parts.append("role")
    n = len(prompt.used_examples)
    shown = getattr(prompt.example_selector, "k", None)
    if prompt.example_selector is not None and n:
        parts.append(f"few-shot ({shown or 'some'} of {n} chosen per input)")
    else:
        parts.append(f"few-shot ({n})" if n else "zero-shot")
    if prompt.reasoning:
        parts.append("chain of thought")
    if k:
        parts.append(f"self-consistency k={k}")
    return " + ".join(parts)


def _example_line(ex: Example) -> str:
    text = ex.input if isinstance(ex.input, str) else json.dumps(ex.input, ensure_ascii=False)
    line = f"{' '.join(text.split())[:70]} -> {ex.output}"
    return line + (" (with rationale)" if ex.rationale else "")


def prompt_diff(start: Prompt, start_k: int | None, best: Prompt, best_k: int | None) -> str:
    """A readable diff of instruction, role, examples and technique."""
    out: list[str] = []
    if start.instruction != best.instruction:
        out.append("instruction:")
        a = (start.instruction or "").splitlines() or [""]
        b = (best.instruction or "").splitlines() or [""]
        out += [f"  {line}" for line in difflib.ndiff(a, b) if not line.startswith("?")]
    if start.role != best.role:
        out.append(f"role: {start.role!r} -> {best.role!r}")
    if start.used_examples != best.used_examples:
        before, after = start.used_examples, best.used_examples
        out.append(f"examples: {len(before)} -> {len(after)}")
        out += [f"  - {_example_line(e)}" for e in before if e not in after]
        out += [f"  + {_example_line(e)}" for e in after if e not in before]
        kept = [e for e in after if e in before]
        if kept and kept != [e for e in before if e in after]:
            out.append("  (order changed)")
    if start.example_selector is not best.example_selector:
        out.append(
            f"example selector: {start.example_selector!r} -> {best.example_selector!r} (a "
            "selector is not saved in prompt files: set example_selector= after loading)"
        )
    t0, t1 = _technique(start, start_k), _technique(best, best_k)
    if t0 != t1:
        out.append(f"technique: {t0} -> {t1}")
    for name in ("reasoning", "answer_format"):
        a_val, b_val = getattr(start, name), getattr(best, name)
        if a_val != b_val:
            out.append(f"{name}: {a_val!r} -> {b_val!r}")
    return "\n".join(out) if out else "(no change: the starting prompt stands)"


@dataclass
class OptimizeReport:
    """The outcome of :func:`~promptkit.optimization`.

    - ``start`` / ``chosen``: the starting candidate and the one kept (``chosen is start``
      when no candidate was better at the chosen confidence: ``improved`` is then false).
    - ``prompt``: the chosen prompt (save it with :meth:`save_prompt`); ``best``: what to
      run (the prompt, or a :class:`~promptkit.SelfConsistency` over it).
    - ``candidates``: every candidate tried, the start first.
    - ``test_start`` / ``test_chosen`` / ``test_paired``: the one measurement on the
      held-out test items (never seen during the search).
    - ``spent`` / ``estimate`` / ``budget`` / ``stopped``: cost, the estimate printed
      before the run, the limit, and why the search ended early (or ``None``).
    """

    start: Candidate
    chosen: Candidate
    candidates: list[Candidate]
    test_start: VariantResult
    test_chosen: VariantResult | None
    test_paired: PairedTest | None
    spent: Spend
    estimate: Spend
    budget: Budget | None
    stopped: str | None
    confidence: float
    correction: str
    sizes: Mapping[str, int]
    seed: int
    metric: str
    dataset: str
    decision: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def improved(self) -> bool:
        """Whether a candidate beat the start on validation and was kept."""
        return self.chosen is not self.start

    @property
    def prompt(self) -> Prompt:
        """The chosen prompt."""
        return self.chosen.prompt

    @property
    def best(self) -> Any:
        """The chosen prompt, wrapped in :class:`~promptkit.SelfConsistency` when the
        chosen technique samples several replies."""
        if self.chosen.k:
            from ..strategies import SelfConsistency

            return SelfConsistency(self.chosen.prompt, k=self.chosen.k, seed=self.seed)
        return self.chosen.prompt

    def diff(self) -> str:
        """What changed against the starting prompt, readably."""
        return prompt_diff(self.start.prompt, self.start.k, self.chosen.prompt, self.chosen.k)

    def save_prompt(self, path: str | os.PathLike[str]) -> Path:
        """Save the chosen prompt as a plain prompt file (``.json``, ``.yaml`` or
        ``.prompty``; see :func:`~promptkit.save_prompt`). Self-consistency is a way of
        running a prompt, not part of it: the report and :attr:`best` carry its ``k``."""
        from .._files import save_prompt

        return save_prompt(self.chosen.prompt, Path(path))

    # ------------------------------------------------------------------ rendering

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """The candidates table: header and rows, as text."""
        pct = f"{100 * self.confidence:g}% CI"
        header = ["candidate", "technique", "train", pct, "validation", pct, "vs start", "p (Holm)"]
        header.append("verdict")
        rows = []
        for c in self.candidates:
            t, v = c.train, c.validation
            if c is self.start:
                verdict = "start" + (" (kept)" if not self.improved else "")
            elif c.accepted and c is self.chosen:
                verdict = "chosen"
            elif c.accepted:
                verdict = "better, not best"
            elif c.paired is not None:
                verdict = "not better"
            else:
                verdict = "screened out"
            vs = f"+{c.paired.wins}/-{c.paired.losses}" if c.paired is not None else ""
            rows.append([
                c.name,
                c.technique,
                fmt_pct(t.accuracy) if t else "",
                fmt_ci(t.ci) if t else "",
                fmt_pct(v.accuracy) if v else "",
                fmt_ci(v.ci) if v else "",
                vs,
                f"{c.adjusted_p:.3g}" if c.adjusted_p is not None else "",
                verdict,
            ])  # fmt: skip
        return header, rows

    def summary(self) -> list[str]:
        """The decision, the held-out result and the cost, as lines of text."""
        lines = [self.decision]
        ts, tc = self.test_start, self.test_chosen
        held = f"held-out test ({ts.n} items): start {fmt_pct(ts.accuracy)} {fmt_ci(ts.ci)}"
        if tc is not None:
            held += f", chosen {fmt_pct(tc.accuracy)} {fmt_ci(tc.ci)}"
            if self.test_paired is not None:
                p = self.test_paired
                held += f" (+{p.wins}/-{p.losses}, one-sided p={p.p_value:.3g})"
        lines.append(held)
        lines.append(
            f"spent: {self.spent} (estimate before the run: {self.estimate}; "
            f"budget: {self.budget or 'unlimited'})"
        )
        if self.stopped:
            lines.append(f"search stopped early: {self.stopped}")
        failed = [
            it
            for c in self.candidates
            for r in (c.train, c.validation)
            if r is not None
            for it in r.items
            if it.error
        ]
        failed += [it for it in self.test_start.items if it.error]
        if failed:
            lines.append(f"{len(failed)} call(s) failed and scored 0 (first: {failed[0].error})")
        sizes = ", ".join(f"{k} {v}" for k, v in self.sizes.items())
        lines.append(
            f"items: {sizes}; metric {self.metric}; seed {self.seed}; paired one-sided test "
            f"(exact McNemar for 0/1 scores, paired bootstrap otherwise), {self.correction} "
            f"correction over the finalists, confidence {100 * self.confidence:g}%."
        )
        return lines

    def table(self) -> str:
        """The candidates, the decision, the diff, the held-out result and the cost, as
        text for a terminal."""
        header, rows = self.rows()
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

        def line(cells: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if i in (0, 1, 8) else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        out = [line(header), "  ".join("-" * w for w in widths)]
        out += [line(r) for r in rows]
        out += ["", *self.summary(), "", "changes against the start:", self.diff()]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (
            f"<OptimizeReport {len(self.candidates)} candidates, "
            f"{'improved' if self.improved else 'start stands'}>"
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (see :meth:`to_json`)."""

        def test(r: VariantResult | None) -> dict[str, Any] | None:
            return None if r is None else r.to_dict(items=False)

        return {
            "format": FORMAT,
            "version": VERSION,
            "dataset": self.dataset,
            "metric": self.metric,
            "seed": self.seed,
            "confidence": self.confidence,
            "correction": self.correction,
            "sizes": dict(self.sizes),
            "improved": self.improved,
            "decision": self.decision,
            "chosen": self.chosen.name,
            "diff": self.diff(),
            "candidates": [c.to_dict() for c in self.candidates],
            "test": {
                "start": test(self.test_start),
                "chosen": test(self.test_chosen),
                "paired_test": self.test_paired.to_dict() if self.test_paired else None,
            },
            "spent": self.spent.to_dict(),
            "estimate": self.estimate.to_dict(),
            "budget": self.budget.to_dict() if self.budget is not None else None,
            "stopped": self.stopped,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report as JSON: ``{"format": "promptkit-optimize", "version": 1, ...}`` with
        every candidate (its prompt, scores, intervals, paired test), the decision, the
        diff, the held-out test and the cost."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path``."""
        p = Path(path)
        p.write_text(self.to_json() + "\n", encoding="utf-8")
        return p

    def to_html(self) -> str:
        """A self-contained HTML page in the style of the evaluation report."""
        from ..evaluation._report import REPORT_CSS, escape

        header, rows = self.rows()
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        summary = "".join(f"<li>{escape(line)}</li>" for line in self.summary())
        prompts = []
        from .._files import prompt_to_dict

        for c in self.candidates:
            data = json.dumps(prompt_to_dict(c.prompt), indent=2, ensure_ascii=False)
            changes = "; ".join(c.changes) or "the starting prompt"
            prompts.append(
                f"<details><summary>{escape(c.name)}: {escape(changes)}</summary>"
                f'<table class="items"><tbody><tr><td class="text"><pre>{escape(data)}</pre>'
                "</td></tr></tbody></table></details>"
            )
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>promptkit optimisation: {escape(self.dataset)}</title>",
            f"<style>{REPORT_CSS}</style></head><body>",
            f"<h1>Prompt optimisation on {escape(self.dataset)}</h1>",
            f'<ul class="note">{summary}</ul>',
            f'<div class="scroll"><table class="summary"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>",
            "<h2>Changes against the starting prompt</h2>",
            f'<table class="items"><tbody><tr><td class="text"><pre>{escape(self.diff())}</pre>'
            "</td></tr></tbody></table>",
            "<h2>Candidates</h2>",
            *prompts,
            "</body></html>\n",
        ]
        return "\n".join(parts)

    def save_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_html` to ``path``."""
        p = Path(path)
        p.write_text(self.to_html(), encoding="utf-8")
        return p
