"""A fake OpenAI-compatible chat server on 127.0.0.1, in a subprocess, for tests that
span processes (Ray actors): fixed latency, scripted failures, and a log of when each
request arrived.

``POST /v1/chat/completions`` replies after ``latency`` seconds with:

- HTTP 400 when the last user message contains ``BAD``;
- HTTP 429 (``Retry-After`` as set) while ``POST /control {"rate_limit_next": k,
  "retry_after": s}`` has 429s left to give, and for the request numbered
  ``rate_limit_at`` (counted from 0 since the last reset);
- ``{"label": "positive"|"negative"}`` when the request asks for a JSON schema
  (``response_format``): positive when the message contains ``good``;
- else ``echo: <last user message>``.

``GET /stats`` returns ``{"times": [arrival time.time() of each POST], "statuses": [...]}``
and ``POST /reset`` clears them. Run: ``python tests/loopback_openai.py --latency 0.05``
(prints the port; stops when stdin closes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def _load_loopback() -> Any:
    """The benchmarks' loopback server module (benchmarks/_loopback.py), loaded from its
    file without putting benchmarks/ on sys.path (whose scripts would shadow other names)."""
    import importlib.util

    name = "promptkit_benchmarks_loopback"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "_loopback.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_lb = _load_loopback()
HttpProtocol = _lb.HttpProtocol
ServerProcess = _lb.ServerProcess
chat_completion = _lb.chat_completion
response = _lb.response
serve_until_stdin_closes = _lb.serve_until_stdin_closes

_LOG: dict[str, list[Any]] = {"times": [], "statuses": []}
_CONTROL: dict[str, float] = {"rate_limit_next": 0, "rate_limit_at": -1, "retry_after": 1.0}


def _reply(request: dict[str, Any]) -> tuple[str, bytes, str]:
    messages = request.get("messages") or []
    last = str(messages[-1].get("content", "")) if messages else ""
    if "BAD" in last:
        err = {"error": {"message": "this row is bad", "type": "invalid_request_error"}}
        return "400 Bad Request", json.dumps(err).encode(), ""
    if _CONTROL["rate_limit_next"] > 0 or len(_LOG["times"]) - 1 == _CONTROL["rate_limit_at"]:
        _CONTROL["rate_limit_next"] = max(0, _CONTROL["rate_limit_next"] - 1)
        _CONTROL["rate_limit_at"] = -1
        err = {"error": {"message": "slow down", "type": "rate_limit_exceeded"}}
        after = f"retry-after: {_CONTROL['retry_after']}\r\n"
        return "429 Too Many Requests", json.dumps(err).encode(), after
    if request.get("response_format"):
        content = json.dumps({"label": "positive" if "good" in last else "negative"})
    else:
        content = f"echo: {last}"
    prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
    model = str(request.get("model", "loopback"))
    body = chat_completion(content, model=model, prompt_tokens=prompt_tokens, completion_tokens=3)
    return "200 OK", json.dumps(body).encode(), ""


class _Protocol(HttpProtocol):
    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency

    def handle(self, method: str, path: str, body: bytes, close: bool) -> None:
        if method == "GET" and path == "/stats":
            self.write(response(json.dumps(_LOG).encode()))
        elif method == "POST" and path == "/reset":
            _LOG["times"].clear()
            _LOG["statuses"].clear()
            self.write(response(b"{}"))
        elif method == "POST" and path == "/control":
            _CONTROL.update(json.loads(body))
            self.write(response(b"{}"))
        elif method == "POST" and path == "/v1/chat/completions":
            _LOG["times"].append(time.time())
            status, payload, extra = _reply(json.loads(body))
            _LOG["statuses"].append(int(status.split()[0]))
            self.write_later(self.latency, response(payload, status, extra))
        else:
            self.write(response(b"{}", "404 Not Found"))


class LoopbackServer(ServerProcess):
    """The server in a subprocess; ``base_url`` for ``connect("openai", base_url=...)``."""

    def __init__(self, latency: float = 0.05) -> None:
        super().__init__([__file__, "--latency", str(latency)])

    def stats(self) -> dict[str, list[Any]]:
        data: dict[str, list[Any]] = self.get_json("/stats")
        return data

    def reset(self) -> None:
        self.post("/reset")

    def control(self, **settings: float) -> None:
        self.post("/control", json=settings)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.05)
    latency = parser.parse_args().latency
    serve_until_stdin_closes(lambda: _Protocol(latency))
