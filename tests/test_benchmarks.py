"""The benchmark scripts run (quick mode) and print their ratio lines; the figures
themselves are read by people, not asserted (see benchmarks/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    ("script", "expect"),
    [
        ("render.py", "promptkit render() vs raw jinja2"),
        ("client.py", "promptkit LLM.complete vs raw httpx"),
        ("import_time.py", "promptkit"),
        ("ray_batch.py", "2 actors vs 1 actor"),
    ],
)
def test_benchmark_runs_in_quick_mode(script: str, expect: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expect in done.stdout
