"""Durable runs for real: a batch in a subprocess is killed with SIGKILL at several points,
restarted until it finishes, and the results file must hold exactly one valid line per
input, matching the inputs: nothing lost, nothing duplicated, no torn line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGKILL"), reason="needs POSIX signals (SIGKILL)"
)

N = 120

SCRIPT = r"""
import sys
import promptkit as pk

out, n = sys.argv[1], int(sys.argv[2])

def reply(request):
    return "echo:" + request.messages[-1].content

llm = pk.LLM(pk.FakeBackend(reply, latency=0.02))
prompt = pk.ZeroShot(instruction="Echo.")
inputs = ({"input": f"x{i}"} for i in range(n))  # a generator: never materialised
result = prompt.batch(llm, inputs, out=out, concurrency=4, progress=False)
assert result.texts == [f"echo:x{i}" for i in range(n)], result.texts
print(result.summary.ok, result.summary.resumed, flush=True)
"""


def start(out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out), str(N)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def complete_lines(out: Path) -> list[bytes]:
    try:
        data = out.read_bytes()
    except FileNotFoundError:
        return []
    return data[: data.rfind(b"\n") + 1].splitlines()


def check_no_duplicates(out: Path) -> int:
    """The invariant at any moment: whole lines parse, no index twice."""
    indices = [json.loads(line)["index"] for line in complete_lines(out)]
    assert len(indices) == len(set(indices)), f"an index was written twice: {sorted(indices)}"
    return len(indices)


def kill_when(proc: subprocess.Popen[str], out: Path, *, lines: int | None, after: float) -> None:
    """SIGKILL ``proc`` once the file holds ``lines`` whole lines (or after ``after`` s)."""
    deadline = time.monotonic() + 10
    started = time.monotonic()
    while time.monotonic() < deadline and proc.poll() is None:
        if lines is not None and len(complete_lines(out)) >= lines:
            break
        if lines is None and time.monotonic() - started >= after:
            break
        time.sleep(0.0005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)


def test_killed_runs_resume_to_exactly_one_line_per_input(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    kills = 0
    # (extra whole lines to wait for, or None: kill after a delay — during start-up, while
    # reading the file, or at an arbitrary moment of the run)
    plan: list[tuple[int | None, float]] = [
        (None, 0.05),  # before promptkit is even imported
        (1, 0.0),
        (3, 0.0),
        (None, 0.45),
        (7, 0.0),
        (12, 0.0),
        (1, 0.0),
    ]
    for extra, delay in plan:
        have = check_no_duplicates(out)
        if have >= N:
            break
        proc = start(out)
        kill_when(proc, out, lines=None if extra is None else have + extra, after=delay)
        kills += 1 if proc.returncode == -signal.SIGKILL else 0
    assert kills >= 4, "the subprocess finished before it could be killed: slow it down"

    before = check_no_duplicates(out)
    assert before > 0  # (on a fast machine the last run of the plan may have finished)
    for _ in range(5):  # restart until done (normally once)
        proc = start(out)
        stdout, stderr = proc.communicate(timeout=30)
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, stderr
    ok, resumed = map(int, stdout.split())
    assert ok == N and resumed >= before

    data = out.read_bytes()
    assert data.endswith(b"\n"), "torn last line"
    records = [json.loads(line) for line in data.splitlines()]
    assert len(records) == N
    assert sorted(r["index"] for r in records) == list(range(N))
    for r in records:
        assert r["status"] == "ok"
        assert r["text"] == f"echo:x{r['index']}"
    assert len({r["run_sha"] for r in records}) == 1
