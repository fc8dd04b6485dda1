"""The accuracy-against-cost chart: an SVG drawn here (for HTML reports, no dependency) and
a PNG drawn with matplotlib (optional, imported only when asked for).

Each variant x backend is one point: accuracy on the y axis with its confidence interval
as an error bar; on the x axis the estimated cost per item when every result has a known
price and some are not free, else the tokens per item (prompt + completion). The colour
says the variant, the marker shape the backend.
"""

from __future__ import annotations

import html
import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from ._report import EvalReport

__all__ = ["Point", "points", "save_png", "svg"]

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)  # fmt: skip
SHAPES = ("circle", "square", "triangle", "diamond")
_MPL_MARKERS = {"circle": "o", "square": "s", "triangle": "^", "diamond": "D"}


@dataclass(frozen=True)
class Point:
    """One result on the chart (accuracy and interval as fractions)."""

    label: str
    x: float
    y: float
    lo: float
    hi: float
    color: str
    shape: str
    backend: str


def points(report: EvalReport) -> tuple[str, bool, list[Point]]:
    """The x-axis title, whether x is a cost, and the points."""
    costs = [r.cost_per_item for r in report.results]
    use_cost = bool(costs) and all(c is not None for c in costs) and any(c for c in costs)
    title = "estimated cost per item (USD)" if use_cost else "tokens per item (prompt + completion)"
    variants = report.variants
    backends = report.backends
    out = []
    for r in report.results:
        x = (r.cost_per_item if use_cost else r.tokens_per_item) or 0.0
        lo, hi = r.ci
        out.append(
            Point(
                label=report.label(r),
                x=float(x),
                y=r.accuracy,
                lo=lo,
                hi=hi,
                color=PALETTE[variants.index(r.variant) % len(PALETTE)],
                shape=SHAPES[backends.index(r.backend) % len(SHAPES)],
                backend=r.backend,
            )
        )
    return title, use_cost, out


def nice_ticks(vmax: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``vmax``.

    >>> nice_ticks(137), nice_ticks(0.00042)
    ([0.0, 50.0, 100.0, 150.0], [0.0, 0.0001, 0.0002, 0.0003, 0.0004, 0.0005])
    """
    if not vmax > 0 or not math.isfinite(vmax):
        return [0.0, 1.0]
    raw = vmax / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = magnitude * 10
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * magnitude >= raw:
            step = m * magnitude
            break
    n = math.ceil(vmax / step - 1e-9)
    return [round(i * step, 12) for i in range(n + 1)]


def fmt_tick(value: float, step: float, *, cost: bool) -> str:
    """A tick label with as many decimals as the step needs.

    >>> fmt_tick(0.0005, 0.00025, cost=True), fmt_tick(1500, 500, cost=False)
    ('$0.00050', '1,500')
    """
    if value == 0:
        return "$0" if cost else "0"
    decimals = next((d for d in range(11) if abs(round(step, d) - step) < 1e-12), 10)
    text = f"{value:,.{decimals}f}"
    return f"${text}" if cost else text


def fmt_x(value: float, *, cost: bool) -> str:
    """An x value for a tooltip."""
    return f"${value:.4g} per item" if cost else f"{value:,.0f} tokens per item"


# --------------------------------------------------------------------------- SVG

W, H = 760, 440
LEFT, RIGHT, TOP, BOTTOM = 64, 190, 44, 56


def _marker(shape: str, x: float, y: float, color: str) -> str:
    r = 5.5
    if shape == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" fill="{color}"/>'  # noqa: E501
    if shape == "triangle":
        pts = f"{x:.1f},{y - r - 1:.1f} {x - r - 1:.1f},{y + r:.1f} {x + r + 1:.1f},{y + r:.1f}"
        return f'<polygon points="{pts}" fill="{color}"/>'
    if shape == "diamond":
        d = r + 1.5
        pts = f"{x:.1f},{y - d:.1f} {x + d:.1f},{y:.1f} {x:.1f},{y + d:.1f} {x - d:.1f},{y:.1f}"
        return f'<polygon points="{pts}" fill="{color}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}"/>'


def svg(report: EvalReport) -> str:
    """The chart as a standalone ``<svg>`` element; every text is escaped."""
    e = html.escape
    title, is_cost, pts = points(report)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    ticks = nice_ticks(max((p.x for p in pts), default=0.0) * 1.05)
    xmax = ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0

    def sx(v: float) -> float:
        return LEFT + pw * (v / xmax if xmax else 0.0)

    def sy(v: float) -> float:
        return TOP + ph * (1.0 - v)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{e(f'Accuracy against {title}')}</title>",
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="24" font-size="15" font-weight="600">'
        f"{e(f'Accuracy against {title}')}</text>",
    ]
    for i in range(6):  # horizontal grid: 0, 20, ... 100 %
        v = i / 5
        y = sy(v)
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#e3e6eb"/>'
        )
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{100 * v:.0f}%</text>')
    for t in ticks:
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#f0f2f5"/>')
        label = e(fmt_tick(t, step, cost=is_cost))
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 18}" text-anchor="middle">{label}</text>')
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#9aa3b2"/>'
    )
    out.append(f'<text x="{LEFT + pw / 2:.1f}" y="{H - 14}" text-anchor="middle">{e(title)}</text>')
    out.append(
        f'<text transform="translate(16 {TOP + ph / 2:.1f}) rotate(-90)" '
        'text-anchor="middle">accuracy</text>'
    )
    placed: list[tuple[float, float, float]] = []
    for p in sorted(pts, key=lambda q: -q.y):
        x, y = sx(p.x), sy(p.y)
        y_lo, y_hi = sy(p.lo), sy(p.hi)
        tip = (
            f"{p.label}: {100 * p.y:.1f}% [{100 * p.lo:.1f}, {100 * p.hi:.1f}], "
            f"{fmt_x(p.x, cost=is_cost)}"
        )
        out.append(f"<g><title>{e(tip)}</title>")
        out.append(
            f'<line x1="{x:.1f}" y1="{y_hi:.1f}" x2="{x:.1f}" y2="{y_lo:.1f}" '
            f'stroke="{p.color}" stroke-width="1.5"/>'
        )
        for yy in (y_lo, y_hi):
            out.append(
                f'<line x1="{x - 5:.1f}" y1="{yy:.1f}" x2="{x + 5:.1f}" y2="{yy:.1f}" '
                f'stroke="{p.color}" stroke-width="1.5"/>'
            )
        out.append(_marker(p.shape, x, y, p.color))
        ly = y - 8
        lx0, lx1 = x + 9, x + 9 + 6.2 * len(p.label)  # the label's approximate extent
        moved = True
        while moved:  # lift the label above any placed label it would overlap
            moved = False
            for left, right, py in placed:
                if lx0 < right and left < lx1 and abs(py - ly) < 14:
                    ly = py - 14
                    moved = True
        placed.append((lx0, lx1, ly))
        out.append(f'<text x="{x + 9:.1f}" y="{ly:.1f}" fill="#1d2433">{e(p.label)}</text>')
        out.append("</g>")
    backends = report.backends
    if len(backends) > 1:
        lx, ly0 = LEFT + pw + 24, TOP + 10
        out.append(f'<text x="{lx}" y="{ly0}" font-weight="600">backend</text>')
        for i, b in enumerate(backends):
            yy = ly0 + 20 * (i + 1)
            out.append(_marker(SHAPES[i % len(SHAPES)], lx + 6, yy - 4, "#5b6475"))
            out.append(f'<text x="{lx + 18}" y="{yy}">{e(b)}</text>')
    out.append("</svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------- PNG


def _matplotlib() -> tuple[Any, Any]:
    try:
        figure = importlib.import_module("matplotlib.figure")
        agg = importlib.import_module("matplotlib.backends.backend_agg")
    except ImportError:
        raise ConfigurationError(
            'Saving a PNG chart needs matplotlib: pip install "promptkit[eval]" (or pip install '
            "matplotlib). save_html() draws its chart without it."
        ) from None
    return figure, agg


def save_png(report: EvalReport, path: Path, *, dpi: int = 144) -> Path:
    """Draw the chart with matplotlib (no pyplot, no global state) to ``path``."""
    figure, agg = _matplotlib()
    title, is_cost, pts = points(report)
    fig = figure.Figure(figsize=(7.6, 4.6))
    agg.FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for p in pts:
        ax.errorbar(
            [p.x],
            [100 * p.y],
            yerr=[[100 * (p.y - p.lo)], [100 * (p.hi - p.y)]],
            fmt=_MPL_MARKERS[p.shape],
            color=p.color,
            capsize=4,
            markersize=7,
        )
        ax.annotate(
            p.label, (p.x, 100 * p.y), textcoords="offset points", xytext=(7, 5), fontsize=9
        )
    ax.set_title(f"Accuracy against {title}")
    ax.set_xlabel(title)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-3, 103)
    ticks = nice_ticks(max((p.x for p in pts), default=0.0) * 1.15)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    ax.set_xlim(0, ticks[-1])
    ax.set_xticks(ticks, [fmt_tick(t, step, cost=is_cost) for t in ticks])
    ax.grid(True, color="#e3e6eb")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=dpi)
    return path
