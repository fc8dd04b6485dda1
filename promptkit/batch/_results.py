"""Batch results: one :class:`BatchItem` per input, a :class:`BatchSummary` of counts, and
the :class:`BatchResult` sequence that holds them (in input order)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from .._errors import BackendError, ConfigurationError, PromptkitError
from .._types import Completion, Usage

__all__ = ["BatchItem", "BatchResult", "BatchSummary", "Tally", "summarize"]


@dataclass(frozen=True)
class BatchItem:
    """The result for one input.

    Exactly one of ``completion`` and ``error_type`` is set. ``error`` is the exception
    itself for failures of this run; for failures read back from a results file only
    ``error_type`` (the class name) and ``error_message`` remain. ``resumed`` marks results
    read from the ``out`` file instead of computed by this run.
    """

    index: int
    input: Mapping[str, Any] | None
    completion: Completion | None = None
    error: PromptkitError | None = field(default=None, repr=False)
    error_type: str | None = None
    error_message: str | None = None
    resumed: bool = False

    @property
    def ok(self) -> bool:
        """True when the input has a completion."""
        return self.completion is not None

    @property
    def text(self) -> str | None:
        """The completion's text, ``None`` for a failure."""
        return None if self.completion is None else self.completion.text


@dataclass(frozen=True)
class BatchSummary:
    """Counts for a batch.

    ``cache_hits``/``cache_misses`` count this run's completions served by / not found in
    the LLM's response cache (both 0 without a cache); ``resumed`` counts results read
    from the ``out`` file; ``usage`` sums the token usage of every completion (resumed ones
    included); ``cost`` sums their ``Completion.cost`` in dollars (``None`` when any has no
    price: see :class:`~promptkit.Price`); ``rate_limited`` counts 429s absorbed by
    re-queueing; ``errors`` counts failures by error type.
    """

    total: int
    ok: int
    failed: int
    cache_hits: int = 0
    cache_misses: int = 0
    resumed: int = 0
    rate_limited: int = 0
    usage: Usage = field(default_factory=Usage)
    wall_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    cost: float | None = 0.0

    def __str__(self) -> str:
        out = f"{self.total} inputs: {self.ok} ok, {self.failed} failed"
        if self.errors:
            out += " (" + ", ".join(f"{n} {t}" for t, n in sorted(self.errors.items())) + ")"
        if self.cache_hits or self.cache_misses:
            out += f"; cache {self.cache_hits} hits / {self.cache_misses} misses"
        if self.resumed:
            out += f"; {self.resumed} resumed"
        if self.rate_limited:
            out += f"; {self.rate_limited} rate-limited retries"
        if self.usage.total_tokens is not None:
            out += f"; {self.usage.total_tokens:,} tokens"
        if self.cost is not None and self.ok:
            out += f"; ${self.cost:.6g}"
        return out + f"; {self.wall_s:.2f} s"


class BatchResult(Sequence[BatchItem]):
    """Per-input results in input order, and a :class:`BatchSummary`.

    Iterate over it (or index it) for :class:`BatchItem` objects; ``texts`` gives the
    texts (``None`` for failures), ``failed`` the failed items.
    """

    def __init__(self, items: list[BatchItem], summary: BatchSummary) -> None:
        self.items = items
        self.summary = summary

    def __repr__(self) -> str:
        return f"<BatchResult {self.summary}>"

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[BatchItem]:
        return iter(self.items)

    @overload
    def __getitem__(self, index: int) -> BatchItem: ...

    @overload
    def __getitem__(self, index: slice) -> list[BatchItem]: ...

    def __getitem__(self, index: int | slice) -> BatchItem | list[BatchItem]:
        return self.items[index]

    @property
    def texts(self) -> list[str | None]:
        """Each input's text, ``None`` where it failed."""
        return [item.text for item in self.items]

    @property
    def completions(self) -> list[Completion | None]:
        """Each input's completion, ``None`` where it failed."""
        return [item.completion for item in self.items]

    @property
    def failed(self) -> list[BatchItem]:
        """The items that failed."""
        return [item for item in self.items if not item.ok]

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], inputs: Sequence[Mapping[str, Any]] | None = None
    ) -> BatchResult:
        """Read a results file written with ``out=`` (torn last line ignored), in input
        order. With ``inputs`` the items carry them, and the file's input hashes must
        match them."""
        from ._journal import _input_sha, _item_from_record, _read_records

        records = _read_records(Path(path))
        n = len(inputs) if inputs is not None else (max(records) + 1 if records else 0)
        items = []
        for i in range(n):
            value = inputs[i] if inputs is not None else None
            rec = records.get(i)
            if rec is None:
                items.append(_missing(i, value, f"no result for input {i} in {str(path)!r}"))
                continue
            if value is not None and rec.get("input_sha") != _input_sha(value):
                raise ConfigurationError(
                    f"{str(path)!r} line for input {i} was written for a different input "
                    "(its input hash differs)."
                )
            items.append(_item_from_record(rec, value))
        return cls(items, summarize(items))


def _missing(index: int, value: Mapping[str, Any] | None, message: str) -> BatchItem:
    err = BackendError(message)
    return BatchItem(index, value, None, err, type(err).__name__, message)


class Tally:
    """Running counts for a :class:`BatchSummary` (so results need not be kept)."""

    def __init__(self, *, cache: bool) -> None:
        self.cache = cache
        self.total = self.ok = self.failed = self.hits = self.misses = self.resumed = 0
        self.usage = Usage()
        self.errors: dict[str, int] = {}
        self.cost: float | None = 0.0

    def add(self, item: BatchItem) -> None:
        self.total += 1
        if item.resumed:
            self.resumed += 1
        if item.completion is not None:
            self.ok += 1
            self.usage = self.usage + item.completion.usage
            cost = item.completion.cost
            self.cost = None if cost is None or self.cost is None else self.cost + cost
            if not item.resumed and self.cache:
                if item.completion.cached:
                    self.hits += 1
                else:
                    self.misses += 1
        else:
            self.failed += 1
            name = item.error_type or "Error"
            self.errors[name] = self.errors.get(name, 0) + 1

    def summary(self, *, wall_s: float = 0.0, rate_limited: int = 0) -> BatchSummary:
        return BatchSummary(
            total=self.total,
            ok=self.ok,
            failed=self.failed,
            cache_hits=self.hits,
            cache_misses=self.misses,
            resumed=self.resumed,
            rate_limited=rate_limited,
            usage=self.usage,
            wall_s=wall_s,
            errors=dict(sorted(self.errors.items())),
            cost=None if self.cost is None else round(self.cost, 12),
        )


def summarize(items: Iterable[BatchItem]) -> BatchSummary:
    tally = Tally(cache=False)
    for item in items:
        tally.add(item)
    return tally.summary()
