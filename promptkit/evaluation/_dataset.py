"""Labelled datasets for evaluation: JSONL or CSV files, rows, and a held-out split.

A dataset is a sequence of :class:`Record`: an ``id``, the row's ``fields`` (every column
but the expected answer) and the ``expected`` answer.

>>> data = Dataset.from_rows(
...     [{"question": f"{i} + 1?", "answer": i + 1} for i in range(10)], expected="answer"
... )
>>> train, test = data.split(holdout=0.3, seed=1)
>>> len(train), len(test), sorted(set(train.ids) & set(test.ids))
(7, 3, [])
>>> train.examples(1, input="question")[0]
Example(input='0 + 1?', output='1', rationale=None)
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, overload

from .._errors import MediaError
from .._media import (
    PART_TYPES,
    Audio,
    File,
    Image,
    media_from_value,
    paths_from,
)
from ..prompts import Example
from ._errors import DatasetError

__all__ = ["Dataset", "Record", "Split", "load_dataset", "split"]

_PARTS = tuple(PART_TYPES.values())

#: What a ``media=`` column may hold, and how a cell (a path, URL or ``data:`` URL) is read.
MEDIA_KINDS: dict[str, Callable[[str], Any]] = {"image": Image, "audio": Audio, "file": File}


@dataclass(frozen=True)
class Record:
    """One labelled item. ``fields`` holds every column but the expected one (the id column
    included); ``source`` says where it came from (``"data.jsonl:3"``, ``"row 3"``)."""

    id: str
    fields: Mapping[str, Any]
    expected: Any
    source: str = field(default="", compare=False)


class Split(NamedTuple):
    """A dataset cut in two: ``train`` (the pool for few-shot examples) and ``test`` (the
    items that are scored). No record is in both."""

    train: Dataset
    test: Dataset


class Dataset(Sequence[Record]):
    """Labelled records, in order; slicing gives a Dataset.

    Build one with :meth:`load` (a ``.jsonl`` or ``.csv`` file), :meth:`from_rows`
    (dicts), or from :class:`Record` objects. Ids must be unique.
    """

    def __init__(self, records: Iterable[Record], *, name: str = "dataset") -> None:
        self.records: tuple[Record, ...] = tuple(records)
        self.name = name
        seen: dict[str, str] = {}
        for rec in self.records:
            if rec.id in seen:
                raise DatasetError(
                    f"id {rec.id!r} is used twice ({seen[rec.id]} and {rec.source}): ids must "
                    "be unique, or leave the id column out to number the rows."
                )
            seen[rec.id] = rec.source or rec.id

    # ------------------------------------------------------------------ building

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        *,
        expected: str = "expected",
        id: str = "id",
        name: str = "dataset",
        media: Mapping[str, str] | None = None,
    ) -> Dataset:
        """Records from dicts: ``expected`` names the answer's key, ``id`` the key holding
        each row's id (rows without it are numbered from 1), ``media`` the keys whose text
        is an image, audio or file (as :meth:`load`; relative paths from the current
        directory).

        >>> Dataset.from_rows([{"q": "2+2?", "a": 4}], expected="a")[0]
        Record(id='1', fields={'q': '2+2?'}, expected=4, source='row 1')
        """
        kinds = _media_kinds(media, expected, id)
        out = []
        for i, row in enumerate(rows, start=1):
            if not isinstance(row, Mapping):
                raise DatasetError(f"row {i} is a {type(row).__name__}, not a mapping of fields.")
            out.append(
                _record(row, expected, id, str(i), f"row {i}", path=None, line=None, media=kinds)
            )
        return cls(out, name=name)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        expected: str = "expected",
        id: str = "id",
        media: Mapping[str, str] | None = None,
    ) -> Dataset:
        """Read a ``.jsonl`` (one JSON object per line; blank lines skipped) or ``.csv``
        (a header row, then one record per row; values are strings) file. Rows without an
        ``id`` are numbered by their line. A bad row raises :class:`DatasetError` naming
        the file, the line and the field.

        Media: a JSONL field may hold a part as an object (``{"type": "image", "path":
        "receipts/1.png"}``) or a list of them. ``media={"photo": "image"}`` reads the
        ``photo`` column's text (a path, an ``http(s)`` URL or a ``data:`` URL) as an image
        (``"audio"`` and ``"file"`` likewise): the way for a CSV file to carry media. A
        relative path is taken from the dataset file's folder; an empty cell is an error.
        """
        p = Path(path)
        suffix = p.suffix.lower()
        kinds = _media_kinds(media, expected, id)
        if suffix in (".jsonl", ".ndjson"):
            records = _read_jsonl(p, expected, id, kinds)
        elif suffix == ".csv":
            records = _read_csv(p, expected, id, kinds)
        else:
            raise DatasetError(
                f"unknown dataset file type {suffix or '(none)'!r}: use .jsonl or .csv.",
                path=str(p),
            )
        if not records:
            raise DatasetError("the dataset holds no records.", path=str(p))
        return cls(records, name=p.name)

    # ------------------------------------------------------------------ sequence

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> Dataset: ...

    def __getitem__(self, index: int | slice) -> Record | Dataset:
        if isinstance(index, slice):
            return Dataset(self.records[index], name=self.name)
        return self.records[index]

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r}: {len(self)} records>"

    @property
    def ids(self) -> list[str]:
        """Every record's id, in order."""
        return [r.id for r in self.records]

    # ------------------------------------------------------------------ splitting

    def split(self, holdout: float = 0.5, *, seed: int = 0) -> Split:
        """See :func:`split`."""
        return split(self, holdout=holdout, seed=seed)

    def examples(
        self,
        n: int | None = None,
        *,
        input: str | Mapping[str, str] = "input",
        rationale: str | None = None,
    ) -> list[Example]:
        """The first ``n`` records (all by default) as few-shot :class:`~promptkit.Example`
        objects: ``input`` names the field that becomes the example's input (or maps
        template variables to fields, for prompts with several variables), the expected
        answer becomes its output, and ``rationale`` names a field of worked reasoning
        (for :class:`~promptkit.ChainOfThought`). Take them from the *train* part of a
        :func:`split`, so that they are never scored.

        >>> data = Dataset.from_rows([{"q": "1+1?", "a": 2, "why": "1 + 1 = 2."}], expected="a")
        >>> data.examples(input="q", rationale="why")
        [Example(input='1+1?', output='2', rationale='1 + 1 = 2.')]
        """
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise DatasetError(f"examples(n={n!r}): expected a whole number >= 0 or None.")
        chosen = self.records if n is None else self.records[:n]
        if n is not None and n > len(self.records):
            raise DatasetError(
                f"examples(n={n}): the dataset has only {len(self.records)} records."
            )
        out = []
        for rec in chosen:
            value: str | dict[str, Any]
            if isinstance(input, str):
                raw = _field(rec, input)
                if isinstance(raw, _PARTS) or (
                    isinstance(raw, list) and raw and isinstance(raw[0], _PARTS)
                ):
                    raise DatasetError(
                        f"examples(input={input!r}): the field holds an image, audio or file; "
                        f"name the template variable it fills: input={{'<variable>': {input!r}}}.",
                        field=input,
                    )
                value = str(raw)
            else:
                value = {var: _field(rec, col) for var, col in input.items()}
            why = None if rationale is None else str(_field(rec, rationale))
            out.append(Example(input=value, output=_as_text(rec.expected), rationale=why))
        return out


def _field(rec: Record, name: str) -> Any:
    if name not in rec.fields:
        have = ", ".join(repr(k) for k in rec.fields) or "none"
        raise DatasetError(
            f"record {rec.id!r} ({rec.source}) has no field {name!r}; it has {have}.", field=name
        )
    return rec.fields[name]


def _as_text(value: Any) -> str:
    if isinstance(value, list) and value:
        value = value[0]  # several acceptable answers: show the first
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def load_dataset(
    path: str | os.PathLike[str],
    *,
    expected: str = "expected",
    id: str = "id",
    media: Mapping[str, str] | None = None,
) -> Dataset:
    """Read a labelled ``.jsonl`` or ``.csv`` file (see :meth:`Dataset.load`; ``media=``
    names the columns that hold images, audio or files).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "data.jsonl")
    >>> _ = open(path, "w").write('{"q": "2+2?", "a": 4}\\n{"q": "3+3?"}\\n')
    >>> try:
    ...     load_dataset(path, expected="a")
    ... except DatasetError as exc:
    ...     print(exc.line, exc.field)
    2 a
    """
    return Dataset.load(path, expected=expected, id=id, media=media)


def split(dataset: Dataset, holdout: float = 0.5, *, seed: int = 0) -> Split:
    """Cut ``dataset`` into ``(train, test)``: ``holdout`` is the test part's share (a
    fraction between 0 and 1) or size (a whole number). Which records go where depends only
    on ``seed`` and the dataset's order (Python's ``random.Random(seed)`` shuffles the
    positions), so the same call always gives the same split; each part keeps the dataset's
    order. Draw few-shot examples from ``train`` and score on ``test``:
    :func:`promptkit.evaluate` refuses a variant whose examples are scored items.

    >>> data = Dataset.from_rows([{"x": i, "expected": i} for i in range(6)])
    >>> [s.ids for s in split(data, holdout=2, seed=0)]
    [['1', '2', '4', '6'], ['3', '5']]
    """
    n = len(dataset)
    if n < 2:
        raise DatasetError(f"cannot split {n} record(s): a split needs at least 2.")
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)):
        raise DatasetError(f"holdout={holdout!r}: expected a fraction or a number of records.")
    if isinstance(holdout, int):
        if not 0 < holdout < n:
            raise DatasetError(f"holdout={holdout}: expected 1 to {n - 1} records (of {n}).")
        n_test = holdout
    else:
        if not 0.0 < holdout < 1.0:
            raise DatasetError(f"holdout={holdout}: expected a fraction between 0 and 1.")
        n_test = min(max(round(n * holdout), 1), n - 1)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    test_at = set(order[:n_test])
    records = dataset.records
    train = Dataset((r for i, r in enumerate(records) if i not in test_at), name=dataset.name)
    test = Dataset((r for i, r in enumerate(records) if i in test_at), name=dataset.name)
    return Split(train, test)


def as_dataset(dataset: Any, expected: str = "expected") -> Dataset | None:
    """``dataset`` as a :class:`Dataset`: a Dataset itself, a ``.jsonl``/``.csv`` path, or
    an iterable of :class:`Record` objects or of dicts (``expected`` names the answer
    column); ``None`` for anything else, so that the caller raises its own error.

    >>> as_dataset([{"q": "2+2?", "a": 4}], expected="a").ids, as_dataset(4)
    (['1'], None)
    """
    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, (str, os.PathLike)):
        return Dataset.load(dataset, expected=expected)
    if isinstance(dataset, Iterable) and not isinstance(dataset, (bytes, Mapping)):
        rows = list(dataset)
        if rows and all(isinstance(r, Record) for r in rows):
            return Dataset(rows)
        return Dataset.from_rows(rows, expected=expected)
    return None


# --------------------------------------------------------------------------- reading


def _record(
    row: Mapping[str, Any],
    expected: str,
    id_field: str,
    default_id: str,
    source: str,
    *,
    path: str | None,
    line: int | None,
    media: Mapping[str, str] | None = None,
) -> Record:
    prefix = "" if line is not None or path is not None else f"{source}: "
    if expected not in row:
        have = ", ".join(repr(str(k)) for k in row) or "no fields"
        raise DatasetError(
            f"{prefix}field {expected!r} (the expected answer) is missing; the row has {have}.",
            field=expected,
            path=path,
            line=line,
        )
    value = row[expected]
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DatasetError(
            f"{prefix}field {expected!r} (the expected answer) is empty.",
            field=expected,
            path=path,
            line=line,
        )
    ident = row.get(id_field)
    if ident is None or (isinstance(ident, str) and not ident.strip()):
        ident = default_id
    elif not isinstance(ident, (str, int)) or isinstance(ident, bool):
        raise DatasetError(
            f"{prefix}field {id_field!r} (the id) must be a string or a whole number, "
            f"not {type(ident).__name__}.",
            field=id_field,
            path=path,
            line=line,
        )
    fields = {str(k): v for k, v in row.items() if k != expected}
    for k, kind in (media or {}).items():
        try:
            fields[k] = _media_cell(fields.get(k), kind, path)
        except (MediaError, ValueError) as exc:
            raise DatasetError(
                f"{prefix}field {k!r}: {exc}", field=k, path=path, line=line
            ) from None
    for k, v in fields.items():
        if k in (media or {}):
            continue
        if isinstance(v, dict | list) and v:
            try:
                fields[k] = _media_column(v, Path(path).parent if path else None, str(path))
            except MediaError as exc:
                raise DatasetError(
                    f"{prefix}field {k!r}: {exc}", field=k, path=path, line=line
                ) from None
    return Record(str(ident), fields, value, source)


def _media_kinds(media: Mapping[str, str] | None, expected: str, id_field: str) -> dict[str, str]:
    """``media=`` checked: column -> ``"image"``/``"audio"``/``"file"``."""
    if media is not None and not isinstance(media, Mapping):
        raise DatasetError(
            f'media={media!r}: expected a mapping of column to kind, such as {{"photo": "image"}}.'
        )
    kinds = dict(media or {})
    for column, kind in kinds.items():
        if kind not in MEDIA_KINDS:
            raise DatasetError(
                f"media={{{column!r}: {kind!r}}}: a media column holds one of "
                f"{sorted(MEDIA_KINDS)}.",
                field=column,
            )
        if column in (expected, id_field):
            what = "the expected answer" if column == expected else "the id"
            raise DatasetError(
                f"media={{{column!r}: ...}}: {column!r} is {what}, not an input column.",
                field=column,
            )
    return kinds


def _media_cell(value: Any, kind: str, path: str | None) -> Any:
    """A ``media=`` column's value as a part: text read by :data:`MEDIA_KINDS` (a relative
    path taken from the dataset file's folder), a part or part object as it is."""
    if value is None:
        raise ValueError(f"the column is missing; media= names it as {kind!r}.")
    want = PART_TYPES[kind]
    if isinstance(value, dict | list):
        value = _media_column(value, Path(path).parent if path else None, str(path))
        parts = value if isinstance(value, list) else [value]
        if not parts or not all(isinstance(p, want) for p in parts):
            raise ValueError(
                f"expected {_a(kind)} part object "
                f'({{"type": "{kind}", "path": ...}}, or a list of them) or its path or URL '
                f"as text; got {_brief_value(value)}."
            )
        return value
    if isinstance(value, _PARTS):
        if not isinstance(value, want):
            raise ValueError(f"expected {_a(kind)}, got {type(value).__name__}.")
        return value
    if not isinstance(value, str) or not value.strip():
        got = (
            "an empty cell" if isinstance(value, str) else f"a value of type {type(value).__name__}"
        )
        raise ValueError(
            f"expected a path, URL or data: URL of the {kind}, got {got}. Fill the cell, or "
            "leave the column out of media= if it is not meant to hold media."
        )
    make = MEDIA_KINDS[kind]
    if path is None:
        return make(value.strip())
    with paths_from(Path(path).parent, str(path)):
        return make(value.strip())


def _a(kind: str) -> str:
    """``kind`` with its article: "an image", "an audio", "a file"."""
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _brief_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _media_column(value: Any, base: Path | None, where: str) -> Any:
    """An image/audio/file column (``{"type": "image", "path": "receipts/1.png"}``, or a
    list of them) as parts; a relative path is taken from the dataset file's folder."""
    if base is None:
        return media_from_value(value)
    with paths_from(base, where):
        return media_from_value(value)


def _file_record(
    row: Mapping[str, Any],
    expected: str,
    id_field: str,
    p: Path,
    line_no: int,
    media: Mapping[str, str] | None = None,
) -> Record:
    """The record of line ``line_no`` of the file ``p`` (its id defaults to the line)."""
    return _record(
        row,
        expected,
        id_field,
        str(line_no),
        f"{p.name}:{line_no}",
        path=str(p),
        line=line_no,
        media=media,
    )


def _read_jsonl(
    p: Path, expected: str, id_field: str, media: Mapping[str, str] | None = None
) -> list[Record]:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"cannot read the file: {exc.strerror}.", path=str(p)) from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"is not UTF-8 text ({exc.reason}).", path=str(p)) from None
    out = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"invalid JSON at column {exc.colno}: {exc.msg}.", path=str(p), line=line_no
            ) from None
        if not isinstance(row, dict):
            raise DatasetError(
                f"expected a JSON object, got {type(row).__name__}.", path=str(p), line=line_no
            )
        out.append(_file_record(row, expected, id_field, p, line_no, media))
    return out


def _read_csv(
    p: Path, expected: str, id_field: str, media: Mapping[str, str] | None = None
) -> list[Record]:
    try:
        fh = p.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DatasetError(f"cannot read the file: {exc.strerror}.", path=str(p)) from None
    out = []
    with fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DatasetError("the file is empty: expected a header row.", path=str(p))
            names = [h.strip() for h in header]
            missing = sorted(set(media or {}) - set(names))
            if missing:
                raise DatasetError(
                    f"media= names column(s) {missing} that the header row does not have "
                    f"(it has {names}).",
                    path=str(p),
                    line=1,
                )
            dupes = sorted({h for h in names if names.count(h) > 1})
            if dupes or not all(names):
                what = f"repeats {dupes}" if dupes else "has an empty column name"
                raise DatasetError(f"the header row {what}.", path=str(p), line=1)
            for values in reader:
                line_no = reader.line_num
                if not values or not any(v.strip() for v in values):
                    continue
                if len(values) != len(names):
                    raise DatasetError(
                        f"the row has {len(values)} fields but the header has {len(names)}.",
                        path=str(p),
                        line=line_no,
                    )
                row = dict(zip(names, values, strict=True))
                out.append(_file_record(row, expected, id_field, p, line_no, media))
        except csv.Error as exc:
            raise DatasetError(
                f"malformed CSV: {exc}.", path=str(p), line=reader.line_num
            ) from None
        except UnicodeDecodeError as exc:
            raise DatasetError(f"is not UTF-8 text ({exc.reason}).", path=str(p)) from None
    return out
