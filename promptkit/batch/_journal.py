"""The durable JSONL journal of a batch run: input and run hashes, the line format, and the
append-only results file (one writer, torn last line cut, resumable). The format and the
flush policy are described in :mod:`promptkit.batch`."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, PromptkitError
from .._params import SamplingParams
from .._types import Choice, Completion, Usage
from ._results import BatchItem

if TYPE_CHECKING:
    from .._client import LLM
    from ..prompts import PromptBase

_FORMAT_VERSION = 1


# --------------------------------------------------------------------------- hashing


def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def _sha(value: Any) -> str:
    blob = json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_json_default
    ).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()[:32]


def _input_sha(value: Any) -> str:
    if isinstance(value, Mapping):
        return _sha({str(k): v for k, v in value.items()})
    return _sha(repr(value))


def _params_dump(params: SamplingParams | None) -> Any:
    return None if params is None else params.model_dump(mode="json", exclude_unset=True)


def _run_sha(prompt: PromptBase, llm: LLM, params: SamplingParams | None) -> str:
    try:
        prompt_dump: Any = prompt.model_dump(mode="json")
    except Exception:  # a prompt with fields pydantic cannot dump
        prompt_dump = repr(prompt)
    return _sha(
        {
            "prompt": [type(prompt).__name__, prompt_dump],
            "params": _params_dump(params),
            "llm_params": _params_dump(llm.params),
            "backend": llm.backend.name,
            "model": llm.backend.model,
        }
    )


# --------------------------------------------------------------------------- the JSONL file


def _dumps_line(record: Mapping[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep the line valid UTF-8
        data = json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return data + b"\n"


def _record_ok(index: int, completion: Completion, input_sha: str, run_sha: str) -> dict[str, Any]:
    u = completion.usage
    return {
        "index": index,
        "status": "ok",
        "text": completion.text,
        "choices": [{"text": c.text, "finish_reason": c.finish_reason} for c in completion.choices],
        "usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
            **({"cached_tokens": u.cached_tokens} if u.cached_tokens is not None else {}),
        },
        "model": completion.model,
        "backend": completion.backend,
        "cached": completion.cached,
        "cost": completion.cost,
        "input_sha": input_sha,
        "run_sha": run_sha,
        "v": _FORMAT_VERSION,
    }


def _record_error(
    index: int, error: PromptkitError, input_sha: str, run_sha: str
) -> dict[str, Any]:
    err: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    status = getattr(error, "status", None)
    if isinstance(status, int):
        err["status"] = status
    return {
        "index": index,
        "status": "error",
        "error": err,
        "input_sha": input_sha,
        "run_sha": run_sha,
        "v": _FORMAT_VERSION,
    }


def _item_from_record(rec: Mapping[str, Any], value: Mapping[str, Any] | None) -> BatchItem:
    index = int(rec["index"])
    if rec.get("status") == "ok":
        raw_choices = rec.get("choices") or [
            {"text": rec.get("text", ""), "finish_reason": rec.get("finish_reason")}
        ]
        usage = rec.get("usage") or {}
        completion = Completion(
            choices=[
                Choice(str(c.get("text", "")), i, c.get("finish_reason"))
                for i, c in enumerate(raw_choices)
            ],
            model=rec.get("model"),
            backend=rec.get("backend"),
            usage=Usage(
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
                usage.get("total_tokens"),
                usage.get("cached_tokens"),
            ),
            cached=bool(rec.get("cached", False)),
            requests=0,
            cost=rec["cost"] if isinstance(rec.get("cost"), (int, float)) else None,
        )
        return BatchItem(index, value, completion, resumed=True)
    err = rec.get("error") or {}
    return BatchItem(
        index,
        value,
        None,
        None,
        str(err.get("type") or "Error"),
        str(err.get("message") or ""),
        resumed=True,
    )


def _valid_record(rec: Any) -> bool:
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("index"), int)
        and rec["index"] >= 0
        and rec.get("status") in ("ok", "error")
        and isinstance(rec.get("input_sha"), str)
        and isinstance(rec.get("run_sha"), str)
    )


def _parse_records(data: bytes, path: Path) -> tuple[dict[int, dict[str, Any]], int, int]:
    """(records by index, length of the complete lines, duplicate lines)."""
    end = data.rfind(b"\n") + 1  # bytes after the last newline are a torn line
    records: dict[int, dict[str, Any]] = {}
    duplicates = 0
    for lineno, raw in enumerate(data[:end].split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            rec = None
        if not _valid_record(rec):
            raise ConfigurationError(
                f"Results file {str(path)!r}, line {lineno}, is not a promptkit batch result "
                "(it does not parse, or lacks index/status/hashes). Give a new out= path, or "
                "remove that line to resume."
            )
        assert isinstance(rec, dict)
        if rec["index"] in records:
            duplicates += 1
            continue
        records[rec["index"]] = rec
    return records, end, duplicates


def _read_records(path: Path) -> dict[int, dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"Cannot read results file {str(path)!r}: {exc}.") from None
    return _parse_records(data, path)[0]


class _ResultsFile:
    """The append-only JSONL file of a durable run (one writer at a time, enforced)."""

    def __init__(self, path: Path, fsync_interval: float) -> None:
        self.path = path
        self.fsync_interval = fsync_interval
        self.records: dict[int, dict[str, Any]] = {}
        self.written: set[int] = set()
        self._fd = -1
        self._last_sync = time.monotonic()
        self._dirty = False

    def open(self) -> None:
        path = self.path
        if path.is_dir():
            raise ConfigurationError(
                f"out={str(path)!r} is a directory: give a file path, e.g. "
                f"{str(path / 'results.jsonl')!r}."
            )
        if not path.parent.is_dir():
            raise ConfigurationError(
                f"out={str(path)!r}: the directory {str(path.parent)!r} does not exist. "
                "Create it first (the runner creates only the file)."
            )
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigurationError(f"Cannot open out={str(path)!r}: {exc}.") from None
        try:
            _lock(fd, path)
            data = _read_fd(fd)
            self.records, end, duplicates = _parse_records(data, path)
            if end < len(data):  # cut the torn last line before appending anything
                os.ftruncate(fd, end)
                os.fsync(fd)
            if duplicates:
                warnings.warn(
                    f"{str(path)!r} holds {duplicates} duplicate line(s) (not written by this "
                    "runner); the first line of each input is used.",
                    stacklevel=4,
                )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def drop_failed(self) -> int:
        """Rewrite the file without its failed lines (atomically); how many were dropped."""
        failed = [i for i, r in self.records.items() if r["status"] != "ok"]
        if not failed:
            return 0
        keep = [r for r in self.records.values() if r["status"] == "ok"]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            for rec in keep:
                f.write(_dumps_line(rec))
            f.flush()
            os.fsync(f.fileno())
        # the lock lives on the old inode: take it on the new one before it replaces it
        new_fd = os.open(tmp, os.O_RDWR | os.O_APPEND)
        try:
            _lock(new_fd, self.path)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            os.close(new_fd)
            raise
        os.close(self._fd)
        self._fd = new_fd
        for i in failed:
            del self.records[i]
        return len(failed)

    def append(self, record: Mapping[str, Any]) -> None:
        index = int(record["index"])
        if index in self.records or index in self.written:  # never twice
            raise AssertionError(f"index {index} written twice")  # pragma: no cover
        data = _dumps_line(record)
        view = memoryview(data)
        while view:  # one write for a regular file; loop only on a short write
            n = os.write(self._fd, view)
            view = view[n:]
        self.written.add(index)
        self._dirty = True
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval:
            os.fsync(self._fd)
            self._last_sync = now
            self._dirty = False

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            if self._dirty:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)  # also releases the lock
            self._fd = -1


def _read_fd(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ConfigurationError(
            f"out={str(path)!r} is being written by another running batch. Wait for it to "
            "finish (or stop it), or give this run another out= path."
        ) from None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
