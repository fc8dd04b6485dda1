"""The README's set-up commands and quickstart are the ones CI and these tests run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from readme import blocks


def test_setup_commands_are_first_and_are_what_ci_runs() -> None:
    first = blocks("bash")[0]
    commands = [line for line in first.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert 'pip install ".[local]"' in commands[0] and "cookbook/" in commands[0]
    assert "pytest" in commands[1]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "README.md" in ci and "bash -euo pipefail -c" in ci


def test_quickstart_render_and_fake_backend_blocks_run() -> None:
    code = blocks("python")
    namespace: dict[str, Any] = {}
    exec(compile(code[0], "README quickstart 1", "exec"), namespace)
    exec(compile(code[2], "README quickstart 3", "exec"), namespace)
    assert namespace["fake"].requests
