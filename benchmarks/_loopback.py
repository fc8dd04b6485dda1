"""The loopback HTTP server of the benchmarks and the tests (not part of promptkit).

One HTTP/1.1 keep-alive request splitter (:class:`HttpProtocol`: just enough for requests
with a ``Content-Length``, on 127.0.0.1 only), the way a script serves it from a
subprocess until its stdin closes (:func:`serve_until_stdin_closes`), and the parent's
handle on that subprocess (:class:`ServerProcess`). Each user writes only what its server
answers: ``batch.py`` (a fixed reply after a latency, counting connections), ``client.py``
(a fixed reply at once, on a thread, timing its own CPU), ``self_consistency.py`` (``n``
choices) and ``tests/loopback_openai.py`` (scripted failures for the Ray tests).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any


def chat_completion(
    content: str | list[str], *, model: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """An OpenAI chat completion body (the fields the openai SDK reads), a choice a content."""
    contents = [content] if isinstance(content, str) else content
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
            for i, text in enumerate(contents)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def response(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    """An HTTP/1.1 JSON response; ``extra`` holds more header lines, each ending ``\\r\\n``."""
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


class HttpProtocol(asyncio.Protocol):
    """Splits a kept-alive connection's bytes into requests and calls :meth:`handle` for
    each; the subclass answers with :meth:`write` (now) or :meth:`write_later`. Replies go
    out in the order they are written, so a fixed latency keeps them in request order."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            method, path, _ = lines[0].split(" ", 2)
            self.handle(method, path, body, close)
            if self.transport is None or self.transport.is_closing():
                return

    def handle(self, method: str, path: str, body: bytes, close: bool) -> None:
        """Answer one request (``close``: the client asked to close the connection)."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def write_later(self, delay: float, data: bytes) -> None:
        asyncio.get_running_loop().call_later(delay, self.write, data)


def serve_until_stdin_closes(factory: Callable[[], asyncio.Protocol], backlog: int = 1024) -> None:
    """Serve on 127.0.0.1 (a free port, printed first) until stdin closes: the body of a
    script that :class:`ServerProcess` starts."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", 0, backlog=backlog)
        print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        server.close()

    asyncio.run(main())


class ServerProcess:
    """A server script run as ``python *argv`` in a subprocess (so that it does not compete
    with the client for the GIL); it prints its port, and stops when :meth:`close` closes
    its stdin."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    @property
    def base_url(self) -> str:
        """For ``promptkit.connect("openai", base_url=...)``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get_json(self, path: str) -> Any:
        import httpx

        return httpx.get(self.url(path)).json()

    def post(self, path: str, json: Any = None) -> None:
        import httpx

        if json is None:
            httpx.post(self.url(path), content=b"")
        else:
            httpx.post(self.url(path), json=json)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
