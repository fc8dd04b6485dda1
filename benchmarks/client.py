"""Per-call overhead of the clients, against a loopback OpenAI-compatible server.

What is measured: the time of one chat call with the 42-message few-shot prompt of
``render.py``, against a tiny HTTP server this script starts in-process on 127.0.0.1 (an
asyncio protocol on its own thread, answering ``POST /v1/chat/completions`` at once with a
fixed OpenAI-shaped JSON reply). The same server and the same prompt serve every client,
over kept-alive connections:

- floor: a hand-written socket client sending pre-encoded request bytes: what the server,
  the loopback and the GIL hand-over cost on their own (no client can do better);
- baseline (1.0x): raw ``httpx.Client``: ``post(url, json=body)``, ``.json()``, read
  the text (the messages already dicts);
- promptkit: ``LLM.complete(messages)`` over the OpenAI-compatible backend
  (``promptkit.connect("openai", base_url=...)``; messages as ``prompt.render()`` gives
  them), and ``FewShot.run(llm, input=...)`` (render + call);
- the openai SDK (``openai.OpenAI(base_url=..., max_retries=0)``), and promptkit over it
  (the ``openai-sdk`` backend: ``promptkit.connect(client=openai.OpenAI(...))``), LangChain's
  ``ChatOpenAI`` (if langchain-openai is installed) and ``litellm.completion`` (if
  installed).

Then async throughput: 32 calls in flight (``asyncio.gather``), 7 x 20 rounds, promptkit
``LLM.acomplete`` against raw ``httpx.AsyncClient`` (both with httpx's default pool); the
two alternate round by round and the figure is the median over the rounds.

Figures are medians of samples taken round-robin; ratios are against raw httpx.

Last, the cost of observability (when opentelemetry is installed), against promptkit's
call path with no observation at all (an LLM whose every request skips the observation
check: what a call cost before tracing existed), in two phases of the same run:

- tracing disabled: the OpenTelemetry API imported but no SDK configured (the check
  promptkit makes on every call; without opentelemetry imported it is cheaper still);
- the OpenTelemetry SDK configured with an in-memory span exporter (SimpleSpanProcessor)
  and an in-memory metric reader: one client span, three histogram records per call (the
  duration, input and output tokens). Beside it, the SDK's own floor: the unobserved path
  wrapped in hand-written OpenTelemetry calls that replay exactly the span and records one
  traced promptkit call produced (same name, kind, attributes, attribute sets), so what is
  left between the two rows is promptkit's own share.

Goals: promptkit <= 1.2x raw httpx per call; async throughput >= 0.9x raw httpx; tracing
disabled <= 1.02x and with the SDK <= 1.15x of the unobserved path.

Run: ``python benchmarks/client.py`` (``--quick`` for a smoke run of a few seconds).
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _harness import bench, fmt_ns, fmt_ratio, header, parse_args, print_table, summarize
from _loopback import HttpProtocol, chat_completion, response
from render import INPUT, make_promptkit

import promptkit as pk

MODEL = "bench-model"
REPLY_TEXT = "negative"
REPLY = json.dumps(
    chat_completion(REPLY_TEXT, model=MODEL, prompt_tokens=431, completion_tokens=1)
).encode()
_OK = response(REPLY)
_NOT_FOUND = response(b"{}", "404 Not Found")


# --------------------------------------------------------------------------- the server


class _Protocol(HttpProtocol):
    """The fixed reply at once; the CPU time spent is added to the server's."""

    def __init__(self, server: LoopbackServer) -> None:
        super().__init__()
        self.server = server

    def data_received(self, data: bytes) -> None:
        started = time.thread_time_ns()
        try:
            super().data_received(data)
        finally:
            self.server.cpu_ns += time.thread_time_ns() - started

    def handle(self, method: str, path: str, body: bytes, close: bool) -> None:
        ok = method == "POST" and path == "/v1/chat/completions"
        self.server.requests += 1
        self.write(_OK if ok else _NOT_FOUND)
        if close and self.transport is not None:
            self.transport.close()


class LoopbackServer:
    """The fixed-reply server on 127.0.0.1, on its own thread and event loop."""

    def __init__(self) -> None:
        self.requests = 0
        #: CPU time the server thread spent handling requests (parsing, writing replies)
        self.cpu_ns = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-server", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Protocol(self), "127.0.0.1", 0, backlog=256)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        self._server.close()
        self.loop.run_until_complete(self._server.wait_closed())
        self.loop.close()

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the loopback server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


class SocketFloor:
    """A minimal keep-alive client: pre-encoded request, read the reply by its length."""

    def __init__(self, port: int, body: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    def call(self) -> str:
        self.sock.sendall(self.request)
        buf = b""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = buf[:end].lower()
                i = head.find(b"content-length:")
                length = int(head[i + 15 :].split(b"\r\n", 1)[0])
                if len(buf) >= end + 4 + length:
                    data = json.loads(buf[end + 4 : end + 4 + length])
                    return str(data["choices"][0]["message"]["content"])
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- the clients


def sync_cases(
    server: LoopbackServer, messages: list[pk.Message], closers: list[Callable[[], object]]
) -> tuple[dict[str, Callable[[], str]], list[str]]:
    """The per-call cases, each returning the reply text; and the ones skipped."""
    dicts = [m.to_dict() for m in messages]
    body = {"model": MODEL, "messages": dicts}
    url = f"{server.base_url}/chat/completions"
    skipped: list[str] = []

    floor = SocketFloor(server.port, json.dumps(body).encode())
    closers.append(floor.close)

    client = httpx.Client()
    closers.append(client.close)

    def raw_httpx() -> str:
        resp = client.post(url, json=body)
        resp.raise_for_status()
        return str(resp.json()["choices"][0]["message"]["content"])

    llm = pk.connect("openai", base_url=server.base_url, api_key="x", model=MODEL)
    closers.append(llm.backend.close)
    prompt = make_promptkit()

    cases: dict[str, Callable[[], str]] = {
        "floor: socket client, pre-encoded request": floor.call,
        "raw httpx.Client": raw_httpx,
        "promptkit LLM.complete": lambda: llm.complete(messages).text,
        "promptkit FewShot.run (render + call)": lambda: prompt.run(llm, input=INPUT).text,
    }

    if importlib.util.find_spec("openai") is not None:
        import openai

        oa = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        closers.append(oa.close)

        def openai_sdk() -> str:
            out = oa.chat.completions.create(model=MODEL, messages=dicts)  # type: ignore[arg-type]
            return str(out.choices[0].message.content)

        cases["openai SDK"] = openai_sdk
        # the openai-sdk backend: promptkit over the same kind of client
        via_sdk = pk.connect(
            client=openai.OpenAI(base_url=server.base_url, api_key="x"), model=MODEL
        )
        closers.append(via_sdk.backend.close)
        cases["promptkit LLM.complete via openai-sdk"] = lambda: via_sdk.complete(messages).text
    else:
        skipped.append("openai SDK (pip install 'promptkit[bench]')")

    if importlib.util.find_spec("langchain_openai") is not None:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
        from langchain_openai import ChatOpenAI

        kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
        lc_messages = [kinds[m.role](content=m.content) for m in messages]
        chat = ChatOpenAI(model=MODEL, base_url=server.base_url, api_key="x", max_retries=0)
        cases["LangChain ChatOpenAI.invoke"] = lambda: str(chat.invoke(lc_messages).content)
    else:
        skipped.append("LangChain ChatOpenAI (pip install langchain-openai)")

    if importlib.util.find_spec("litellm") is not None:
        import litellm

        def litellm_call() -> str:
            out = litellm.completion(
                model=f"openai/{MODEL}",
                api_base=server.base_url,
                api_key="x",
                messages=dicts,
                num_retries=0,
            )
            return str(out.choices[0].message.content)

        cases["litellm.completion"] = litellm_call
    else:
        skipped.append("litellm (not installed)")
    return cases, skipped


async def async_throughput(
    server: LoopbackServer, messages: list[pk.Message], *, runs: int, rounds: int, width: int
) -> dict[str, tuple[list[float], list[float]]]:
    """(calls per second, process CPU ns per call), one figure per round of ``width``
    calls, ``runs`` x ``rounds`` rounds each, for raw httpx.AsyncClient and promptkit."""
    dicts = [m.to_dict() for m in messages]
    body = {"model": MODEL, "messages": dicts}
    url = f"{server.base_url}/chat/completions"
    client = httpx.AsyncClient()
    llm = pk.connect("openai", base_url=server.base_url, api_key="x", model=MODEL)

    async def raw_one() -> str:
        resp = await client.post(url, json=body)
        resp.raise_for_status()
        return str(resp.json()["choices"][0]["message"]["content"])

    async def pk_one() -> str:
        return (await llm.acomplete(messages)).text

    cases: dict[str, Callable[[], Any]] = {
        "raw httpx.AsyncClient": raw_one,
        "promptkit LLM.acomplete": pk_one,
    }

    async def one_round(fn: Callable[[], Any]) -> tuple[float, float]:
        """(calls per second, process CPU ns per call) of one round of ``width`` calls."""
        cpu = time.process_time_ns()
        start = time.perf_counter_ns()
        texts = await asyncio.gather(*(fn() for _ in range(width)))
        wall = time.perf_counter_ns() - start
        if texts[0] != REPLY_TEXT:
            raise RuntimeError(f"unexpected reply {texts[0]!r}")
        return width / (wall / 1e9), (time.process_time_ns() - cpu) / width

    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    try:
        for fn in cases.values():
            for _ in range(2):  # warm-up: connections opened, code paths hot
                await one_round(fn)
        names = list(cases)
        # the cases alternate round by round, so a burst of load elsewhere hits both alike
        for i in range(runs * rounds):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                per_s, cpu_ns = await one_round(cases[name])
                results[name][0].append(per_s)
                results[name][1].append(cpu_ns)
    finally:
        await client.aclose()
        await llm.backend.aclose()
    return results


class _Unobserved(pk.LLM):
    """The reference row: requests go straight to ``_call`` (cache, then backend), with no
    observation check, as every call did before tracing existed."""

    def _call_all(self, pending: list[pk.Request]) -> list[pk.Completion]:
        return [self._call(request) for request in pending]


#: Span attributes known only when the reply is in (set when the span ends).
_END_PREFIXES = ("gen_ai.response.", "gen_ai.usage.", "promptkit.cost_usd", "promptkit.cache_hit")


class _SDKFloor(_Unobserved):
    """The SDK's own cost for the telemetry promptkit emits: the unobserved path wrapped in
    hand-written OpenTelemetry calls replaying exactly one traced promptkit call's span
    (name, kind, the same attributes at start and at end, made current for the request) and
    its three histogram records (the same attribute sets), with no promptkit logic at all."""

    span_name: str
    start_attrs: dict[str, Any]
    end_attrs: dict[str, Any]
    records: list[tuple[Any, float, dict[str, Any]]]  # (histogram, value, attributes)
    tracer: Any

    def learn(self, span: Any, points: list[tuple[str, float, dict[str, Any]]]) -> None:
        import opentelemetry.metrics
        import opentelemetry.trace

        self.span_name = span.name
        attrs = dict(span.attributes)
        self.end_attrs = {k: v for k, v in attrs.items() if k.startswith(_END_PREFIXES)}
        self.start_attrs = {k: v for k, v in attrs.items() if k not in self.end_attrs}
        self.tracer = opentelemetry.trace.get_tracer("sdk-floor")
        meter = opentelemetry.metrics.get_meter("sdk-floor")
        made = {
            name: meter.create_histogram(name, unit=unit)
            for name, unit in (
                ("gen_ai.client.operation.duration", "s"),
                ("gen_ai.client.token.usage", "{token}"),
            )
        }
        self.records = [(made[name], value, attrs) for name, value, attrs in points]

    def _call_all(self, pending: list[pk.Request]) -> list[pk.Completion]:
        from opentelemetry import context, trace

        started = time.perf_counter()
        span = self.tracer.start_span(
            self.span_name, kind=trace.SpanKind.CLIENT, attributes=self.start_attrs
        )
        token = context.attach(trace.set_span_in_context(span))
        try:
            done = [self._call(request) for request in pending]
            span.set_attributes(self.end_attrs)
            # recorded while the span is current, as promptkit does (exemplars link to it)
            for histogram, value, attrs in self.records:
                histogram.record(time.perf_counter() - started if value < 0 else value, attrs)
        finally:
            context.detach(token)
            span.end()
        return done


def _metric_points(reader: Any) -> list[tuple[str, float, dict[str, Any]]]:
    """(histogram, one recorded value, attributes) per attribute set promptkit recorded; the
    duration's value is -1 (the floor records its own elapsed time)."""
    out: list[tuple[str, float, dict[str, Any]]] = []
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    value = point.sum / point.count if "token" in metric.name else -1.0
                    out.append((metric.name, value, dict(point.attributes)))
    return out


def tracing_overhead(
    server: LoopbackServer, messages: list[pk.Message], *, quick: bool
) -> dict[str, dict[str, Any]] | None:
    """Per-call stats of the unobserved path against tracing disabled, then (the SDK now
    configured) against tracing with an in-memory exporter; None without opentelemetry."""
    if importlib.util.find_spec("opentelemetry") is None:
        return None
    import opentelemetry.metrics
    import opentelemetry.trace

    llm = pk.connect("openai", base_url=server.base_url, api_key="x", model=MODEL)
    plain = pk.connect("openai", base_url=server.base_url, api_key="x", model=MODEL)
    plain.__class__ = _Unobserved  # no observation at all
    floor = pk.connect("openai", base_url=server.base_url, api_key="x", model=MODEL)
    floor.__class__ = _SDKFloor
    assert isinstance(floor, _SDKFloor)
    samples, target = (5, 40.0) if quick else (15, 100.0)
    warmup = 5 if quick else 30
    phases: dict[str, dict[str, Any]] = {}
    try:
        phases["disabled"] = bench(
            {
                "unobserved path": lambda: plain.complete(messages).text,
                "tracing disabled (API, no SDK)": lambda: llm.complete(messages).text,
            },
            samples=samples,
            target_ms=target,
            warmup=warmup,
        )
        if importlib.util.find_spec("opentelemetry.sdk") is None:
            return phases
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        opentelemetry.trace.set_tracer_provider(provider)
        reader = InMemoryMetricReader()
        opentelemetry.metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        llm.complete(messages)  # one traced call, for the floor to replay
        floor.learn(exporter.get_finished_spans()[-1], _metric_points(reader))
        if len(floor.records) != 3:
            raise RuntimeError(f"expected 3 metric records per call, got {floor.records}")

        def traced() -> str:
            return floored(llm)

        def floored(client: pk.LLM) -> str:
            text = client.complete(messages).text
            if len(exporter._finished_spans) > 10_000:  # keep memory flat over the run
                exporter.clear()
            return text

        phases["sdk"] = bench(
            {
                "unobserved path": lambda: plain.complete(messages).text,
                "SDK, in-memory": traced,
                "SDK floor (same telemetry, by hand)": lambda: floored(floor),
            },
            samples=samples,
            target_ms=target,
            warmup=warmup,
        )
        if not exporter.get_finished_spans():
            raise RuntimeError("the SDK phase exported no span")
    finally:
        llm.close()
        plain.close()
        floor.close()
    return phases


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    quick = args.quick
    header("client overhead against a loopback OpenAI-compatible server", quick)
    warnings.simplefilter("ignore", DeprecationWarning)
    messages = make_promptkit().render(input=INPUT)
    assert len(messages) == 42

    closers: list[Callable[[], object]] = []
    with LoopbackServer() as server:
        try:
            cases, skipped = sync_cases(server, messages, closers)
            for name, fn in cases.items():
                got = fn()
                if got != REPLY_TEXT:
                    raise SystemExit(f"{name} returned {got!r}, expected {REPLY_TEXT!r}")
            for name in skipped:
                print(f"skipped: {name}")
            samples, target = (5, 40.0) if quick else (15, 100.0)
            before, server_cpu = server.requests, server.cpu_ns
            started = time.perf_counter()
            stats = bench(cases, samples=samples, target_ms=target, warmup=5 if quick else 30)
            sync_s = time.perf_counter() - started
            sync_requests = server.requests - before
            sync_server_ns = (server.cpu_ns - server_cpu) / max(sync_requests, 1)
        finally:
            for close in closers:
                close()

        runs, rounds = (2, 5) if quick else (7, 20)
        started = time.perf_counter()
        before, server_cpu = server.requests, server.cpu_ns
        throughput = asyncio.run(
            async_throughput(server, messages, runs=runs, rounds=rounds, width=32)
        )
        async_s = time.perf_counter() - started
        async_requests = server.requests - before
        async_server_ns = (server.cpu_ns - server_cpu) / max(async_requests, 1)

    floor_name = "floor: socket client, pre-encoded request"
    base_name = "raw httpx.Client"
    base = stats[base_name].median
    base_cpu = stats[base_name].cpu or 0.0
    floor = stats[floor_name].median
    size = len(json.dumps([m.to_dict() for m in messages]))
    print(
        f"one call, 42 messages ({size:,} bytes of JSON); {sync_requests:,} requests in "
        f"{sync_s:.1f} s; the server's own CPU: {fmt_ns(sync_server_ns)} a request"
    )
    rows = []
    for name, s in stats.items():
        is_base = name == base_name
        cpu = s.cpu or 0.0
        rows.append(
            [
                f"{name} (baseline)" if is_base else name,
                fmt_ns(s.median),
                fmt_ratio(s.median, base),
                "" if is_base else f"{(s.median - base) / 1e3:+,.0f} µs",
                f"{s.spread:.0%}",
                fmt_ns(cpu),
                fmt_ratio(cpu, base_cpu),
            ]
        )
    print_table(
        ["client", "per call", "vs httpx", "minus httpx", "IQR", "CPU/call", "CPU vs httpx"],
        rows,
    )
    print(
        f"(the floor, {fmt_ns(floor)}, is the server plus the loopback plus a minimal client; "
        "CPU/call counts every thread of this process, the server's included)"
    )
    print()
    pk_s = stats["promptkit LLM.complete"]
    print(
        f"promptkit LLM.complete vs raw httpx: {pk_s.median / base:.2f}x wall, "
        f"{(pk_s.cpu or 0.0) / base_cpu:.2f}x CPU (goal <= 1.2x)"
    )
    if "openai SDK" in stats:
        print(f"openai SDK vs raw httpx: {stats['openai SDK'].median / base:.2f}x")
        sdk_backend = stats["promptkit LLM.complete via openai-sdk"].median
        print(
            f"openai-sdk backend: {sdk_backend / base:.2f}x raw httpx, "
            f"{sdk_backend / pk_s.median:.2f}x the httpx backend, "
            f"{sdk_backend / stats['openai SDK'].median:.2f}x the bare SDK (expected: about 1x)"
        )
    print()

    print(
        f"async: 32 calls in flight, {runs} x {rounds} rounds each, the cases alternating "
        f"round by round; median over the rounds ({async_requests:,} requests in "
        f"{async_s:.1f} s; the server's own CPU: {fmt_ns(async_server_ns)} a request)"
    )
    a_base_name = "raw httpx.AsyncClient"
    t_base = summarize(throughput[a_base_name][0]).median
    c_base = summarize(throughput[a_base_name][1]).median
    rows = []
    for name, (per_s, cpu_ns) in throughput.items():
        s = summarize(per_s)
        c = summarize(cpu_ns).median
        rows.append(
            [
                f"{name} (baseline)" if name == a_base_name else name,
                f"{s.median:,.0f} calls/s",
                f"{s.median / t_base:.2f}x",
                f"{s.spread:.0%}",
                fmt_ns(c),
                fmt_ratio(c, c_base),
            ]
        )
    print_table(["client", "throughput", "vs httpx", "IQR", "CPU/call", "CPU vs httpx"], rows)
    pk_t = summarize(throughput["promptkit LLM.acomplete"][0]).median
    pk_c = summarize(throughput["promptkit LLM.acomplete"][1]).median
    print()
    print(
        f"promptkit async throughput vs raw httpx: {pk_t / t_base:.2f}x "
        f"(CPU per call {pk_c / c_base:.2f}x) (goal >= 0.9x)"
    )
    print()

    with LoopbackServer() as server:
        phases = tracing_overhead(server, messages, quick=quick)
    if phases is None:
        print("skipped: tracing overhead (pip install 'promptkit[otel]' opentelemetry-sdk)")
        return 0
    print("observability: LLM.complete against the unobserved path, per phase")
    rows = []
    for phase, st in phases.items():
        ref = st["unobserved path"]
        for name, s in st.items():
            rows.append(
                [
                    f"{phase}: {name}",
                    fmt_ns(s.median),
                    fmt_ratio(s.median, ref.median),
                    f"{s.spread:.0%}",
                    fmt_ns(s.cpu or 0.0),
                    fmt_ratio(s.cpu or 0.0, ref.cpu or 0.0),
                ]
            )
    print_table(["case", "per call", "vs unobserved", "IQR", "CPU/call", "CPU vs unobs."], rows)
    goals = {"disabled": ("tracing disabled (API, no SDK)", 1.02), "sdk": ("SDK, in-memory", 1.15)}
    for phase, (name, goal) in goals.items():
        if phase in phases:
            st = phases[phase]
            ref = st["unobserved path"]
            print(
                f"tracing {phase} vs unobserved: {st[name].median / ref.median:.3f}x wall, "
                f"{(st[name].cpu or 0.0) / (ref.cpu or 1.0):.3f}x CPU (goal <= {goal}x)"
            )
    if "sdk" in phases:
        st = phases["sdk"]
        ref, own = st["unobserved path"], st["SDK, in-memory"]
        floor = st["SDK floor (same telemetry, by hand)"]
        print(
            f"the SDK's own floor (same span and records, no promptkit code): "
            f"{floor.median / ref.median:.3f}x wall; promptkit's share on top: "
            f"{(own.median - floor.median) / ref.median:+.3f}x wall, "
            f"{((own.cpu or 0.0) - (floor.cpu or 0.0)) / (ref.cpu or 1.0):+.3f}x CPU"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
