"""Rows read from a file in chunks of bounded size: JSON lines, CSV, Parquet, Avro.

A row is either event-shaped (``{"event_id", "features": {...}}``, as on the events
topic, with ``label`` beside it for examples) or flat (every column but ``event_id``, and
the label column when one is read, is a feature). A row that cannot be used (not JSON, a
feature of another type than a number, a boolean, a string or null, no features, an empty
``event_id``, no label where one is needed) becomes a :class:`Reject` naming its row
number and the reason; the others are a chunk's rows, in input order.

Row numbers start at 1: the line number in a JSON-lines file (blank lines are skipped), the
data row after the header in a CSV file, the record's position in a Parquet or Avro file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import orjson

from streamserve.files.exceptions import FileError
from streamserve.files.formats import Format, need_pyarrow
from streamserve.records import FeatureFrame, Features
from streamserve.serde.validate import (
    MAX_EVENT_ID_LENGTH,
    event_id_problem,
    features_problem,
    label_problem,
)

EVENT_ID = "event_id"
MAX_RECORD_TEXT = 2000  # characters of a rejected row kept in the rejects file


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that was not used: its row number, why, and its text (cut short)."""

    row: int
    reason: str
    record: str


@dataclass
class Chunk:
    """The usable rows of a stretch of the file, in input order, and its rejects.

    ``features`` are the rows as feature dicts; a columnar reader gives ``frame`` (the
    same rows as columns) and builds ``features`` only when asked (:meth:`rows_dicts`).
    ``labels`` are the raw label values (when a label column is read).
    """

    rows: list[int]
    ids: list[str | None]
    features: list[Features] | None = None
    frame: FeatureFrame | None = None
    labels: list[Any] | None = None
    rejects: list[Reject] = field(default_factory=list)
    progress: int = 0
    make_dicts: Callable[[], list[Features]] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def rows_dicts(self) -> list[Features]:
        if self.features is None:
            assert self.make_dicts is not None  # a columnar chunk can make them
            self.features = self.make_dicts()
        return self.features


class RowSource(Protocol):
    """A file's rows, chunk by chunk; ``total`` and ``unit`` measure progress."""

    total: int | None
    unit: str

    def chunks(self) -> Iterator[Chunk]: ...


class _Builder:
    """Collects checked rows into chunks. The features' types are checked per chunk: when
    every row holds the same plain numbers (the common case) the chunk's frame is built
    at once and no row needs checking one by one."""

    def __init__(self, label_column: str | None) -> None:
        self._label = label_column
        self.reset()

    def reset(self) -> None:
        self.rows: list[int] = []
        self.ids: list[str | None] = []
        self.features: list[Features] = []
        self.labels: list[Any] = []
        self.rejects: list[Reject] = []
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def reject(self, row: int, reason: str, record: Any) -> None:
        self.size += 1
        text = record if isinstance(record, str) else _text(record)
        self.rejects.append(Reject(row, reason, text[:MAX_RECORD_TEXT]))

    def add(self, row: int, obj: Any) -> None:
        """Take one decoded row (a dict, which this may change), or reject it."""
        if type(obj) is not dict:
            self.reject(row, f"a row must be an object, got {type(obj).__name__}", obj)
            return
        label_column = self._label
        features = obj.get("features")
        label: Any = None
        if type(features) is dict:  # event-shaped
            event_id = obj.get(EVENT_ID)
            if label_column is not None:
                label = obj.get(label_column)
        else:  # flat: every other column is a feature
            event_id = obj.pop(EVENT_ID, None)
            if label_column is not None:
                label = obj.pop(label_column, None)
            features = obj
        if event_id is not None and not (
            type(event_id) is str and 0 < len(event_id) <= MAX_EVENT_ID_LENGTH
        ):
            self.reject(row, event_id_problem(event_id) or "bad event_id", _whole(obj, event_id))
            return
        if not features:
            self.reject(row, "the row has no features", _whole(obj, event_id))
            return
        if label_column is not None:
            problem = (
                f"the row has no label (column {label_column!r})"
                if label is None
                else label_problem(label, label_column)
            )
            if problem:
                self.reject(row, problem, _whole(obj, event_id, label_column, label))
                return
            self.labels.append(label)
        self.size += 1
        self.rows.append(row)
        self.ids.append(event_id)
        self.features.append(features)

    def chunk(self, progress: int) -> Chunk:
        frame = FeatureFrame.of_numeric_rows(self.features)
        if frame is None and self.features:
            self._check_types()
        out = Chunk(
            self.rows,
            self.ids,
            features=self.features,
            frame=frame,
            labels=self.labels if self._label is not None else None,
            rejects=sorted(self.rejects, key=lambda r: r.row),
            progress=progress,
        )
        self.reset()
        return out

    def _check_types(self) -> None:
        """Reject the rows holding a feature of another type than a number, a boolean, a
        string or null."""
        bad = {}
        for i, features in enumerate(self.features):
            problem = features_problem(features)
            if problem:
                bad[i] = problem
        if not bad:
            return
        for i, problem in bad.items():
            record = _whole(self.features[i], self.ids[i])
            self.rejects.append(Reject(self.rows[i], problem, _text(record)[:MAX_RECORD_TEXT]))
        keep = [i for i in range(len(self.rows)) if i not in bad]
        self.rows = [self.rows[i] for i in keep]
        self.ids = [self.ids[i] for i in keep]
        self.features = [self.features[i] for i in keep]
        if self._label is not None:
            self.labels = [self.labels[i] for i in keep]


def _whole(
    obj: dict[str, Any], event_id: Any, label_column: str | None = None, label: Any = None
) -> dict[str, Any]:
    """A flat row as read (its id and label put back), for the rejects file."""
    out = {EVENT_ID: event_id, **obj} if event_id is not None and EVENT_ID not in obj else obj
    if label_column is not None and label is not None and label_column not in out:
        out = {**out, label_column: label}
    return out


def _text(obj: Any) -> str:
    try:
        return orjson.dumps(obj, default=str).decode()
    except TypeError:
        return repr(obj)


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise FileError(f"no such file: {str(path)!r}") from None
    except IsADirectoryError:
        raise FileError(f"{str(path)!r} is a directory, not a file") from None
    except OSError as exc:
        raise FileError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


class _ByteSource:
    """A source read as bytes: its progress is counted in bytes of the file."""

    unit = "B"

    def __init__(self, path: Path, chunk_rows: int, label_column: str | None) -> None:
        self._path = path
        self._chunk_rows = chunk_rows
        self._label = label_column
        self.total = _size(path)


class JsonLinesSource(_ByteSource):
    """One JSON object per line."""

    def chunks(self) -> Iterator[Chunk]:
        builder = _Builder(self._label)
        read = 0
        loads = orjson.loads
        with _open(self._path) as f:
            for number, line in enumerate(f, start=1):
                read += len(line)
                if line.isspace():
                    continue
                try:
                    obj = loads(line)
                except orjson.JSONDecodeError as exc:
                    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
                    builder.reject(number, f"not JSON: {exc}", text)
                else:
                    builder.add(number, obj)
                if len(builder) >= self._chunk_rows:
                    yield builder.chunk(read)
                    read = 0
        if len(builder) or read:
            yield builder.chunk(read)


class AvroSource(_ByteSource):
    """An Avro object container file of records (flat, or event-shaped)."""

    def chunks(self) -> Iterator[Chunk]:
        import fastavro

        builder = _Builder(self._label)
        done = 0
        with _open(self._path) as f:
            try:
                records = fastavro.reader(f)
            except (ValueError, EOFError) as exc:
                raise FileError(
                    f"{str(self._path)!r} is not an Avro container file: {exc}"
                ) from None
            number = 0
            try:
                for number, record in enumerate(records, start=1):
                    builder.add(number, record)
                    if len(builder) >= self._chunk_rows:
                        position = f.tell()
                        yield builder.chunk(position - done)
                        done = position
            except (ValueError, EOFError) as exc:
                raise FileError(
                    f"{str(self._path)!r}: the Avro data after record {number} cannot be "
                    f"read: {exc}"
                ) from None
            position = f.tell()
        yield builder.chunk(position - done)


_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})


def csv_value(text: str) -> bool | int | float | str | None:
    """A CSV field as a feature: empty is missing (None); ``true``/``false`` a boolean; a
    number a number (an int when it is one); anything else the text."""
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class CsvSource(_ByteSource):
    """A CSV file with a header row (see :func:`csv_value` for the fields' types; the
    ``event_id`` and label columns are kept as text)."""

    def __init__(self, path: Path, chunk_rows: int, label_column: str | None) -> None:
        super().__init__(path, chunk_rows, label_column)
        self._read = 0

    def _lines(self, f: IO[bytes]) -> Iterator[str]:
        for line in f:
            self._read += len(line)
            yield line.decode("utf-8", "replace")

    def chunks(self) -> Iterator[Chunk]:
        builder = _Builder(self._label)
        keep_text = {EVENT_ID, self._label}
        with _open(self._path) as f:
            reader = csv.reader(self._lines(f))
            try:
                header = next(reader)
            except StopIteration:
                raise FileError(
                    f"{str(self._path)!r} is empty: a CSV file needs a header row"
                ) from None
            except csv.Error as exc:
                raise FileError(f"{str(self._path)!r}: bad CSV header: {exc}") from None
            width = len(header)
            converters = [(name, name in keep_text) for name in header]
            number = 0
            done = 0
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    number += 1
                    builder.reject(number, f"not CSV: {exc}", "")
                    continue
                number += 1
                if len(fields) != width:
                    if not fields:
                        number -= 1  # a blank line
                        continue
                    builder.reject(
                        number,
                        f"the row has {len(fields)} fields; the header has {width}",
                        ",".join(fields),
                    )
                else:
                    builder.add(
                        number,
                        {
                            name: (value or None) if text else csv_value(value)
                            for (name, text), value in zip(converters, fields, strict=True)
                        },
                    )
                if len(builder) >= self._chunk_rows:
                    yield builder.chunk(self._read - done)
                    done = self._read
        yield builder.chunk(self._read - done)


class ParquetSource:
    """A Parquet file, read one record batch at a time: numeric and boolean columns go
    to the chunk's frame as numbers, string columns as strings (as
    :meth:`FeatureFrame.of_rows` would take the same rows); ``event_id`` and the label
    column are read apart."""

    unit = "rows"

    def __init__(self, path: Path, chunk_rows: int, label_column: str | None) -> None:
        need_pyarrow()
        import pyarrow.parquet as pq

        self._path = path
        self._chunk_rows = chunk_rows
        self._label = label_column
        with _open(path):
            pass
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise FileError(f"{str(path)!r} is not a Parquet file: {exc}") from None
        self.total = self._file.metadata.num_rows
        self._features = self._check_schema()

    def _check_schema(self) -> list[tuple[str, str]]:
        """Each feature column and its kind: ``number``, ``string`` or ``null``."""
        import pyarrow as pa

        schema = self._file.schema_arrow
        out: list[tuple[str, str]] = []
        for f in schema:
            t = f.type
            if f.name == EVENT_ID:
                if not (
                    pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
                ):
                    raise FileError(f"{str(self._path)!r}: column 'event_id' is {t}, not a string")
                continue
            if f.name == self._label:
                continue
            if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
                out.append((f.name, "number"))
            elif _is_string(t):
                out.append((f.name, "string"))
            elif pa.types.is_null(t):
                out.append((f.name, "null"))
            else:
                raise FileError(
                    f"{str(self._path)!r}: column {f.name!r} is {t}; a feature must be a "
                    "number, a boolean or a string"
                )
        if self._label is not None and self._label not in schema.names:
            raise FileError(f"{str(self._path)!r} has no label column {self._label!r}")
        return out

    def chunks(self) -> Iterator[Chunk]:
        first = 1
        for batch in self._file.iter_batches(batch_size=self._chunk_rows):
            yield self._chunk(batch, first)
            first += batch.num_rows

    def _chunk(self, batch: Any, first: int) -> Chunk:
        import pyarrow as pa

        n = batch.num_rows
        keep = np.ones(n, dtype=bool)
        rejects: list[Reject] = []
        ids = self._ids(batch, first, keep, rejects)
        labels = self._labels(batch, first, keep, rejects)
        numeric, matrix, strings = self._columns(batch)
        rows = list(range(first, first + n))
        if not keep.all():
            picked = np.flatnonzero(keep).tolist()
            matrix = matrix[picked]
            strings = {k: [v[i] for i in picked] for k, v in strings.items()}
            rows = [rows[i] for i in picked]
            ids = [ids[i] for i in picked]
            if labels is not None:
                labels = [labels[i] for i in picked]
            batch = batch.filter(pa.array(keep))
        values = np.ascontiguousarray(matrix, dtype=np.float64)
        features_only = batch.select([name for name, _ in self._features])
        rejects.sort(key=lambda r: r.row)
        return Chunk(
            rows,
            ids,
            frame=FeatureFrame(tuple(numeric), values, strings),
            labels=labels,
            rejects=rejects,
            progress=n,
            make_dicts=features_only.to_pylist,
        )

    @staticmethod
    def _ids(batch: Any, first: int, keep: Any, rejects: list[Reject]) -> list[str | None]:
        if EVENT_ID not in batch.schema.names:
            return [None] * batch.num_rows
        import pyarrow.compute as pc

        column = batch.column(EVENT_ID)
        ids: list[str | None] = column.to_pylist()
        lengths = pc.utf8_length(column).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):  # NaN: a null id, which is allowed
            bad = (lengths < 1) | (lengths > MAX_EVENT_ID_LENGTH)
        for r in np.flatnonzero(bad).tolist():
            problem = event_id_problem(ids[r])
            if problem:
                keep[r] = False
                rejects.append(Reject(first + r, problem, _row_text(batch, r)))
        return ids

    def _labels(self, batch: Any, first: int, keep: Any, rejects: list[Reject]) -> list[Any] | None:
        column = self._label
        if column is None:
            return None
        labels: list[Any] = batch.column(column).to_pylist()
        for r, label in enumerate(labels):
            if not keep[r]:
                continue
            problem = (
                f"the row has no label (column {column!r})"
                if label is None
                else label_problem(label, column)
            )
            if problem:
                keep[r] = False
                rejects.append(Reject(first + r, problem, _row_text(batch, r)))
        return labels

    def _columns(self, batch: Any) -> tuple[list[str], Any, dict[str, Sequence[str | None]]]:
        """The numeric columns' names and matrix, and the string columns (a string
        column with nulls is also a numeric one, NaN throughout, as ``of_rows`` makes it)."""
        import pyarrow as pa

        n = batch.num_rows
        numeric: list[str] = []
        columns: list[Any] = []
        strings: dict[str, Sequence[str | None]] = {}
        for name, kind in self._features:
            column = batch.column(name)
            if kind == "string":
                nulls = column.null_count
                if nulls < n:
                    strings[name] = column.to_pylist()
                if nulls == 0:
                    continue
                numeric.append(name)
                columns.append(np.full(n, np.nan))
            else:
                numeric.append(name)
                columns.append(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
        matrix = np.column_stack(columns) if columns else np.empty((n, 0))
        return numeric, matrix, strings


def _is_string(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _row_text(batch: Any, r: int) -> str:
    return _text(batch.slice(r, 1).to_pylist()[0])


def open_rows(
    path: Path, fmt: Format, *, chunk_rows: int, label_column: str | None = None
) -> RowSource:
    """The rows of ``path`` read as ``fmt``, ``chunk_rows`` (rows and rejects) at a time."""
    if chunk_rows < 1:
        raise FileError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    sources: dict[Format, Callable[[Path, int, str | None], RowSource]] = {
        Format.JSONL: JsonLinesSource,
        Format.CSV: CsvSource,
        Format.PARQUET: ParquetSource,
        Format.AVRO: AvroSource,
    }
    return sources[fmt](path, chunk_rows, label_column)
