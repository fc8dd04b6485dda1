"""The README's set-up commands and quickstart are the ones CI and these tests run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from readme import blocks
from sdk_respx import sdk_mock

_REPLY = {
    "model": "smollm2",
    "choices": [{"index": 0, "message": {"content": "Blue."}, "finish_reason": "stop"}],
}


def test_setup_commands_are_first_and_are_what_ci_runs() -> None:
    first = blocks("bash")[0]
    commands = [line for line in first.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert '".[local]"' in commands[0] and "pip install" in commands[0]
    assert "cookbook/" in commands[0]
    assert "pytest" in commands[1]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "README.md" in ci and "bash -euo pipefail -c" in ci


def test_quickstart_render_and_fake_backend_blocks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every python block but the second (which calls the embedded model; it runs in
    tests/integration/test_cookbook_embedded.py) runs here, in order, in one namespace;
    respx answers the one that talks to a local server through the openai SDK."""
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # paths as from the checkout
    code = blocks("python")
    assert len(code) >= 6
    namespace: dict[str, Any] = {}
    try:
        with sdk_mock(monkeypatch) as router:  # the "bring your own client" block's server
            route = router.post("http://127.0.0.1:8080/v1/chat/completions").respond(
                json=_REPLY
            )
            for i, block in enumerate(code):
                if i != 1:
                    exec(compile(block, f"README python block {i + 1}", "exec"), namespace)
    finally:
        _reset_opentelemetry()  # the tracing block sets a global SDK provider
    assert route.call_count == 1 and namespace["llm"].backend.name == "openai-sdk"
    assert namespace["azure"].backend.name == "azure"
    assert namespace["fake"].requests
    assert namespace["vote"].answer == "42"


def _reset_opentelemetry() -> None:
    """Undo the README's global tracer provider (what OpenTelemetry's test utilities do)."""
    import sys

    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return
    from opentelemetry.util._once import Once

    provider = getattr(trace, "_TRACER_PROVIDER", None)
    if provider is not None and hasattr(provider, "shutdown"):
        provider.shutdown()
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
