"""Self-consistency wall time: 10 samples against one call, on a server with 200 ms latency.

What is measured: the wall time of drawing k=10 samples for one chat prompt and voting,
against a loopback OpenAI-compatible server (started here, on 127.0.0.1, asyncio) that
answers every request after 200 ms, however many run at once. Two server modes:

- **honours n**: one request with ``n=10`` returns 10 choices (OpenAI, vLLM). promptkit
  connects with the ``openai`` backend and sends one request.
- **ignores n**: every request returns one choice (the llama.cpp server). promptkit
  connects with the ``llama-server`` backend, which sends 10 concurrent requests with
  distinct seeds. For information, also the ``openai`` backend against this server: it
  sends ``n=10``, gets one choice, and tops up.

Cases, each timed as one whole run (median of the repeats, round-robin):

- baseline (1.0x): one promptkit call (``llm.complete``, sync);
- promptkit ``SelfConsistency(k=10).run`` (sync: threads) and ``.arun`` (async);
- sequential: 10 promptkit calls one after the other (about 10x);
- openai SDK: ``AsyncOpenAI`` with ``asyncio.gather`` of 10 calls (and, where the server
  honours n, one call with ``n=10``).

The server runs in its own process; "client CPU" is this process's CPU time during a run
(what the client library spends: on a busy machine it stretches the wall time). Every run
of a fast case is timed right after an untimed run of the same case (steady state:
connections pooled and open).

Goal: promptkit's 10 samples within 1.1x of a single call, in both modes (the sequential
calls take 10x; the openai SDK with asyncio.gather about 1.36x).

Run: ``python benchmarks/self_consistency.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import fmt_ns, fmt_ratio, header, parse_args, print_table
from _loopback import HttpProtocol, chat_completion, response

import promptkit as pk
from promptkit._client import LLM
from promptkit.backends.openai import LlamaServerBackend, OpenAIBackend
from promptkit.strategies import SelfConsistency

LATENCY_S = 0.2
K = 10
GOAL = 1.1
PROMPT = pk.ChainOfThought(instruction="Solve the problem.")
INPUT = "A farmer has 6 pens with 7 sheep each. How many sheep?"
#: openai clients to close before their server stops
CLIENTS: list[Any] = []


# --------------------------------------------------------------------------- the server


class LoopbackServer:
    """A minimal OpenAI-compatible chat server (HTTP/1.1 keep-alive, asyncio) on 127.0.0.1,
    in its own process (as a real server is: it does not compete with the client for the
    GIL). It answers every request after ``latency`` seconds; concurrent requests wait in
    parallel. With ``honours_n`` a request returns ``n`` choices, otherwise always one.
    ``GET /v1/stats`` gives the number of chat requests served so far."""

    def __init__(self, latency: float, honours_n: bool) -> None:
        self.latency = latency
        self.honours_n = honours_n
        self.port = 0
        self._process: Any = None

    def __enter__(self) -> LoopbackServer:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(self.latency, self.honours_n, child), daemon=True
        )
        self._process.start()
        if not parent.poll(30):
            raise RuntimeError("the loopback server did not start")
        self.port = parent.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> int:
        """Chat requests served so far."""
        import httpx

        return int(httpx.get(f"{self.base_url}/stats", timeout=5).json()["requests"])


class _Protocol(HttpProtocol):
    """Chat replies after the latency (``n`` choices when ``honours_n``); ``/stats`` and
    ``/models`` at once."""

    served = 0

    def __init__(self, latency: float, honours_n: bool) -> None:
        super().__init__()
        self.latency = latency
        self.honours_n = honours_n

    def handle(self, method: str, path: str, body: bytes, close: bool) -> None:
        if method == "POST" and path.endswith("/chat/completions"):
            _Protocol.served += 1
            reply = self._chat(json.loads(body))
            self.write_later(self.latency, response(json.dumps(reply).encode()))
            return
        if method == "GET" and path.endswith("/stats"):
            status, payload = "200 OK", {"requests": _Protocol.served}
        elif method == "GET" and path.endswith("/models"):
            status, payload = (
                "200 OK",
                {"object": "list", "data": [{"id": "bench", "object": "model"}]},
            )
        else:
            status, payload = "404 Not Found", {"error": {"message": f"no route {method} {path}"}}
        self.write(response(json.dumps(payload).encode(), status))

    def _chat(self, request: dict[str, Any]) -> dict[str, Any]:
        n = int(request.get("n", 1)) if self.honours_n else 1
        seed = int(request.get("seed", 0))
        answers = [
            f"6 pens x 7 sheep. The answer is {41 if (seed + i) % 4 == 0 else 42}."
            for i in range(n)
        ]
        model = str(request.get("model", "bench"))
        return chat_completion(answers, model=model, prompt_tokens=30, completion_tokens=12 * n)


def _serve(latency: float, honours_n: bool, conn: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Protocol(latency, honours_n), "127.0.0.1", 0, backlog=256
        )
        conn.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --------------------------------------------------------------------------- the cases


def promptkit_cases(llm: LLM, loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], object]]:
    messages = PROMPT.render(input=INPUT)
    sc = SelfConsistency(PROMPT, k=K, seed=1)

    def sequential() -> None:
        for i in range(K):
            llm.complete(messages, temperature=0.7, seed=i)

    return {
        "single call (baseline)": lambda: llm.complete(messages, temperature=0.7),
        f"promptkit SelfConsistency(k={K}).run": lambda: sc.run(llm, input=INPUT),
        f"promptkit SelfConsistency(k={K}).arun": lambda: loop.run_until_complete(
            sc.arun(llm, input=INPUT)
        ),
        f"sequential: {K} calls": sequential,
    }


def openai_cases(
    base_url: str, loop: asyncio.AbstractEventLoop, honours_n: bool
) -> dict[str, Callable[[], object]]:
    if importlib.util.find_spec("openai") is None:
        return {}
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    CLIENTS.append(client)
    messages: Any = [m.to_dict() for m in PROMPT.render(input=INPUT)]

    async def gather() -> None:
        await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="bench", messages=messages, temperature=0.7, seed=i
                )
                for i in range(K)
            )
        )

    async def one_n() -> None:
        await client.chat.completions.create(model="bench", messages=messages, temperature=0.7, n=K)

    def run(make: Callable[[], Awaitable[None]]) -> Callable[[], object]:
        return lambda: loop.run_until_complete(make())

    cases = {f"openai SDK: asyncio.gather of {K} calls": run(gather)}
    if honours_n:
        cases[f"openai SDK: one call with n={K}"] = run(one_n)
    return cases


def measure(
    cases: dict[str, Callable[[], object]], server: LoopbackServer, repeats: int
) -> dict[str, tuple[float, float, float]]:
    """Median wall time (ns), client CPU time (ns) and requests per run, by case,
    round-robin.

    Every run of a fast case (under a second) follows an untimed run of the same case, so
    it is timed in the steady state: pooled connections open (the slow cases take longer
    than httpx keeps idle connections, 5 s) and the server warm."""
    slow = set()
    for name, fn in cases.items():
        start = time.perf_counter()
        fn()
        if time.perf_counter() - start > 1.0:
            slow.add(name)
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    reqs: dict[str, list[int]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(repeats):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            if name not in slow:
                cases[name]()
            before = server.requests
            cpu_ns = time.process_time_ns()
            start_ns = time.perf_counter_ns()
            cases[name]()
            times[name].append(time.perf_counter_ns() - start_ns)
            cpus[name].append(time.process_time_ns() - cpu_ns)
            reqs[name].append(server.requests - before)
    return {
        name: (
            statistics.median(times[name]),
            statistics.median(cpus[name]),
            statistics.median(reqs[name]),
        )
        for name in cases
    }


def run_mode(title: str, honours_n: bool, repeats: int) -> dict[str, float]:
    loop = asyncio.new_event_loop()
    with LoopbackServer(LATENCY_S, honours_n) as server:
        backend_cls = OpenAIBackend if honours_n else LlamaServerBackend
        llm = LLM(backend_cls(model="bench", base_url=server.base_url))
        cases = promptkit_cases(llm, loop)
        if not honours_n:
            misdeclared = LLM(OpenAIBackend(model="bench", base_url=server.base_url))
            sc = SelfConsistency(PROMPT, k=K, seed=1)
            cases[f"(info) openai backend sends n={K}, tops up: .arun"] = lambda: (
                loop.run_until_complete(sc.arun(misdeclared, input=INPUT))
            )
            closers = [misdeclared]
        else:
            closers = []
        cases.update(openai_cases(server.base_url, loop, honours_n))
        results = measure(cases, server, repeats)
        for other in (llm, *closers):
            loop.run_until_complete(other.aclose())
        for client in CLIENTS:
            loop.run_until_complete(client.close())
        CLIENTS.clear()
    loop.close()

    base = results["single call (baseline)"][0]
    print(f"-- server {title}: {backend_cls.name} backend, {LATENCY_S * 1000:.0f} ms per request")
    rows = [
        [name, fmt_ns(ns), fmt_ratio(ns, base), fmt_ns(cpu), f"{reqs:g}"]
        for name, (ns, cpu, reqs) in results.items()
    ]
    print_table(["case", "wall time", "vs single call", "client CPU", "requests"], rows)
    print()
    return {name: ns / base for name, (ns, _, _) in results.items()}


def main() -> None:
    args = parse_args(__doc__)
    repeats = 3 if args.quick else 11
    header(f"Self-consistency: {K} samples vs one call (200 ms server latency)", args.quick)
    ratios = {
        "honours n": run_mode("honours n", True, repeats),
        "ignores n": run_mode("ignores n", False, repeats),
    }
    for mode, got in ratios.items():
        worst = max(
            got[f"promptkit SelfConsistency(k={K}).run"],
            got[f"promptkit SelfConsistency(k={K}).arun"],
        )
        verdict = "met" if worst <= GOAL else "NOT met"
        print(
            f"goal ({mode}): promptkit {K} samples <= {GOAL:.2f}x a single call, sync and "
            f"async: {verdict} (worst {worst:.2f}x)"
        )


if __name__ == "__main__":
    main()
