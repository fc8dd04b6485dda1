"""An opt-in response cache on disk: one SQLite file, shared by threads and processes.

>>> import tempfile, os
>>> from promptkit import LLM, FakeBackend
>>> tmp = tempfile.mkdtemp()
>>> cache = Cache(os.path.join(tmp, "responses.sqlite"))
>>> fake = FakeBackend(["Paris"])
>>> llm = LLM(fake, cache=cache)
>>> first, second = llm.complete("Capital of France?"), llm.complete("Capital of France?")
>>> first.cached, second.cached, second.text, len(fake.requests)
(False, True, 'Paris', 1)
>>> cache.stats()
CacheStats(hits=1, misses=1, entries=1)
>>> cache.close()

WHAT THE KEY COVERS. A stored reply is reused only for a request that would produce the
same output: the key is the SHA-256 of the canonical JSON of the backend name, its base
URL, the model, the messages (role and content) or the raw prompt, every sampling
parameter as the backend receives it, the backend extras (``SamplingParams.extra``), the
response format (JSON schema) and the request's *sample index*. The sample index keeps
the ``n`` samples of one call (self-consistency, best-of-n) distinct: sample 0, 1, 2 ...
are stored apart, so a repeated call returns the same *set* of samples instead of one
sample ``n`` times. The timeout is left out (it does not change the output); API keys
and headers are never part of the key nor of what is stored.

WHAT IS STORED. The completion's choices (text, finish reason, log-probabilities), token
usage, model, backend, the parameters as sent, dropped and renamed parameters, and the
raw reply body. A hit comes back with ``Completion.cached = True`` and ``requests = 0``.

SHARING. The file uses SQLite's write-ahead log, so readers never block the writer, with
a busy timeout for concurrent writers; each thread (and each process, also after
``fork``) opens its own connection. Any number of processes may use the same file. A
cache that cannot be read or written (disk full, locked beyond the timeout) degrades to
a miss with a warning; it never fails the call.

Caching stores sampled outputs too (``temperature > 0``): a repeated run is then
reproducible. Call :meth:`Cache.clear` (or delete the file) to sample afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._media import key_form
from ._types import Choice, Completion, TokenLogprob, ToolCall, Usage, tool_fields_dict

if TYPE_CHECKING:
    from ._types import Request
    from .backends._base import Backend

__all__ = ["Cache", "CacheStats", "CacheWarning", "cache_key"]

_SCHEMA_VERSION = 1


class CacheWarning(UserWarning):
    """The response cache could not be read or written; the call went on without it."""


@dataclass(frozen=True)
class CacheStats:
    """Hits and misses counted by this :class:`Cache` object (this process), and the
    number of entries in the file (all processes)."""

    hits: int
    misses: int
    entries: int


def _canonical(value: Any) -> Any:
    """JSON-able, deterministic form of a key part (pydantic models, sets, tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _canonical(dump(mode="json"))
    return repr(value)


def cache_key(backend: Backend, request: Request) -> str:
    """The cache key of a request to a backend (hex SHA-256).

    >>> from promptkit import FakeBackend, Message
    >>> from promptkit._types import Request
    >>> r0 = Request(messages=[Message.user("hi")], params={"temperature": 0.7})
    >>> r1 = Request(messages=[Message.user("hi")], params={"temperature": 0.7}, sample=1)
    >>> cache_key(FakeBackend(), r0) == cache_key(FakeBackend(), r1)
    False
    """
    messages = None if request.messages is None else [_key_message(m) for m in request.messages]
    parts: dict[str, Any] = {
        "v": _SCHEMA_VERSION,
        "backend": backend.name,
        "base_url": getattr(backend, "base_url", None),
        "model": backend.model,
        "messages": messages,
        "prompt": request.prompt,
        # a seed the client drew for an emulated sample is not part of what was asked
        "params": (
            {k: v for k, v in request.params.items() if k != "seed"}
            if request.auto_seed
            else request.params
        ),
        "extra": request.extra,
        "response_format": request.response_format,
        "sample": request.sample,
    }
    if request.tools:  # only then, so that the keys of requests without tools stay as they were
        parts["tools"] = list(request.tools)
        parts["tool_choice"] = request.tool_choice
        parts["parallel_tool_calls"] = request.parallel_tool_calls
    blob = json.dumps(
        _canonical(parts), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()


def _key_message(m: Any) -> list[Any]:
    """A message in the key: ``[role, content]`` (content parts by their bytes' hash, not
    their path), plus its tool fields when it has any."""
    content = m.content if isinstance(m.content, str) else key_form(m.content)
    tool = tool_fields_dict(m)
    return [m.role, content, tool] if tool else [m.role, content]


# --------------------------------------------------------------------------- (de)serialising


def _dump_completion(c: Completion) -> str:
    choices = [
        {
            "text": ch.text,
            "index": ch.index,
            "finish_reason": ch.finish_reason,
            "logprobs": None
            if ch.logprobs is None
            else [[t.token, t.logprob, [list(a) for a in t.top]] for t in ch.logprobs],
            **({"tool_calls": [t.to_dict() for t in ch.tool_calls]} if ch.tool_calls else {}),
        }
        for ch in c.choices
    ]
    data: dict[str, Any] = {
        "choices": choices,
        "model": c.model,
        "backend": c.backend,
        "usage": [c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens],
        "params_sent": _canonical(c.params_sent),
        "dropped": dict(c.dropped),
        "renamed": dict(c.renamed),
    }
    try:
        data["raw"] = json.loads(json.dumps(c.raw, ensure_ascii=False))
    except (TypeError, ValueError):
        data["raw"] = None  # not JSON (a backend's own objects): not kept
    return json.dumps(data, ensure_ascii=False)


def _load_completion(text: str) -> Completion:
    data = json.loads(text)
    choices = [
        Choice(
            ch["text"],
            ch.get("index", i),
            ch.get("finish_reason"),
            None
            if ch.get("logprobs") is None
            else tuple(
                TokenLogprob(tok, float(lp), tuple((a, float(b)) for a, b in top))
                for tok, lp, top in ch["logprobs"]
            ),
            tuple(ToolCall.model_validate(t) for t in ch.get("tool_calls") or ()),
        )
        for i, ch in enumerate(data["choices"])
    ]
    pt, ct, tt = data.get("usage") or (None, None, None)
    return Completion(
        choices=choices,
        model=data.get("model"),
        backend=data.get("backend"),
        usage=Usage(pt, ct, tt),
        params_sent=data.get("params_sent") or {},
        dropped=data.get("dropped") or {},
        renamed=data.get("renamed") or {},
        latency_s=0.0,
        requests=0,
        cached=True,
        raw=data.get("raw"),
    )


# --------------------------------------------------------------------------- the cache


def _setup_retrying(conn: sqlite3.Connection, sql: str, timeout: float) -> Any:
    """Run a setup statement, waiting out "database is locked" for up to ``timeout`` s.

    Switching to the write-ahead log (and creating the table) while another process does
    the same can fail at once with SQLITE_BUSY: SQLite does not call the busy handler for a
    journal-mode change, so ``busy_timeout`` alone does not cover two processes opening a
    new cache file together.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return conn.execute(sql).fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


class Cache:
    """A response cache in one SQLite file; pass it to ``LLM(..., cache=Cache(path))``.

    ``path``'s directory must exist; the file is created on first use. ``timeout`` is how
    long a writer waits for another process's write to finish (seconds). Implements the
    ``ResponseCache`` protocol of :class:`promptkit.LLM` (``get``/``put``).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigurationError(
                f"Cache path {str(self.path)!r} is a directory: give a file path, e.g. "
                f"{str(self.path / 'responses.sqlite')!r}."
            )
        parent = self.path.parent
        if not parent.is_dir():
            raise ConfigurationError(
                f"Cache path {str(self.path)!r}: the directory {str(parent)!r} does not exist. "
                "Create it first (the cache creates only the file)."
            )
        self.timeout = float(timeout)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._hits = 0
        self._misses = 0
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(
                f"Cache file {str(self.path)!r} cannot be opened as an SQLite database ({exc}). "
                "Point the cache at a new file, or delete this one."
            ) from None

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # forked: never reuse the parent's connections
            self._pid = os.getpid()
            self._local = threading.local()
            with self._lock:
                self._connections = []
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = sqlite3.connect(
            str(self.path), timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        mode = _setup_retrying(conn, "PRAGMA journal_mode = WAL", self.timeout)
        if mode is None or str(mode[0]).lower() != "wal":
            warnings.warn(
                f"Cache {str(self.path)!r}: SQLite refused the write-ahead log (journal mode "
                f"{mode[0] if mode else '?'}); concurrent use will be slower.",
                CacheWarning,
                stacklevel=3,
            )
        conn.execute("PRAGMA synchronous = NORMAL")
        _setup_retrying(
            conn,
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, completion TEXT NOT NULL, created REAL NOT NULL)",
            self.timeout,
        )
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this object opened (it reopens them if used again)."""
        with self._lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        with contextlib.suppress(Exception):
            self.close()

    # ------------------------------------------------------------------ the protocol

    def get(self, backend: Backend, request: Request) -> Completion | None:
        """The stored completion for this exact request (``cached=True``), or ``None``."""
        key = cache_key(backend, request)
        try:
            row = (
                self._connect()
                .execute("SELECT completion FROM responses WHERE key = ?", (key,))
                .fetchone()
            )
            found = None if row is None else _load_completion(row[0])
        except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
            self._warn("read", exc)
            found = None
        with self._lock:
            if found is None:
                self._misses += 1
            else:
                self._hits += 1
        return found

    def put(self, backend: Backend, request: Request, completion: Completion) -> None:
        """Store a completion for this exact request (replacing an older one)."""
        if not completion.choices:
            return
        key = cache_key(backend, request)
        try:
            value = _dump_completion(completion)
            self._connect().execute(
                "INSERT OR REPLACE INTO responses (key, completion, created) VALUES (?, ?, ?)",
                (key, value, time.time()),
            )
        except (sqlite3.Error, ValueError, TypeError) as exc:
            self._warn("write", exc)

    def _warn(self, what: str, exc: Exception) -> None:
        warnings.warn(
            f"Cache {str(self.path)!r}: could not {what} ({type(exc).__name__}: {exc}); "
            "the call goes on without the cache.",
            CacheWarning,
            stacklevel=4,
        )

    # ------------------------------------------------------------------ housekeeping

    def stats(self) -> CacheStats:
        """Hits and misses of this object, and the entries in the file."""
        row = self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()
        with self._lock:
            return CacheStats(self._hits, self._misses, int(row[0]) if row else 0)

    def clear(self) -> None:
        """Delete every stored response (for every process using the file)."""
        self._connect().execute("DELETE FROM responses")

    def __len__(self) -> int:
        return self.stats().entries
