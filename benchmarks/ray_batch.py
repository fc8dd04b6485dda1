"""Ray Data actors vs the local batch runner, against a loopback server with 200 ms latency.

What is measured: 2,000 rows (``--quick``: 384) classified by a few-shot prompt through
promptkit's OpenAI-compatible backend, against ``batch.py``'s asyncio server (a subprocess
on 127.0.0.1 answering every request after 200 ms, any number at once):

- ray, 1 actor: ``RayPrompt(...).map(ds, actors=1)`` with ``concurrency=32`` per actor;
- ray, 2 actors: the same with ``actors=2`` (64 requests in flight in all);
- local runner: ``prompt.batch(llm, rows, concurrency=64)`` in this process (the baseline
  at the same total concurrency).

Ray runs locally (``ray.init(num_cpus=2)``), actors reserving 0.25 CPU each. Two times
per case: the wall time (for Ray from ``map`` to the last row back, so actor start-up
included; the start-up alone, the same job over 1 row, is printed too), and the server's
view, from the first request to the last reply: the steady state that a long job runs at,
which the goals use (start-up is paid once per job). Ideal times:
``rows / concurrency x latency``.

Goals: 2 actors >= 1.8x the throughput of 1 actor; Ray (2 actors) within 1.3x of the local
runner's wall time at the same total concurrency.

On N nodes (on paper): each actor adds ``concurrency / latency`` requests per second
(32 / 0.2 s = 160/s here) for about 1-2 ms of client CPU per request, so one core drives a
few hundred requests a second and N nodes of C cores about N x C times that; the job's
throughput is the least of that, the servers' capacity (a vLLM fleet: per-GPU batch size x
GPUs / latency) and the shared ``rpm / 60``. Ray's own cost is a fixed actor start-up (a
few seconds, paid once per job) and one object-store round trip per batch of rows.

Run: ``python benchmarks/ray_batch.py`` (``--quick``: a smoke run). Only 127.0.0.1 is
contacted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import header, print_table
from batch import MODEL, REPLY_TEXT, Server

import promptkit as pk

PROMPT = pk.FewShot(
    instruction="Classify the sentiment of the review as positive or negative.",
    examples=[
        pk.Example(input="I loved it", output="positive"),
        pk.Example(input="It broke after a day", output="negative"),
    ],
)


LATENCY = [0.2]


def rows(n: int) -> list[dict[str, object]]:
    return [{"id": i, "input": f"Review number {i}: it works as described."} for i in range(n)]


def window(server: Server, latency: float) -> float:
    """Seconds from the first request of the run to the last reply (the last request's
    arrival plus the latency): the steady-state time, without start-up."""
    stats = server.stats()
    return stats["last"] - stats["first"] + latency


def local_run(server: Server, n: int, concurrency: int) -> tuple[float, float]:
    server.new_window()
    llm = pk.connect("openai", base_url=server.base_url, api_key="x", model=MODEL)
    inputs = [{"input": r["input"]} for r in rows(n)]
    started = time.perf_counter()
    result = PROMPT.batch(llm, inputs, concurrency=concurrency, progress=False)
    wall = time.perf_counter() - started
    llm.close()
    if result.summary.ok != n or any(t != REPLY_TEXT for t in result.texts):
        raise SystemExit(f"unexpected local results: {result.summary}")
    return wall, window(server, LATENCY[0])


def ray_run(server: Server, n: int, actors: int, concurrency: int) -> tuple[float, float]:
    import ray

    server.new_window()
    from promptkit.integrations.ray import RayPrompt

    config = {"backend": "openai", "base_url": server.base_url, "api_key": "x", "model": MODEL}
    ds = ray.data.from_items(rows(n), override_num_blocks=max(1, n // (2 * concurrency)))
    ds = ds.materialize()  # the input is ready before the clock starts
    with RayPrompt(PROMPT, config, concurrency=concurrency) as job:
        started = time.perf_counter()
        out = job.map(ds, actors=actors).materialize()
        wall = time.perf_counter() - started
        got = out.take_all()
    ok = [r for r in got if r["error_type"] is None and r["reply"] == REPLY_TEXT]
    if len(got) != n or len(ok) != n:
        errors = {r["error_type"] for r in got if r["error_type"]}
        raise SystemExit(f"unexpected ray results: {len(got)} rows, {len(ok)} ok, {errors}")
    return wall, window(server, LATENCY[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="384 rows: a smoke run")
    parser.add_argument("--rows", type=int, default=None, help="number of rows (2000)")
    parser.add_argument("--concurrency", type=int, default=32, help="per actor (32)")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency, seconds")
    args = parser.parse_args(argv)
    try:
        import ray
    except ImportError:
        print('ray is not installed: pip install "promptkit[ray]"')
        return 0

    n = args.rows or (384 if args.quick else 2000)
    c, latency = args.concurrency, args.latency
    LATENCY[0] = latency
    header(f"ray: {n} rows, {c} in flight per actor, server latency {latency:g} s", args.quick)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    server = Server(latency)
    try:
        startup, _ = ray_run(server, 1, 1, c)  # warm-up, and the fixed cost of a job
        local_run(server, min(n, 2 * c), 2 * c)  # warm-up
        one, one_s = ray_run(server, n, 1, c)
        two, two_s = ray_run(server, n, 2, c)
        local, local_s = local_run(server, n, 2 * c)
    finally:
        server.close()
        ray.shutdown()

    ideal_one, ideal_two = n / c * latency, n / (2 * c) * latency
    cases = [
        ("ray, 1 actor", c, one, one_s, ideal_one),
        ("ray, 2 actors", 2 * c, two, two_s, ideal_two),
        ("local runner (baseline)", 2 * c, local, local_s, ideal_two),
    ]
    table = [
        [
            name,
            str(k),
            f"{wall:.2f} s",
            f"{steady:.2f} s",
            f"{steady / ideal:.2f}x",
            f"{n / steady:,.0f}/s",
        ]
        for name, k, wall, steady, ideal in cases
    ]
    print_table(
        ["run", "in flight", "wall", "first request to last reply", "vs ideal", "throughput"],
        table,
    )
    print()
    print(
        f"job start-up (the same job over 1 row): {startup:.2f} s; it is in the wall column "
        "of the ray rows, not in the others (paid once per job: 2,000 rows or 2 million)"
    )
    scale = one_s / two_s
    print(
        f"2 actors vs 1 actor: {scale:.2f}x the throughput (goal >= 1.8x: "
        f"{'met' if scale >= 1.8 else 'NOT met'}); with start-up: {one / two:.2f}x"
    )
    ratio = two_s / local_s
    print(
        f"ray (2 actors) vs local runner at {2 * c} in flight: {ratio:.2f}x the time "
        f"(goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'}); with start-up: "
        f"{two / local:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
