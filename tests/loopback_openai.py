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
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

_LOG: dict[str, list[Any]] = {"times": [], "statuses": []}
_CONTROL: dict[str, float] = {"rate_limit_next": 0, "rate_limit_at": -1, "retry_after": 1.0}


def _response(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


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
    body = {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": request.get("model", "loopback"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 3,
            "total_tokens": prompt_tokens + 3,
        },
    }
    return "200 OK", json.dumps(body).encode(), ""


class _Protocol(asyncio.Protocol):
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            method, path, _ = head[0].split(" ", 2)
            self._handle(method, path, body)

    def _handle(self, method: str, path: str, body: bytes) -> None:
        if method == "GET" and path == "/stats":
            self._write(_response(json.dumps(_LOG).encode()))
        elif method == "POST" and path == "/reset":
            _LOG["times"].clear()
            _LOG["statuses"].clear()
            self._write(_response(b"{}"))
        elif method == "POST" and path == "/control":
            _CONTROL.update(json.loads(body))
            self._write(_response(b"{}"))
        elif method == "POST" and path == "/v1/chat/completions":
            _LOG["times"].append(time.time())
            status, payload, extra = _reply(json.loads(body))
            _LOG["statuses"].append(int(status.split()[0]))
            data = _response(payload, status, extra)
            asyncio.get_running_loop().call_later(self.latency, self._write, data)
        else:
            self._write(_response(b"{}", "404 Not Found"))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def serve(latency: float) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Protocol(latency), "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(main())


class LoopbackServer:
    """The server in a subprocess; ``base_url`` for ``connect("openai", base_url=...)``."""

    def __init__(self, latency: float = 0.05) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--latency", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self) -> dict[str, list[Any]]:
        import httpx

        data: dict[str, list[Any]] = httpx.get(self._url("/stats")).json()
        return data

    def reset(self) -> None:
        import httpx

        httpx.post(self._url("/reset"), content=b"")

    def control(self, **settings: float) -> None:
        import httpx

        httpx.post(self._url("/control"), json=settings)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.05)
    serve(parser.parse_args().latency)
