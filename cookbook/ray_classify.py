"""Ray: classify a dataset on a pool of Ray actors, with shared rate limits.

Technique: the few-shot classifier of ``few_shot.py``, run over a Ray Data dataset by
``pk.RayPrompt``: each actor connects once from a backend *configuration* (it calls
``pk.connect(**backend)`` in its own process), renders each row's ``review`` column, sends
``concurrency`` requests at a time, and adds columns (``reply``, token counts, ``cost_usd``,
``latency_s``, ``error_type`` / ``error_message`` ...). A failed row keeps its error in its
row; it never fails the dataset. ``rpm`` is shared by every actor on every node.

Run (one machine: a local Ray on 2 cores, the configured backend; the embedded model by
default):  ``python cookbook/ray_classify.py``   (``pip install "promptkit[ray]"``)

On a cluster (a vLLM fleet behind one OpenAI-compatible endpoint, Parquet in and out):

    vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000    # on each GPU machine, behind llm-lb
    ray start --head --port=6379                       # the head node
    ray start --address=HEAD_IP:6379                   # each worker node
    python cookbook/ray_classify.py --address auto --base-url http://llm-lb:8000/v1 \\
        --model Qwen/Qwen2.5-7B-Instruct --input s3://bucket/reviews/ \\
        --output s3://bucket/labelled/ --actors 8 --concurrency 64 --rpm 30000

Every node needs promptkit installed (or ``ray.init(runtime_env={"pip": [...]})``) and
the API key in its environment, not in the arguments. See ``promptkit.integrations.ray``
for the columns, the limits and what the response cache shares across nodes.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import promptkit as pk

classify = pk.FewShot(
    instruction="Classify the sentiment of the review as positive or negative.",
    examples=[
        pk.Example(input="I loved it, works perfectly.", output="positive"),
        pk.Example(input="It broke after a day.", output="negative"),
    ],
    template="{{ review }}",
    params=pk.PRECISE | pk.SamplingParams(max_tokens=4),
)

REVIEWS = [
    {"id": 1, "review": "Battery lasts two days, very happy."},
    {"id": 2, "review": "The strap broke within a week."},
    {"id": 3, "review": "Setup took a minute and it just works."},
    {"id": 4, "review": "Stopped charging after the update, useless."},
    {"id": 5, "review": "Great screen, great price."},
    {"id": 6, "review": "Returned it: the sound kept cutting out."},
]


def main(
    backend: Mapping[str, Any] | None = None,
    *,
    rows: list[dict[str, Any]] | None = None,
    actors: int = 2,
    concurrency: int = 8,
    rpm: float | None = None,
) -> list[dict[str, Any]]:
    """Classify ``rows`` (default: six reviews) with a local Ray; rows back in id order.

    ``backend``: ``pk.connect()`` arguments for the actors (default: the configuration of
    this machine: ``PROMPTKIT_*`` variables, ``promptkit.toml``, else the embedded model).
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.from_items(rows or REVIEWS)
        with pk.RayPrompt(classify, dict(backend or {}), concurrency=concurrency, rpm=rpm) as job:
            results = sorted(job.map(ds, actors=actors).take_all(), key=lambda r: r["id"])
    finally:
        if started_here:
            ray.shutdown()
    for r in results:
        label = (r["reply"] or "").strip().lower() if r["error_type"] is None else "ERROR"
        print(
            f"{label:<9} <- {r['review']}" + (f"  ({r['error_type']})" if r["error_type"] else "")
        )
    return results


def cluster(args: argparse.Namespace) -> None:
    """The multi-node run: Parquet in, Parquet out, on the cluster at ``--address``."""
    import ray

    ray.init(address=args.address)
    backend = {"backend": "openai", "base_url": args.base_url, "model": args.model}
    with pk.RayPrompt(
        classify, backend, concurrency=args.concurrency, rpm=args.rpm, tpm=args.tpm
    ) as job:
        ds = ray.data.read_parquet(args.input)
        job.map(ds, actors=args.actors).write_parquet(args.output)
        print(f"done: {job.stats()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Classify reviews with Ray.")
    parser.add_argument("--address", help="a running Ray cluster ('auto'); default: local")
    parser.add_argument("--base-url", help="the OpenAI-compatible endpoint (cluster runs)")
    parser.add_argument("--model", help="the model name the endpoint serves")
    parser.add_argument("--input", help="Parquet files with a 'review' column")
    parser.add_argument("--output", help="where to write the labelled Parquet files")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="requests per actor")
    parser.add_argument("--rpm", type=float, help="requests per minute, all actors together")
    parser.add_argument("--tpm", type=float, help="tokens per minute, all actors together")
    args = parser.parse_args()
    if args.address:
        cluster(args)
    else:
        main(actors=args.actors, concurrency=args.concurrency, rpm=args.rpm)
