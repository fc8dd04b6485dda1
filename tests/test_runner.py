"""The batch runner: order, failure isolation, bounded concurrency, durable resumable runs,
rate limits and adaptive slow-down on 429 (with a fake clock), cache counts, progress."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptkit as pk
from promptkit import LLM, FakeBackend, SamplingParams
from promptkit._cache import Cache
from promptkit._progress import Progress
from promptkit._types import Request
from promptkit.batch import BatchResult, arun_batch, run_batch
from promptkit.batch._journal import _ResultsFile
from promptkit.batch._limits import TokenBucket as _TokenBucket

PROMPT = pk.ZeroShot(instruction="Echo.")


def echo(request: Request) -> str:
    assert request.messages is not None
    return "echo:" + request.messages[-1].content


def inputs(n: int) -> list[dict[str, str]]:
    return [{"input": f"x{i}"} for i in range(n)]


class FakeClock:
    """Virtual time: sleeping advances the clock at once (rate limiter and backoff)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        wake = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, wake)


class SlowFirst(FakeBackend):
    """Earlier inputs take longer, so completions arrive out of input order; tracks how
    many requests are in flight."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.active = 0
        self.peak = 0
        self.tasks_peak = 0

    async def acomplete(self, request: Request) -> pk.Completion:
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.tasks_peak = max(self.tasks_peak, len(asyncio.all_tasks()))
        try:
            assert request.messages is not None
            i = int(request.messages[-1].content[1:])
            await asyncio.sleep(0.002 * (i % 5))
            return await super().acomplete(request)
        finally:
            self.active -= 1


# --------------------------------------------------------------------------- basics


def test_results_in_input_order_and_bounded_concurrency() -> None:
    fake = SlowFirst(echo)
    result = run_batch(PROMPT, LLM(fake), inputs(40), concurrency=4, progress=False)
    assert result.texts == [f"echo:x{i}" for i in range(40)]
    assert [item.index for item in result] == list(range(40))
    assert result[3].input == {"input": "x3"}
    assert fake.peak == 4
    # a fixed pool of workers (plus the LLM's own gather task per call in flight), never
    # one task per input
    assert fake.tasks_peak <= 2 * 4 + 1
    s = result.summary
    assert (s.total, s.ok, s.failed, s.resumed) == (40, 40, 0, 0)
    assert s.usage.total_tokens is not None and s.usage.total_tokens > 0
    assert isinstance(result, BatchResult) and len(result) == 40


def test_generator_inputs_are_pulled_lazily() -> None:
    pulled = 0
    seen_at_first_request: list[int] = []

    def gen() -> Iterator[dict[str, str]]:
        nonlocal pulled
        for i in range(30):
            pulled += 1
            yield {"input": f"x{i}"}

    def reply(request: Request) -> str:
        seen_at_first_request.append(pulled)
        return echo(request)

    result = run_batch(PROMPT, LLM(FakeBackend(reply)), gen(), concurrency=3, progress=False)
    assert result.texts == [f"echo:x{i}" for i in range(30)]
    assert seen_at_first_request[0] <= 3  # never materialised up front
    assert result.summary.total == 30


def test_one_failure_does_not_stop_the_rest() -> None:
    def reply(request: Request) -> str:
        assert request.messages is not None
        if request.messages[-1].content == "x2":
            raise pk.BadRequestError("bad input", status=400, backend="fake")
        if request.messages[-1].content == "x4":
            raise ValueError("backend bug")
        return echo(request)

    result = run_batch(PROMPT, LLM(FakeBackend(reply)), inputs(6), progress=False)
    assert result.texts == ["echo:x0", "echo:x1", None, "echo:x3", None, "echo:x5"]
    bad = result[2]
    assert not bad.ok and isinstance(bad.error, pk.BadRequestError)
    assert bad.error_type == "BadRequestError" and bad.error_message == "bad input"
    bug = result[4]
    assert isinstance(bug.error, pk.BackendError) and "ValueError: backend bug" in str(bug.error)
    assert [i.index for i in result.failed] == [2, 4]
    s = result.summary
    assert (s.ok, s.failed) == (4, 2)
    assert s.errors == {"BackendError": 1, "BadRequestError": 1}
    assert "4 ok, 2 failed" in str(s)


def test_render_errors_and_non_mapping_inputs_are_recorded_per_input() -> None:
    items: list[Any] = [{"input": "a"}, {"inptu": "typo"}, "not a dict", {"input": "b"}]
    result = run_batch(PROMPT, LLM(FakeBackend(echo)), items, progress=False)
    assert result.texts == ["echo:a", None, None, "echo:b"]
    assert isinstance(result[1].error, pk.MissingVariablesError)
    assert isinstance(result[2].error, pk.InputValidationError)
    assert result[2].input is None
    assert "not a mapping" in (result[2].error_message or "")


@pytest.mark.parametrize("bad", [{"input": "a"}, "text", 42])
def test_inputs_must_be_an_iterable_of_dicts(bad: Any) -> None:
    with pytest.raises(pk.InputValidationError, match="iterable of dicts"):
        run_batch(PROMPT, LLM(FakeBackend(echo)), bad, progress=False)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"rpm": -1}, "rpm"),
        ({"tpm": 0}, "tpm"),
        ({"max_rate_limit_retries": -1}, "max_rate_limit_retries"),
        ({"fsync_interval": -1}, "fsync_interval"),
    ],
)
def test_bad_options_raise_configuration_errors(option: dict[str, Any], match: str) -> None:
    with pytest.raises(pk.ConfigurationError, match=match):
        run_batch(PROMPT, LLM(FakeBackend(echo)), inputs(1), progress=False, **option)


def test_out_in_a_missing_directory_or_a_directory(tmp_path: Path) -> None:
    llm = LLM(FakeBackend(echo))
    with pytest.raises(pk.ConfigurationError, match="does not exist"):
        run_batch(PROMPT, llm, inputs(1), out=tmp_path / "nope" / "r.jsonl", progress=False)
    with pytest.raises(pk.ConfigurationError, match="is a directory"):
        run_batch(PROMPT, llm, inputs(1), out=tmp_path, progress=False)


def test_sync_batch_inside_a_running_loop_points_to_abatch() -> None:
    async def go() -> None:
        PROMPT.batch(LLM(FakeBackend(echo)), inputs(1), progress=False)

    with pytest.raises(pk.ConfigurationError, match=r"await prompt\.abatch"):
        asyncio.run(go())


def test_abatch_and_prompt_params() -> None:
    fake = FakeBackend(echo)
    prompt = pk.ZeroShot(instruction="Echo.", params=SamplingParams(temperature=0.1))

    async def go() -> BatchResult:
        return await prompt.abatch(
            LLM(fake), inputs(3), params=SamplingParams(max_tokens=5), progress=False
        )

    result = asyncio.run(go())
    assert result.texts == ["echo:x0", "echo:x1", "echo:x2"]
    assert fake.requests[0].params == {"temperature": 0.1, "max_tokens": 5}


# --------------------------------------------------------------------------- durable runs


def lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.splitlines()]


def test_out_file_has_one_line_per_input_and_resume_skips_them(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    fake = FakeBackend(echo)
    first = run_batch(PROMPT, LLM(fake), inputs(5), out=out, progress=False)
    assert first.summary.resumed == 0
    recs = lines(out)
    assert sorted(r["index"] for r in recs) == list(range(5))
    rec = next(r for r in recs if r["index"] == 2)
    assert rec["status"] == "ok" and rec["text"] == "echo:x2"
    assert rec["choices"] == [{"text": "echo:x2", "finish_reason": "stop"}]
    assert rec["usage"]["total_tokens"] is not None and rec["v"] == 1

    again = run_batch(PROMPT, LLM(fake), inputs(5), out=out, progress=False)
    assert len(fake.requests) == 5  # nothing sent again
    assert again.texts == first.texts
    assert again.summary.resumed == 5 and all(item.resumed for item in again)
    assert len(lines(out)) == 5


def test_resume_completes_a_partial_run(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    fake = FakeBackend(echo)
    run_batch(PROMPT, LLM(fake), inputs(8)[:3], out=out, progress=False)
    result = run_batch(PROMPT, LLM(fake), inputs(8), out=out, progress=False, concurrency=2)
    assert result.texts == [f"echo:x{i}" for i in range(8)]
    assert result.summary.resumed == 3
    assert len(fake.requests) == 8
    assert sorted(r["index"] for r in lines(out)) == list(range(8))


def test_torn_last_line_is_cut_and_recomputed(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    fake = FakeBackend(echo)
    run_batch(PROMPT, LLM(fake), inputs(4), out=out, progress=False)
    data = out.read_bytes().splitlines(keepends=True)
    # keep 2 whole lines and half of the third: what a kill in the middle of a write leaves
    out.write_bytes(b"".join(data[:2]) + data[2][: len(data[2]) // 2])
    kept = {json.loads(line)["index"] for line in data[:2]}
    result = run_batch(PROMPT, LLM(fake), inputs(4), out=out, progress=False)
    assert result.texts == [f"echo:x{i}" for i in range(4)]
    assert {i.index for i in result if i.resumed} == kept
    recs = lines(out)
    assert sorted(r["index"] for r in recs) == [0, 1, 2, 3]


def test_resume_with_other_arguments_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    llm = LLM(FakeBackend(echo))
    run_batch(PROMPT, llm, inputs(3), out=out, progress=False)
    before = out.read_bytes()
    with pytest.raises(pk.ConfigurationError, match="different input"):
        run_batch(PROMPT, llm, [{"input": "other"}, *inputs(3)[1:]], out=out, progress=False)
    other_prompt = pk.ZeroShot(instruction="Something else.")
    with pytest.raises(pk.ConfigurationError, match="other arguments"):
        run_batch(other_prompt, llm, inputs(3), out=out, progress=False)
    with pytest.raises(pk.ConfigurationError, match="other arguments"):
        run_batch(PROMPT, llm, inputs(3), out=out, params=pk.PRECISE, progress=False)
    with pytest.raises(pk.ConfigurationError, match="only 2 inputs"):
        run_batch(PROMPT, llm, inputs(2), out=out, progress=False)
    with pytest.raises(pk.ConfigurationError, match="only 2 inputs"):
        run_batch(PROMPT, llm, iter(inputs(2)), out=out, progress=False)
    assert out.read_bytes() == before  # nothing written by the refused runs


def test_failures_are_kept_unless_retry_failed(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    broken = True

    def reply(request: Request) -> str:
        assert request.messages is not None
        if broken and request.messages[-1].content == "x1":
            raise pk.ServerError("down", status=503)
        return echo(request)

    fake = FakeBackend(reply)
    first = run_batch(PROMPT, LLM(fake), inputs(3), out=out, progress=False)
    assert first.texts == ["echo:x0", None, "echo:x2"]
    broken = False
    again = run_batch(PROMPT, LLM(fake), inputs(3), out=out, progress=False)
    assert again.texts == ["echo:x0", None, "echo:x2"]
    assert again[1].error is None and again[1].error_type == "ServerError"
    assert again[1].error_message == "down"
    assert len(fake.requests) == 3
    fixed = run_batch(PROMPT, LLM(fake), inputs(3), out=out, progress=False, retry_failed=True)
    assert fixed.texts == ["echo:x0", "echo:x1", "echo:x2"]
    assert len(fake.requests) == 4
    recs = lines(out)
    assert sorted(r["index"] for r in recs) == [0, 1, 2]
    assert all(r["status"] == "ok" for r in recs)


def test_a_corrupt_line_in_the_middle_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    run_batch(PROMPT, LLM(FakeBackend(echo)), inputs(2), out=out, progress=False)
    out.write_bytes(b"garbage\n" + out.read_bytes())
    with pytest.raises(pk.ConfigurationError, match="line 1"):
        run_batch(PROMPT, LLM(FakeBackend(echo)), inputs(2), out=out, progress=False)


def test_a_second_writer_on_the_same_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    holder = _ResultsFile(out, 1.0)
    holder.open()
    try:
        with pytest.raises(pk.ConfigurationError, match="another running batch"):
            run_batch(PROMPT, LLM(FakeBackend(echo)), inputs(2), out=out, progress=False)
    finally:
        holder.close()
    run_batch(PROMPT, LLM(FakeBackend(echo)), inputs(2), out=out, progress=False)


def test_batch_result_load_reads_a_file_in_input_order(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    run_batch(PROMPT, LLM(SlowFirst(echo)), inputs(6), out=out, concurrency=6, progress=False)
    loaded = BatchResult.load(out, inputs(6))
    assert loaded.texts == [f"echo:x{i}" for i in range(6)]
    assert loaded.summary.resumed == 6
    bare = BatchResult.load(out)
    assert [i.input for i in bare] == [None] * 6
    with pytest.raises(pk.ConfigurationError, match="different input"):
        BatchResult.load(out, inputs(7)[1:])


def test_fsync_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    calls = 0
    real = os.fsync

    def counting(fd: int) -> None:
        nonlocal calls
        calls += 1
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    out = tmp_path / "r.jsonl"
    run_batch(PROMPT, LLM(FakeBackend(echo)), inputs(5), out=out, fsync_interval=0, progress=False)
    assert calls >= 5


# --------------------------------------------------------------------------- rate limits


def test_token_bucket_rate_and_burst() -> None:
    clock = FakeClock()

    async def go() -> list[float]:
        bucket = _TokenBucket(60, clock)  # 1 per second, burst 1
        stamps = []
        for _ in range(4):
            await bucket.take(1)
            stamps.append(clock.now)
        return stamps

    stamps = asyncio.run(go())
    assert stamps == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=1e-6)


def test_rpm_spaces_requests() -> None:
    clock = FakeClock()
    stamps: list[float] = []

    def reply(request: Request) -> str:
        stamps.append(clock.now)
        return echo(request)

    result = run_batch(
        PROMPT, LLM(FakeBackend(reply)), inputs(6), rpm=120, concurrency=4, clock=clock,
        progress=False,
    )  # fmt: skip
    assert result.summary.ok == 6
    # 2 per second with a burst of 2: 0, 0, then one every half second
    assert stamps == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5, 2.0], abs=1e-6)


def test_tpm_uses_estimates_and_reconciles_with_usage() -> None:
    clock = FakeClock()
    stamps: list[float] = []

    def reply(request: Request) -> str:
        stamps.append(clock.now)
        return "ok"

    llm = LLM(FakeBackend(reply))
    # each request: approx_tokens of 2 messages (~ 4+4 + short) plus max_tokens 100
    result = run_batch(
        PROMPT, llm, inputs(4), tpm=6000, params=SamplingParams(max_tokens=100),
        concurrency=4, clock=clock, progress=False,
    )  # fmt: skip
    assert result.summary.ok == 4
    # 100 tokens per second; each request needs ~110 before usage refunds the unused part
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(g > 0 for g in gaps)
    assert stamps[-1] < 4 * 1.2  # refunds (usage ~ 3 tokens) keep it well under 4 x 1.1 s


def test_429_requeues_pauses_and_succeeds() -> None:
    clock = FakeClock()
    stamps: list[tuple[str, float]] = []
    failures = {"x1": 2}

    def reply(request: Request) -> str:
        assert request.messages is not None
        text = request.messages[-1].content
        stamps.append((text, clock.now))
        if failures.get(text, 0) > 0:
            failures[text] -= 1
            raise pk.RateLimitError("slow down", status=429, retry_after=3.0)
        return echo(request)

    result = run_batch(
        PROMPT, LLM(FakeBackend(reply)), inputs(3), concurrency=1, clock=clock, progress=False
    )
    assert result.texts == ["echo:x0", "echo:x1", "echo:x2"]
    assert result.summary.rate_limited == 2
    tries = [t for name, t in stamps if name == "x1"]
    assert len(tries) == 3
    # retry_after honoured: each retry waits 3 s
    assert tries[1] - tries[0] == pytest.approx(3.0) and tries[2] - tries[1] == pytest.approx(3.0)


def test_429_retry_after_from_a_fake_backend_replaces_the_backoff() -> None:
    """Real clock: the input is re-sent after the error's retry_after (0.01 s), not after
    the 1 s backoff used when the error carries none."""
    fake = FakeBackend([pk.RateLimitError("slow down", status=429, retry_after=0.01), "ok"])
    started = time.perf_counter()
    result = asyncio.run(arun_batch(PROMPT, LLM(fake), inputs(1), progress=False))
    elapsed = time.perf_counter() - started
    assert result.texts == ["ok"] and result.summary.rate_limited == 1
    assert len(fake.requests) == 2
    assert 0.01 <= elapsed < 0.9


def test_429_asking_for_more_than_five_minutes_is_the_inputs_failure() -> None:
    """A server asking to wait a day does not stall the batch: that input fails at once."""
    fake = FakeBackend([pk.RateLimitError("come back tomorrow", status=429, retry_after=86400)])
    started = time.perf_counter()
    result = asyncio.run(arun_batch(PROMPT, LLM(fake), inputs(1), progress=False))
    assert time.perf_counter() - started < 5
    assert result.summary.failed == 1 and len(fake.requests) == 1
    assert isinstance(result.items[0].error, pk.RateLimitError)


def test_429_retry_after_header_reaches_the_runner() -> None:
    """An HTTP 429's Retry-After, once the backend's own retries are spent, is the pause."""
    import httpx
    import respx

    from promptkit.backends.openai import OpenAIBackend

    ok = {"choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]}
    replies = [
        httpx.Response(429, json={"error": {"message": "busy"}}, headers={"Retry-After": "7"}),
        httpx.Response(200, json=ok),
    ]
    clock = FakeClock()
    with respx.mock(base_url="http://testserver/v1") as router:
        route = router.post("/chat/completions").mock(side_effect=replies)
        backend = OpenAIBackend(model="m", base_url="http://testserver/v1", max_retries=0)
        result = run_batch(PROMPT, LLM(backend), inputs(1), clock=clock, progress=False)
    assert result.texts == ["ok"] and result.summary.rate_limited == 1
    assert route.call_count == 2
    assert clock.sleeps == [7.0] and clock.now == 7.0


def test_429_backoff_and_failure_after_max_retries() -> None:
    clock = FakeClock()
    stamps: list[float] = []

    def reply(request: Request) -> str:
        stamps.append(clock.now)
        raise pk.RateLimitError("slow down", status=429)

    result = run_batch(
        PROMPT, LLM(FakeBackend(reply)), inputs(1), concurrency=1, clock=clock,
        max_rate_limit_retries=3, progress=False,
    )  # fmt: skip
    assert len(stamps) == 4  # first try + 3 re-queues
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    for gap, base in zip(gaps, [1.0, 2.0, 4.0], strict=True):
        assert base <= gap <= base * 1.1 + 1e-9  # exponential, a little jitter
    item = result[0]
    assert isinstance(item.error, pk.RateLimitError) and result.summary.failed == 1


def test_exhausted_quota_is_not_retried() -> None:
    calls = 0

    def reply(request: Request) -> str:
        nonlocal calls
        calls += 1
        raise pk.RateLimitError("openai: the account's quota is used up (429).", status=429)

    result = run_batch(
        PROMPT, LLM(FakeBackend(reply)), inputs(1), clock=FakeClock(), progress=False
    )
    assert calls == 1 and isinstance(result[0].error, pk.RateLimitError)


def test_429_halves_concurrency() -> None:
    clock = FakeClock()
    # "after": requests started after the 429 and still running. Requests that were already
    # in flight are not counted: with the fake clock the pause takes no real time, so on a
    # busy machine they may still be running when the new ones start.
    state = {"after": 0, "hit": False}
    entries: list[int] = []

    class Backend(FakeBackend):
        async def acomplete(self, request: Request) -> pk.Completion:
            started_after = state["hit"]
            if started_after:
                state["after"] += 1
                entries.append(state["after"])
            try:
                await asyncio.sleep(0.001)
                assert request.messages is not None
                if request.messages[-1].content == "x0" and not state["hit"]:
                    state["hit"] = True
                    raise pk.RateLimitError("slow down", status=429)
                return await super().acomplete(request)
            finally:
                if started_after:
                    state["after"] -= 1

    result = run_batch(
        PROMPT, LLM(Backend(echo)), inputs(40), concurrency=8, clock=clock, progress=False
    )
    assert result.summary.ok == 40 and result.summary.rate_limited == 1
    # new requests start under the halved limit (4), which grows back by one after each
    # run of that many successes; the up to 7 requests already in flight at the 429 count
    # as successes when they finish, so on a busy machine the limit may have grown twice
    # (6) by the time the first new requests run -- still under the 8 before the 429
    assert max(entries[:8]) <= 6
    assert len(entries) == 40 + 1 - 8  # the re-queued x0 and those after the 429


class ThreadRecorder:
    """A sync-only retriever that records the thread each retrieval runs on."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def retrieve(self, query: str, k: int) -> list[pk.Document]:
        self.threads.append(threading.get_ident())
        return [pk.Document(id="kb", text=f"About {query}.")]


def test_async_batch_retrieves_off_the_event_loop() -> None:
    """Inputs are rendered with arender(): a sync retriever runs in a worker thread, not
    on the event loop's; what is sent is what render() shows."""
    recorder = ThreadRecorder()
    rag = pk.Context(instruction="Answer.", template="{{ question }}", retriever=recorder, k=1)
    fake = FakeBackend(echo)
    questions = [{"question": f"q{i}"} for i in range(4)]

    async def go() -> tuple[int, BatchResult]:
        loop_thread = threading.get_ident()
        result = await arun_batch(rag, LLM(fake), questions, concurrency=2, progress=False)
        return loop_thread, result

    loop_thread, result = asyncio.run(go())
    assert result.summary.ok == 4
    assert len(recorder.threads) == 4 and loop_thread not in recorder.threads
    sent = sorted((list(r.messages or []) for r in fake.requests), key=lambda m: m[-1].content)
    assert sent == [rag.render(**q) for q in questions]


# --------------------------------------------------------------------------- cache, progress


def test_cache_hits_and_misses_in_the_summary(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite")
    fake = FakeBackend(echo)
    llm = LLM(fake, cache=cache)
    first = run_batch(PROMPT, llm, inputs(4), progress=False)
    assert (first.summary.cache_hits, first.summary.cache_misses) == (0, 4)
    second = run_batch(PROMPT, llm, inputs(5), progress=False)
    assert (second.summary.cache_hits, second.summary.cache_misses) == (4, 1)
    assert [c.cached for c in second.completions if c] == [True] * 4 + [False]
    assert len(fake.requests) == 5
    assert "cache 4 hits / 1 misses" in str(second.summary)
    cache.close()


def test_cache_hits_give_their_rate_budget_back(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite")
    llm = LLM(FakeBackend(echo), cache=cache)
    run_batch(PROMPT, llm, inputs(5), progress=False)
    clock = FakeClock()
    result = run_batch(PROMPT, llm, inputs(5), rpm=60, clock=clock, progress=False)
    assert result.summary.cache_hits == 5
    assert clock.now < 2.0  # not 4 s: hits do not use the requests-per-minute budget
    cache.close()


def test_progress_bar_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    def reply(request: Request) -> str:
        assert request.messages is not None
        if request.messages[-1].content == "x1":
            raise pk.BadRequestError("no")
        return echo(request)

    run_batch(PROMPT, LLM(FakeBackend(reply)), inputs(3), progress=True)
    err = capsys.readouterr().err
    assert "batch 3/3 100%" in err and "failed 1" in err
    run_batch(PROMPT, LLM(FakeBackend(echo)), inputs(3), progress=False)
    assert capsys.readouterr().err == ""


def test_progress_render_rate_eta_and_throttling() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = Progress(total=10, stream=out, tty=True, interval=0.1, clock=lambda: now[0])
    for _ in range(4):
        now[0] += 0.01
        bar.update(ok=True, cached=True)
    assert out.getvalue() == ""  # throttled: under 0.1 s since the start
    now[0] = 1.0
    bar.update(ok=False)
    line = out.getvalue()
    assert line.startswith("\rbatch 5/10  50% [##########----------]")
    assert "5.0/s" in line and "ETA 1s" in line and "failed 1" in line and "cached 4" in line
    bar.close()
    assert out.getvalue().endswith("\n")
    unknown = Progress(total=None, stream=io.StringIO(), tty=False, clock=lambda: 2.0)
    unknown.started = 0.0
    unknown.update(ok=True, resumed=True)
    assert unknown.render() == "batch 1 done | resumed 1"


def test_collect_false_keeps_only_the_summary(tmp_path: Path) -> None:
    def reply(request: Request) -> str:
        assert request.messages is not None
        if request.messages[-1].content == "x3":
            raise pk.BadRequestError("no")
        return echo(request)

    out = tmp_path / "r.jsonl"
    gen = ({"input": f"x{i}"} for i in range(50))
    result = run_batch(PROMPT, LLM(FakeBackend(reply)), gen, out=out, collect=False, progress=False)
    assert len(result) == 0 and result.texts == []
    s = result.summary
    assert (s.total, s.ok, s.failed, s.errors) == (50, 49, 1, {"BadRequestError": 1})
    loaded = BatchResult.load(out)
    assert len(loaded) == 50 and loaded[3].error_type == "BadRequestError"
    assert loaded[49].text == "echo:x49"


def test_journal_hashes_of_media_inputs_do_not_change_between_versions() -> None:
    # a results file written by an earlier version must still resume: the input hash of a
    # media part is pinned (prompt files leave out a part's empty fields; journals do not)
    import promptkit as pk
    from promptkit.batch._journal import _input_sha

    assert _input_sha({"photo": pk.Image("https://img.test/a.png")}) == (
        "1022813ab47e5543fb67d86f00e033c6"
    )
