"""The on-disk response cache: what the key covers, round trips, samples kept apart,
sharing across processes, no secrets stored, and failures that degrade to misses."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import promptkit as pk
from promptkit import LLM, FakeBackend, SamplingParams
from promptkit._cache import Cache, CacheStats, CacheWarning, cache_key
from promptkit._types import Choice, Completion, Request, TokenLogprob, Usage

MSGS = [pk.Message.system("Be brief."), pk.Message.user("Capital of France?")]


def request(**kw: Any) -> Request:
    base: dict[str, Any] = {"messages": MSGS, "params": {"temperature": 0.7}}
    base.update(kw)
    return Request(**base)


def test_the_key_covers_everything_that_changes_the_output() -> None:
    from promptkit.backends.openai import OpenAIBackend

    fake = FakeBackend()
    base = cache_key(fake, request())
    variants = [
        cache_key(FakeBackend(model="other"), request()),
        cache_key(OpenAIBackend(model="fake-model", base_url="http://a:1/v1"), request()),
        cache_key(fake, request(messages=[pk.Message.user("Capital of France?")])),
        cache_key(fake, request(messages=[MSGS[0], pk.Message.assistant("Capital of France?")])),
        cache_key(fake, request(messages=None, prompt="Capital of France?")),
        cache_key(fake, request(params={"temperature": 0.8})),
        cache_key(fake, request(params={"temperature": 0.7, "max_tokens": 5})),
        cache_key(fake, request(params={"temperature": 0.7, "seed": 1})),
        cache_key(fake, request(extra={"mirostat": 2})),
        cache_key(fake, request(response_format={"name": "r", "schema": {"type": "object"}})),
        cache_key(fake, request(sample=1)),
    ]
    assert base not in variants and len(set(variants)) == len(variants)
    # base URL is part of the key: same backend and model, another server
    a = cache_key(OpenAIBackend(model="m", base_url="http://a:1/v1"), request())
    b = cache_key(OpenAIBackend(model="m", base_url="http://b:1/v1"), request())
    assert a != b
    # the timeout does not change the output, and dict order does not matter
    assert cache_key(fake, request(timeout=5)) == base
    swapped = request(params={"max_tokens": 5, "temperature": 0.7})
    assert cache_key(fake, swapped) == cache_key(
        fake, request(params={"temperature": 0.7, "max_tokens": 5})
    )


def test_round_trip_keeps_choices_logprobs_usage(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite")
    done = Completion(
        choices=[
            Choice("Paris", 0, "stop", (TokenLogprob("Paris", -0.1, (("Lyon", -2.5),)),)),
            Choice("Lyon", 1, "length"),
        ],
        model="m-1",
        backend="fake",
        usage=Usage(7, 2, 9),
        params_sent={"temperature": 0.7},
        dropped={"top_k": "no"},
        renamed={"max_tokens": "max_completion_tokens"},
        raw={"id": "x"},
    )
    fake = FakeBackend()
    cache.put(fake, request(), done)
    got = cache.get(fake, request())
    assert got is not None
    assert got.choices == done.choices
    assert (got.model, got.backend, got.usage) == ("m-1", "fake", Usage(7, 2, 9))
    assert got.params_sent == {"temperature": 0.7}
    assert got.dropped == {"top_k": "no"} and got.renamed == done.renamed
    assert got.raw == {"id": "x"}
    assert got.cached and got.requests == 0
    assert cache.get(fake, request(sample=1)) is None
    assert cache.stats() == CacheStats(hits=1, misses=1, entries=1)
    assert len(cache) == 1
    cache.clear()
    assert cache.get(fake, request()) is None and len(cache) == 0
    cache.close()


def test_llm_marks_hits_and_skips_the_backend(tmp_path: Path) -> None:
    fake = FakeBackend(["Paris", "Rome"])
    with Cache(tmp_path / "c.sqlite") as cache:
        llm = LLM(fake, cache=cache)
        first = llm.complete("Capital of France?")
        second = llm.complete("Capital of France?")
        other = llm.complete("Capital of Italy?")
        assert (first.text, first.cached) == ("Paris", False)
        assert (second.text, second.cached) == ("Paris", True)
        assert (other.text, other.cached) == ("Rome", False)
        assert len(fake.requests) == 2


@pytest.mark.parametrize("native_n", [False, True])
def test_self_consistency_samples_are_not_collapsed(tmp_path: Path, native_n: bool) -> None:
    fake = FakeBackend(["a", "b", "c", "d", "e", "f"], native_n=native_n)
    with Cache(tmp_path / "c.sqlite") as cache:
        llm = LLM(fake, cache=cache)
        params = SamplingParams(temperature=1.0, n=3)
        first = llm.complete("Pick a letter.", params=params)
        # emulated samples run concurrently, so which sample got which reply may vary
        assert sorted(first.texts) == ["a", "b", "c"]
        again = llm.complete("Pick a letter.", params=params)
        assert again.texts == first.texts and again.cached
        assert len(fake.requests) == (1 if native_n else 3)
        # emulated n stores each sample under its own index; native n one request
        assert cache.stats().entries == (1 if native_n else 3)
        if not native_n:
            # asking for more samples reuses the first ones and fetches only the new one
            more = llm.complete("Pick a letter.", params=SamplingParams(temperature=1.0, n=4))
            assert more.texts[:3] == first.texts and more.texts[3] == "d"
            assert not more.cached
            assert len(fake.requests) == 4


def test_async_calls_use_the_cache(tmp_path: Path) -> None:
    import asyncio

    fake = FakeBackend(["Paris"])
    with Cache(tmp_path / "c.sqlite") as cache:
        llm = LLM(fake, cache=cache)

        async def go() -> tuple[bool, bool]:
            a = await llm.acomplete("Capital?")
            b = await llm.acomplete("Capital?")
            return a.cached, b.cached

        assert asyncio.run(go()) == (False, True)


def test_api_keys_are_never_stored(tmp_path: Path) -> None:
    from promptkit.backends.openai import OpenAIBackend

    secret = "sk-THIS-IS-SECRET-1234"
    backend = OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1", api_key=secret)
    path = tmp_path / "c.sqlite"
    with Cache(path) as cache:
        cache.put(backend, request(), Completion(choices=[Choice("ok")], model="m"))
        assert cache.get(backend, request()) is not None
    for file in tmp_path.iterdir():
        assert secret.encode() not in file.read_bytes()


def test_bad_paths_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(pk.ConfigurationError, match="does not exist"):
        Cache(tmp_path / "missing" / "c.sqlite")
    with pytest.raises(pk.ConfigurationError, match="is a directory"):
        Cache(tmp_path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(pk.ConfigurationError, match="SQLite"):
        Cache(junk)


def test_a_broken_cache_degrades_to_misses(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.sqlite")
    cache._connect().execute("DROP TABLE responses")
    fake = FakeBackend(["Paris", "Paris"])
    llm = LLM(fake, cache=cache)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert llm.complete("Capital?").text == "Paris"
    assert any(issubclass(w.category, CacheWarning) for w in caught)
    cache.close()


def test_threads_share_one_cache(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Cache(tmp_path / "c.sqlite") as cache:
        fake = FakeBackend(lambda r: "x")

        def put(i: int) -> None:
            cache.put(fake, request(sample=i), Completion(choices=[Choice(f"t{i}")]))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(64)))
        assert cache.stats().entries == 64
        got = cache.get(fake, request(sample=17))
        assert got is not None and got.text == "t17"


WRITER = r"""
import sys
from promptkit import FakeBackend, Message
from promptkit._cache import Cache
from promptkit._types import Choice, Completion
from promptkit._types import Request

path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cache = Cache(path, timeout=30)
fake = FakeBackend()
for i in range(n):
    req = Request(messages=[Message.user(f"q{i}")], sample=0 if who == "a" else 1)
    cache.put(fake, req, Completion(choices=[Choice(f"{who}{i}")]))
    # read what the other process wrote so far: reads never block on the writer
    other = Request(messages=[Message.user(f"q{i}")], sample=1 if who == "a" else 0)
    cache.get(fake, other)
print(cache.stats().entries)
"""


def test_two_processes_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    n = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), who, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Warning" not in err, err
    with Cache(path) as cache:
        assert cache.stats().entries == 2 * n
        fake = FakeBackend()
        for i in (0, n - 1):
            for sample, who in ((0, "a"), (1, "b")):
                got = cache.get(fake, Request(messages=[pk.Message.user(f"q{i}")], sample=sample))
                assert got is not None and got.text == f"{who}{i}" and got.cached
    # and a third process reads what the first two wrote
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from promptkit import FakeBackend, Message;"
            "from promptkit._cache import Cache; from promptkit._types import Request;"
            "c = Cache(sys.argv[1]);"
            "print(c.get(FakeBackend(), Request(messages=[Message.user('q3')], sample=1)).text)",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.strip() == "b3"


def test_connect_takes_a_cache_path(tmp_path: Path) -> None:
    import promptkit as pk

    llm = pk.connect("fake", replies=["first", "second"], cache=tmp_path / "c.sqlite")
    a = llm.complete("same question")
    b = llm.complete("same question")
    assert (a.text, a.cached) == ("first", False)
    assert (b.text, b.cached) == ("first", True)


def test_opening_waits_out_a_lock_while_another_process_sets_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite can answer the switch to the write-ahead log with "database is locked" at once
    (no busy handler) while another process opens the same new file: opening retries (this
    failed test_two_processes_share_the_file on a loaded machine)."""
    import sqlite3

    real_connect = sqlite3.connect
    refusals = {"n": 2}

    class Flaky:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def execute(self, sql: str, *args: Any) -> Any:
            if "journal_mode" in sql and refusals["n"]:
                refusals["n"] -= 1
                raise sqlite3.OperationalError("database is locked")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.conn, name)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: Flaky(real_connect(*a, **k)))
    cache = Cache(tmp_path / "c.sqlite", timeout=5)
    assert refusals["n"] == 0
    cache.close()
    refusals["n"] = 10**6  # locked for longer than the timeout: the error still says so
    with pytest.raises(pk.ConfigurationError, match="locked"):
        Cache(tmp_path / "d.sqlite", timeout=0.2)
