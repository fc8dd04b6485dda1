"""Batch runner throughput and memory, against a loopback server with 200 ms latency.

What is measured: ``prompt.batch(llm, inputs, concurrency=64)`` over 1,000 inputs through
promptkit's OpenAI-compatible backend (``promptkit.connect("openai", base_url=...)``),
against a small asyncio HTTP server that this script starts in a subprocess on 127.0.0.1
(so that it does not compete for the client's GIL). The server answers
``POST /v1/chat/completions`` with a fixed OpenAI-shaped reply after 200 ms, handling
any number of requests at once; ``GET /stats`` reports the requests and TCP connections
it has seen.

- ideal: ``inputs / concurrency x latency`` (1000 / 64 x 0.2 s = 3.125 s); with whole
  waves of 64 the floor is ``ceil(1000 / 64) x 0.2 s`` = 3.2 s (1.024x);
- goal: wall time <= 1.3x the ideal;
- peak memory: the process's peak RSS growth during the timed run (``ru_maxrss``), and in
  a second, separate run the peak of Python allocations traced by ``tracemalloc`` (which
  slows Python down, so that run is not timed against the goal);
- a third run writes every result to a JSONL file (``out=``: the durable, resumable mode)
  to show what durability costs;
- the floor: the same requests from 64 workers over a bare ``httpx.AsyncClient`` (no
  promptkit), i.e. what the machine's HTTP stack allows.

httpx's connection pool (httpcore 1.0.x): at most 100 connections per client (more
requests in flight queue inside the pool) and ``max_keepalive_connections=20``. httpcore
compares that limit with *all* the pool's connections rather than the idle ones
(encode/httpcore#1000), so above 20 in flight nearly every released connection is closed
and the next request opens a new one (the connection count below shows it), at about
1.5 ms of client CPU a request. Raising ``max_keepalive_connections`` to the concurrency
keeps the connections but hits the pool's quadratic idle-connection scan, which costs
more. So on a small or busy machine the client's CPU is the limit, for promptkit and for
a bare httpx client alike (the floor row).

Run: ``python benchmarks/batch.py`` (``--quick``: 256 inputs, a smoke run of a few
seconds). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import header, print_table
from _loopback import (
    HttpProtocol,
    ServerProcess,
    chat_completion,
    response,
    serve_until_stdin_closes,
)

import promptkit as pk
from promptkit.batch import BatchResult

MODEL = "bench-model"
REPLY_TEXT = "positive"
REPLY = json.dumps(
    chat_completion(REPLY_TEXT, model=MODEL, prompt_tokens=42, completion_tokens=1)
).encode()
_REPLY_BYTES = response(REPLY)


# --------------------------------------------------------------------------- the server


class _Stats:
    requests = 0
    connections = 0
    in_flight = 0
    peak_in_flight = 0
    first = 0.0  # time.time() of the first and the last request seen
    last = 0.0


class _Protocol(HttpProtocol):
    """Each reply is written ``latency`` seconds after its request arrived."""

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _Stats.connections += 1

    def handle(self, method: str, path: str, body: bytes, close: bool) -> None:
        if method == "GET" and path == "/stats":
            stats = {
                "requests": _Stats.requests,
                "connections": _Stats.connections,
                "peak_in_flight": _Stats.peak_in_flight,
                "cpu_ms": int(time.process_time() * 1000),
                "first": _Stats.first,
                "last": _Stats.last,
            }
            self.write(response(json.dumps(stats).encode()))
        elif method == "POST" and path == "/window":  # a new timing window
            _Stats.first = _Stats.last = 0.0
            self.write(response(b"{}"))
        elif method == "POST" and path == "/v1/chat/completions":
            _Stats.requests += 1
            _Stats.last = time.time()
            _Stats.first = _Stats.first or _Stats.last
            _Stats.in_flight += 1
            _Stats.peak_in_flight = max(_Stats.peak_in_flight, _Stats.in_flight)
            asyncio.get_running_loop().call_later(self.latency, self._reply)
        else:
            self.write(response(b"{}", "404 Not Found"))

    def _reply(self) -> None:
        _Stats.in_flight -= 1
        self.write(_REPLY_BYTES)


class Server(ServerProcess):
    """The server subprocess (this script with ``--serve``)."""

    def __init__(self, latency: float) -> None:
        super().__init__([__file__, "--serve", "--latency", str(latency)])

    def stats(self) -> dict[str, float]:
        data: dict[str, float] = self.get_json("/stats")
        return data

    def new_window(self) -> None:
        """Forget the first and last request times (``stats()`` then covers what follows)."""
        self.post("/window")


# --------------------------------------------------------------------------- the runs


def maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def one_run(
    server: Server, n: int, concurrency: int, *, out: Path | None = None
) -> tuple[float, BatchResult]:
    llm = pk.connect("openai", base_url=server.base_url, api_key="x", model=MODEL)
    prompt = pk.FewShot(
        instruction="Classify the sentiment of the review as positive or negative.",
        examples=[
            pk.Example(input="I loved it", output="positive"),
            pk.Example(input="It broke after a day", output="negative"),
        ],
    )
    inputs = ({"input": f"Review number {i}: it works as described."} for i in range(n))
    started = time.perf_counter()
    result = prompt.batch(llm, inputs, concurrency=concurrency, out=out, progress=False)
    wall = time.perf_counter() - started
    if result.summary.ok != n or any(t != REPLY_TEXT for t in result.texts):
        raise SystemExit(f"unexpected results: {result.summary}")
    llm.close()
    return wall, result


def raw_httpx_run(server: Server, n: int, concurrency: int) -> float:
    """The HTTP floor: the same requests from ``concurrency`` workers over a bare
    ``httpx.AsyncClient`` (default pool), no promptkit: what this machine's HTTP stack
    allows."""
    import httpx

    system = "Classify the sentiment of the review as positive or negative."
    url = f"{server.base_url}/chat/completions"

    async def go() -> float:
        texts: list[str] = []
        todo = iter(range(n))
        async with httpx.AsyncClient() as client:

            async def worker() -> None:
                for i in todo:
                    body = {
                        "model": MODEL,
                        "messages": [
                            {"role": "system", "content": system},
                            {"role": "user", "content": "I loved it"},
                            {"role": "assistant", "content": "positive"},
                            {"role": "user", "content": "It broke after a day"},
                            {"role": "assistant", "content": "negative"},
                            {"role": "user", "content": f"Review number {i}: it works."},
                        ],
                    }
                    resp = await client.post(url, json=body)
                    resp.raise_for_status()
                    texts.append(resp.json()["choices"][0]["message"]["content"])

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            wall = time.perf_counter() - started
        if len(texts) != n or any(t != REPLY_TEXT for t in texts):
            raise SystemExit("unexpected raw httpx results")
        return wall

    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 inputs: a smoke run")
    parser.add_argument("--inputs", type=int, default=None, help="number of inputs (1000)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2, help="server latency, seconds")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_until_stdin_closes(lambda: _Protocol(args.latency))
        return 0

    n = args.inputs or (256 if args.quick else 1000)
    c, latency = args.concurrency, args.latency
    header(f"batch runner: {n} inputs, concurrency {c}, server latency {latency:g} s", args.quick)
    ideal = n / c * latency
    floor = math.ceil(n / c) * latency

    server = Server(latency)
    try:
        one_run(server, min(n, 2 * c), c)  # warm-up: imports, code paths
        rss_before = maxrss_mib()
        stats_before = server.stats()
        cpu_before = time.process_time()
        wall, result = one_run(server, n, c)
        client_cpu = time.process_time() - cpu_before
        stats_after = server.stats()
        rss_growth = maxrss_mib() - rss_before

        tracemalloc.start()
        traced_wall, _ = one_run(server, n, c)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        raw_wall = raw_httpx_run(server, n, c)

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "results.jsonl"
            durable_wall, _ = one_run(server, n, c, out=out)
            lines = len(out.read_bytes().splitlines())
            size = out.stat().st_size
    finally:
        server.close()

    requests = stats_after["requests"] - stats_before["requests"]
    connections = stats_after["connections"] - stats_before["connections"]
    print(
        f"ideal {ideal:.3f} s (inputs / concurrency x latency); whole-wave floor "
        f"{floor:.3f} s ({floor / ideal:.3f}x)"
    )
    print()
    rows = [
        ["prompt.batch", f"{wall:.3f} s", f"{wall / ideal:.3f}x", f"{n / wall:,.0f}/s"],
        [
            "prompt.batch, out=results.jsonl",
            f"{durable_wall:.3f} s",
            f"{durable_wall / ideal:.3f}x",
            f"{n / durable_wall:,.0f}/s",
        ],
        [
            "floor: bare httpx.AsyncClient, same pool",
            f"{raw_wall:.3f} s",
            f"{raw_wall / ideal:.3f}x",
            f"{n / raw_wall:,.0f}/s",
        ],
        [
            "prompt.batch under tracemalloc",
            f"{traced_wall:.3f} s",
            f"{traced_wall / ideal:.3f}x",
            f"{n / traced_wall:,.0f}/s",
        ],
    ]
    print_table(["run", "wall", "vs ideal", "throughput"], rows)
    print()
    print(
        f"goal: <= 1.3x ideal: {'met' if wall / ideal <= 1.3 else 'NOT met'} ({wall / ideal:.3f}x)"
    )
    print(f"runner + backend overhead over the bare HTTP floor: {wall / raw_wall:.3f}x")
    server_cpu = (stats_after["cpu_ms"] - stats_before["cpu_ms"]) / 1000
    print(
        f"server saw {requests} requests over {connections} new TCP connections, at most "
        f"{stats_after['peak_in_flight']} in flight"
    )
    print(
        f"CPU during the timed run: client {client_cpu:.2f} s ({client_cpu / n * 1000:.2f} ms "
        f"a request), server {server_cpu:.2f} s; wall {wall:.2f} s on {os.cpu_count()} cores"
    )
    print(
        f"peak memory: RSS grew {rss_growth:.1f} MiB during the timed run (peak RSS "
        f"{maxrss_mib():.1f} MiB); Python allocations peaked at "
        f"{traced_peak / 2**20:.1f} MiB ({traced_peak / n / 1024:.1f} KiB per input, "
        "results kept)"
    )
    print(f"durable file: {lines} lines, {size / 1024:.0f} KiB")
    print(f"summary: {result.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
