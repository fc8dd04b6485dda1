"""promptkit.integrations.ray on a real local Ray instance (2 CPUs, started here) against a
loopback OpenAI-compatible server in a subprocess (tests/loopback_openai.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import promptkit as pk

ray = pytest.importorskip("ray")

from loopback_openai import LoopbackServer  # noqa: E402

from promptkit.integrations.ray import RayPrompt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


class Label(BaseModel):
    label: str


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer(latency=0.05)
    try:
        yield srv
    finally:
        srv.close()


def openai(server: LoopbackServer) -> dict[str, Any]:
    """connect() arguments for the loopback server; no backend retries, so a 429 reaches
    the job's cluster-wide handling at once."""
    return {
        "backend": "openai",
        "base_url": server.base_url,
        "api_key": "sk-test",
        "model": "loopback",
        "max_retries": 0,
    }


ECHO = pk.ZeroShot(instruction="Classify.", template="Review: {{ review }}")


def test_importing_promptkit_does_not_import_ray() -> None:
    code = "import promptkit, sys; print('ray' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "False"


def test_prompts_pickle_for_the_actors() -> None:
    """Each actor gets the prompt pickled; jinja2's compiled templates did not pickle."""
    import pickle

    prompt = pk.FewShot(
        instruction="Classify for {{ team }}.",
        template="Review: {{ review }}",
        examples=[pk.Example(input="great", output="positive")],
    )
    back = pickle.loads(pickle.dumps(prompt))
    assert back.render(team="QA", review="ok") == prompt.render(team="QA", review="ok")
    assert pickle.loads(pickle.dumps(pk.Template("{{ a }}!"))).render(a="hi") == "hi!"


def test_a_live_llm_is_refused() -> None:
    with pytest.raises(pk.ConfigurationError, match="not a live LLM"):
        RayPrompt(ECHO, pk.connect("fake"))  # type: ignore[arg-type]


def test_rows_in_rows_out_ids_kept_and_typed_failures(
    cluster: None, server: LoopbackServer
) -> None:
    rows = [{"id": i, "review": f"BAD {i}" if i % 7 == 3 else f"review {i}"} for i in range(60)]
    with RayPrompt(ECHO, openai(server), concurrency=8, price=(1.0, 2.0)) as job:
        out = job.map(ray.data.from_items(rows), actors=2, batch_size=10).take_all()
    assert [r["id"] for r in out] == list(range(60))  # every row, in order
    for r in out:
        assert r["review"] == rows[r["id"]]["review"]  # input columns kept
        if r["id"] % 7 == 3:
            assert r["error_type"] == "BadRequestError"
            assert "this row is bad" in r["error_message"]
            assert r["reply"] is None and r["total_tokens"] is None and r["cost_usd"] is None
        else:
            assert r["error_type"] is None and r["error_message"] is None
            assert r["reply"] == f"echo: Review: review {r['id']}"
            assert r["completion_tokens"] == 3
            assert r["total_tokens"] == r["prompt_tokens"] + 3
            expected = (r["prompt_tokens"] * 1.0 + 3 * 2.0) / 1e6
            assert r["cost_usd"] == pytest.approx(expected)
            assert r["requests"] == 1 and r["cached"] is False
            assert r["latency_s"] >= 0.05  # the server's latency


def test_a_missing_variable_fails_its_rows_not_the_dataset(
    cluster: None, server: LoopbackServer
) -> None:
    prompt = pk.ZeroShot(instruction="Classify.", template="{{ review }} about {{ topic }}")
    rows = [{"id": i, "review": "fine"} for i in range(5)]
    with RayPrompt(prompt, openai(server)) as job:
        out = job.map(ray.data.from_items(rows)).take_all()
    assert len(out) == 5
    assert {r["error_type"] for r in out} == {"MissingVariablesError"}
    assert all("topic" in r["error_message"] for r in out)


def test_structured_output_and_column_mapping(cluster: None, server: LoopbackServer) -> None:
    prompt = pk.ZeroShot(instruction="Label it.", template="{{ review }}")
    rows = [{"id": i, "text": "good stuff" if i % 2 else "meh"} for i in range(6)]
    with RayPrompt(
        prompt, openai(server), output=Label, columns={"review": "text"}, prefix="llm_"
    ) as job:
        out = job.map(ray.data.from_items(rows), actors=1).take_all()
    labels = [json.loads(r["llm_output"])["label"] for r in out]
    assert labels == ["negative", "positive"] * 3
    assert all(r["llm_error_type"] is None for r in out)


def test_a_strategy_on_the_fake_backend(cluster: None) -> None:
    cot = pk.ChainOfThought(instruction="Solve it.", template="{{ question }}")
    vote = pk.SelfConsistency(cot, k=3)
    replies = {"backend": "fake", "replies": lambda request: "6 x 7 = 42.\nThe answer is 42."}
    with RayPrompt(vote, replies) as job:
        out = job.map(ray.data.from_items([{"question": "6 x 7?"}] * 4)).take_all()
    assert [json.loads(r["output"]) for r in out] == ["42"] * 4
    assert all(r["reply"] == "6 x 7 = 42.\nThe answer is 42." for r in out)


def test_cache_is_shared_by_the_actors_of_a_node(
    cluster: None, server: LoopbackServer, tmp_path: Path
) -> None:
    rows = [{"id": i, "review": f"cached {i}"} for i in range(12)]
    cache = str(tmp_path / "responses.sqlite")
    server.reset()
    with RayPrompt(ECHO, openai(server), cache=cache) as job:
        first = job.map(ray.data.from_items(rows), actors=2, batch_size=3).take_all()
    with RayPrompt(ECHO, openai(server), cache=cache) as job:
        again = job.map(ray.data.from_items(rows), actors=2, batch_size=3).take_all()
    assert len(server.stats()["times"]) == 12  # the second run sent nothing
    assert not any(r["cached"] for r in first)
    assert all(r["cached"] and r["requests"] == 0 for r in again)
    assert [r["reply"] for r in again] == [r["reply"] for r in first]


def test_rate_limit_is_shared_by_two_actors(cluster: None, server: LoopbackServer) -> None:
    """rpm=240 is 4 requests a second for the whole job (a burst of 4): 2 actors of 8
    requests each would do ~300 a second without it."""
    server.reset()
    rows = [{"id": i, "review": f"limited {i}"} for i in range(24)]
    with RayPrompt(ECHO, openai(server), concurrency=8, rpm=240) as job:
        out = job.map(ray.data.from_items(rows), actors=2, batch_size=4).take_all()
        assert job.stats()["requests"] == 24
    assert len(out) == 24 and all(r["error_type"] is None for r in out)
    times = sorted(server.stats()["times"])
    assert len(times) == 24
    for start in times:  # any 2-second window: at most 2 s x 4/s + the burst of 4, and
        # one more for the jitter between a share's grant and the request's arrival
        assert sum(start <= t < start + 2.0 for t in times) <= 13
    assert times[-1] - times[0] >= (24 - 4) / 4 - 0.5  # the whole run, at 4/s


def test_a_429_pauses_every_actor(cluster: None, server: LoopbackServer) -> None:
    server.reset()
    rows = [{"id": i, "review": f"busy {i}"} for i in range(120)]
    job = RayPrompt(ECHO, openai(server), concurrency=4)
    ds = job.map(ray.data.from_items(rows), actors=2, batch_size=8)
    server.control(rate_limit_at=30, retry_after=1.5)
    try:
        out = ds.take_all()
        stats = job.stats()
    finally:
        job.close()
    assert len(out) == 120 and all(r["error_type"] is None for r in out)  # retried
    assert stats["rate_limited"] == 1 and stats["pauses"] == 1
    log = server.stats()
    t0 = next(t for t, s in zip(log["times"], log["statuses"], strict=True) if s == 429)
    # after the 429 (Retry-After 1.5 s) neither actor sends: the other one learns within
    # 0.25 s (plus a Ray call, slow on a busy machine)
    paused = [t for t in log["times"] if t0 + 0.5 < t < t0 + 1.45]
    assert paused == []
    assert any(t >= t0 + 1.45 for t in log["times"])  # and then they go on


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency=0"),
        ({"rpm": -5}, "rpm=-5"),
        ({"columns": {"review": 3}}, "columns"),
        ({"price": (1.0,)}, "price"),
    ],
)
def test_bad_options_are_refused_on_the_driver(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(pk.PromptkitError, match=message):
        RayPrompt(ECHO, {"backend": "fake"}, **kwargs)


def test_bad_targets_and_configurations_are_refused() -> None:
    with pytest.raises(pk.ConfigurationError, match="prompt or a strategy"):
        RayPrompt("Classify this.", {"backend": "fake"})
    vote = pk.SelfConsistency(pk.ChainOfThought(instruction="Solve."), k=3)
    with pytest.raises(pk.ConfigurationError, match="output= parses a prompt"):
        RayPrompt(vote, {"backend": "fake"}, output=Label)
    with pytest.raises(pk.ConfigurationError):
        RayPrompt(ECHO, {"backend": "no-such-backend"})


def test_a_column_clash_names_the_fix(cluster: None) -> None:
    rows = [{"id": 1, "review": "x", "reply": "already here"}]
    with RayPrompt(ECHO, {"backend": "fake"}) as job, pytest.raises(Exception, match="prefix="):
        job.map(ray.data.from_items(rows)).take_all()


def test_token_limit_is_shared_by_two_actors(cluster: None, server: LoopbackServer) -> None:
    """tpm=3000 is 50 tokens a second for the whole job; each request is estimated at
    ~14 tokens (its messages; no max_tokens) and the server reports about as many."""
    server.reset()
    rows = [{"id": i, "review": f"tokens {i:02d}"} for i in range(16)]
    with RayPrompt(ECHO, openai(server), concurrency=8, tpm=3000) as job:
        out = job.map(ray.data.from_items(rows), actors=2, batch_size=4).take_all()
    assert all(r["error_type"] is None for r in out)
    used = sum(r["total_tokens"] for r in out)
    times = sorted(server.stats()["times"])
    # the bucket starts with one second's worth (50 tokens) and refills at 50/s
    assert times[-1] - times[0] >= (used - 2 * 50) / 50


def test_a_job_closed_before_its_lazy_dataset_runs(cluster: None, server: LoopbackServer) -> None:
    job = RayPrompt(ECHO, openai(server), rpm=6000)
    ds = job.map(ray.data.from_items([{"review": f"late {i}"} for i in range(4)]))
    job.close()  # Ray Data is lazy: the actors start only now, and make the limits again
    out = ds.take_all()
    assert [r["reply"] for r in out] == [f"echo: Review: late {i}" for i in range(4)]
