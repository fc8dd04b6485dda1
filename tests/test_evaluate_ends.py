"""Reports of variants that score exactly 0 % or 100 %: the Wilson interval ends exactly at
0 and 1, so the table, JSON, HTML/SVG and PNG all show it and the PNG draws (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptkit.evaluation import EvalReport, ItemResult, VariantResult, wilson_interval
from promptkit.evaluation._chart import points


@pytest.mark.parametrize("n", [1, 2, 3, 10, 13, 15, 34, 40, 100, 1000])
def test_wilson_interval_is_exact_at_both_ends(n: int) -> None:
    lo, hi = wilson_interval(0, n)
    assert lo == 0.0 and 0.0 < hi < 1.0
    lo, hi = wilson_interval(n, n)
    assert hi == 1.0 and 0.0 < lo < 1.0
    lo, hi = wilson_interval(float(n), n)  # a sum of partial-credit scores
    assert hi == 1.0


def test_wilson_interval_always_contains_the_score() -> None:
    for n in range(1, 80):
        for k in range(n + 1):
            lo, hi = wilson_interval(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0


def ends_report(n: int = 40) -> EvalReport:
    def result(name: str, score: float) -> VariantResult:
        items = tuple(ItemResult(f"q{i}", 1, 1 if score else 0, score) for i in range(n))
        return VariantResult(name, "local", "m", items)

    return EvalReport(
        [result("never", 0.0), result("always", 1.0), result("half", 0.5)],
        dataset="d",
        metric="exact",
    )


def test_table_shows_the_exact_ends() -> None:
    lines = ends_report().table().splitlines()
    never = next(line for line in lines if line.startswith("never"))
    always = next(line for line in lines if line.startswith("always"))
    assert "0.0%" in never and "[0.0, 8.8]" in never
    assert "100.0%" in always and "[91.2, 100.0]" in always


def test_json_has_exact_ends_and_round_trips() -> None:
    report = ends_report()
    data = json.loads(report.to_json(items=False))
    never, always, _ = data["results"]
    assert never["ci_low"] == 0.0 and never["accuracy"] == 0.0
    assert always["ci_high"] == 1.0 and always["accuracy"] == 1.0
    back = EvalReport.from_dict(json.loads(report.to_json()))
    assert [r.ci for r in back] == [r.ci for r in report]


def test_chart_error_bars_are_never_negative() -> None:
    _, _, pts = points(ends_report())
    for p in pts:
        assert p.y - p.lo >= 0.0 and p.hi - p.y >= 0.0
    by_label = {p.label: p for p in pts}
    assert any(p.lo == p.y == 0.0 for p in pts) and any(p.hi == p.y == 1.0 for p in pts)
    assert len(by_label) == 3


def test_html_and_svg_show_the_exact_ends(tmp_path: Path) -> None:
    report = ends_report()
    page = report.save_html(tmp_path / "r.html").read_text(encoding="utf-8")
    svg = report.svg()
    for text in (page, svg):
        assert "0.0% [0.0, 8.8]" in text and "100.0% [91.2, 100.0]" in text


def test_save_png_draws_0_and_100_percent(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = ends_report().save_png(tmp_path / "ends.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    for n in (10, 13):  # lower bound 2.8e-17 and upper bound 0.9999999999999999 before
        ends_report(n).save_png(tmp_path / f"ends{n}.png")
