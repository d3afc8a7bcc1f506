"""Answers written to a file, chunk by chunk, and rejected rows to a rejects file.

Every format has one record per usable input row, in input order:

- ``row`` (the input row number), ``event_id`` (null when the row has none),
  ``prediction``, ``score``, the probabilities (classifiers), ``decision`` and
  ``model_version``;
- JSON lines and Avro keep the probabilities as a map ``probabilities`` (as on the
  predictions topic and in TF Serving answers); CSV and Parquet as one column
  ``probability_<class>`` per class (a multiclass model's classes are fixed by the first
  chunk: one version scores the whole file).

A file is written under a temporary name beside its destination and renamed when
complete, so a failed run leaves no half-written output.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import orjson

from streamserve.files.exceptions import FileError
from streamserve.files.formats import Format, need_pyarrow
from streamserve.files.reading import Reject
from streamserve.files.scoring import Answers, py_floats
from streamserve.learners.spec import Task


class AnswerWriter(Protocol):
    def write(self, answers: Answers) -> None: ...

    def close(self) -> None:
        """Finish the file (it is complete only once :meth:`AtomicFile.commit` ran)."""
        ...


class AtomicFile:
    """A temporary file beside ``path``, renamed to ``path`` by :meth:`commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        directory = path.parent if str(path.parent) else Path(".")
        if not directory.is_dir():
            raise FileError(f"cannot write {str(path)!r}: no directory {str(directory)!r}")
        if path.is_dir():
            raise FileError(f"cannot write {str(path)!r}: it is a directory")
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
        except OSError as exc:
            raise FileError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
        self.temp = Path(name)
        self.file: IO[bytes] = os.fdopen(fd, "wb")

    def commit(self) -> None:
        if not self.file.closed:
            self.file.close()
        os.replace(self.temp, self.path)

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.temp.unlink(missing_ok=True)


def _columns_of(answers: Answers, classes: list[str]) -> list[str]:
    return [f"probability_{c}" for c in classes]


def _class_check(answers: Answers, classes: list[str] | None) -> list[str]:
    got = answers.classes()
    if classes is None:
        return got
    extra = sorted(set(got) - set(classes))
    probabilities = answers.probabilities or {}
    if extra and any(np.isfinite(probabilities[c]).any() for c in extra):
        raise FileError(
            f"class {extra[0]!r} appeared after the output's columns were fixed "
            f"({', '.join(classes) or 'none'})"
        )
    return classes


class JsonLinesWriter:
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def write(self, answers: Answers) -> None:
        version = answers.version
        scores = py_floats(answers.scores)
        probabilities = _probability_maps(answers)
        items = []
        for row, event_id, prediction, probs, score, decision in zip(
            answers.rows,
            answers.ids,
            answers.predictions,
            probabilities,
            scores,
            answers.decisions,
            strict=True,
        ):
            item: dict[str, Any] = {
                "row": row,
                "event_id": event_id,
                "prediction": prediction,
                "probabilities": probs,
                "score": score,
                "decision": decision,
                "model_version": version,
            }
            if event_id is None:
                del item["event_id"]
            if probs is None:
                del item["probabilities"]
            items.append(item)
        if items:
            self._file.write(_lines(orjson.dumps(items)))

    def close(self) -> None:
        self._file.close()


_BETWEEN = b'},{"row":'


def _lines(array: bytes) -> bytes:
    """A JSON array of objects whose first key is ``row``, as JSON lines: one dumps call
    for the chunk, not one per row. Splitting where ``},{"row":`` occurs is exact: inside
    a JSON string every ``"`` is escaped (``\\"``), so ``{"`` appears only where an
    object starts."""
    return array[1:-1].replace(_BETWEEN, b'}\n{"row":') + b"\n"


def _probability_maps(answers: Answers) -> list[Any]:
    """Each row's probabilities as a map (classes without a number left out); None per
    row for a regressor."""
    probabilities = answers.probabilities
    if probabilities is None:
        return [None] * len(answers)
    classes = answers.classes()
    columns = [py_floats(probabilities[c]) for c in classes]
    if classes == ["false", "true"]:  # binary: both numbers or neither
        return [
            {} if t is None else {"false": f, "true": t}
            for f, t in zip(columns[0], columns[1], strict=True)
        ]
    return (
        [
            {c: p for c, p in zip(classes, values, strict=True) if p is not None}
            for values in zip(*columns, strict=True)
        ]
        if columns
        else [{} for _ in range(len(answers))]
    )


class CsvWriter:
    def __init__(self, file: IO[bytes]) -> None:
        self._text = io.TextIOWrapper(file, encoding="utf-8", newline="")
        self._csv = csv.writer(self._text)
        self._classes: list[str] | None = None

    def write(self, answers: Answers) -> None:
        classes = _class_check(answers, self._classes)
        if self._classes is None:
            self._classes = classes
            self._csv.writerow(
                [
                    "row",
                    "event_id",
                    "prediction",
                    "score",
                    *_columns_of(answers, classes),
                    "decision",
                    "model_version",
                ]
            )
        probabilities = answers.probabilities or {}
        none = [None] * len(answers)
        columns = [py_floats(probabilities[c]) if c in probabilities else none for c in classes]
        scores = py_floats(answers.scores)
        version = answers.version
        self._csv.writerows(
            [
                row,
                _csv_text(answers.ids[i]),
                _csv_text(answers.predictions[i]),
                _csv_text(scores[i]),
                *(_csv_text(column[i]) for column in columns),
                _csv_text(answers.decisions[i]),
                version,
            ]
            for i, row in enumerate(answers.rows)
        )

    def close(self) -> None:
        self._text.close()


def _csv_text(value: Any) -> Any:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value


class ParquetWriter:
    def __init__(self, file: IO[bytes], task: Task) -> None:
        need_pyarrow()
        import pyarrow as pa

        self._file = file
        self._task = task
        self._type = {Task.BINARY: pa.bool_(), Task.MULTICLASS: pa.string()}.get(task, pa.float64())
        self._writer: Any = None
        self._classes: list[str] | None = None

    def write(self, answers: Answers) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        classes = _class_check(answers, self._classes)
        if self._classes is None:
            self._classes = classes
        probabilities = answers.probabilities or {}
        n = len(answers)
        arrays = {
            "row": pa.array(answers.rows, pa.int64()),
            "event_id": pa.array(answers.ids, pa.string()),
            "prediction": pa.array(answers.predictions, self._type),
            "score": _floats(answers.scores),
            **{
                f"probability_{c}": _floats(probabilities[c])
                if c in probabilities
                else pa.nulls(n, pa.float64())
                for c in classes
            },
            "decision": pa.array(answers.decisions, self._type),
            "model_version": pa.array([answers.version] * n, pa.int64()),
        }
        table = pa.table(arrays)
        if self._writer is None:
            # Dictionary encoding only where values repeat: tried on the ids and the
            # probabilities it costs five times the rest of the writing and saves nothing.
            self._writer = pq.ParquetWriter(
                self._file, table.schema, use_dictionary=["prediction", "decision", "model_version"]
            )
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is None:  # no rows: an empty file with the columns
            self.write(Answers())
        self._writer.close()
        self._file.close()


def _floats(values: Any) -> Any:
    """A float64 arrow array, null where the value is not a finite number."""
    import pyarrow as pa

    return pa.array(values, pa.float64(), mask=~np.isfinite(values))


_AVRO_TYPES = {Task.BINARY: "boolean", Task.MULTICLASS: "string", Task.REGRESSION: "double"}


def avro_schema(task: Task) -> dict[str, Any]:
    """The Avro schema of ``score-file``'s output for a model of ``task``."""
    value = ["null", _AVRO_TYPES[task]]
    fields: list[dict[str, Any]] = [
        {"name": "row", "type": "long"},
        {"name": "event_id", "type": ["null", "string"], "default": None},
        {"name": "prediction", "type": value},
    ]
    if task is not Task.REGRESSION:
        fields.append(
            {
                "name": "probabilities",
                "type": ["null", {"type": "map", "values": "double"}],
                "default": None,
            }
        )
    fields += [
        {"name": "score", "type": ["null", "double"]},
        {"name": "decision", "type": value},
        {"name": "model_version", "type": "long"},
    ]
    return {"type": "record", "name": "ScoredRow", "namespace": "streamserve", "fields": fields}


class AvroWriter:
    def __init__(self, file: IO[bytes], task: Task) -> None:
        from fastavro import parse_schema
        from fastavro.write import Writer

        self._file = file
        self._task = task
        self._writer = Writer(file, parse_schema(avro_schema(task)))

    def write(self, answers: Answers) -> None:
        write = self._writer.write
        version = answers.version
        for row, event_id, prediction, probs, score, decision in zip(
            answers.rows,
            answers.ids,
            answers.predictions,
            _probability_maps(answers),
            py_floats(answers.scores),
            answers.decisions,
            strict=True,
        ):
            record: dict[str, Any] = {
                "row": row,
                "event_id": event_id,
                "prediction": prediction,
                "score": score,
                "decision": decision,
                "model_version": version,
            }
            if probs is not None:
                record["probabilities"] = probs
            write(record)
        self._writer.flush()

    def close(self) -> None:
        self._writer.flush()
        self._file.close()


def answer_writer(fmt: Format, file: IO[bytes], task: Task) -> AnswerWriter:
    if fmt is Format.JSONL:
        return JsonLinesWriter(file)
    if fmt is Format.CSV:
        return CsvWriter(file)
    if fmt is Format.PARQUET:
        return ParquetWriter(file, task)
    return AvroWriter(file, task)


class RejectsWriter:
    """Rejected rows as JSON lines: ``{"row", "reason", "record"}`` (``record``: the row's
    text as read, cut at 2000 characters), in input order. The file is made at the first
    reject; a run without any leaves none (and removes one left at ``path`` by an earlier
    run, so what is there always belongs to the last run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._atomic: AtomicFile | None = None
        self.count = 0
        self.first: Reject | None = None

    def write(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        if self._atomic is None:
            self._atomic = AtomicFile(self.path)
            self.first = min(rejects, key=lambda r: r.row)
        self.count += len(rejects)
        self._atomic.file.write(
            b"".join(
                orjson.dumps({"row": r.row, "reason": r.reason, "record": r.record}) + b"\n"
                for r in sorted(rejects, key=lambda r: r.row)
            )
        )

    def commit(self) -> None:
        if self._atomic is not None:
            self._atomic.commit()
        elif self.path.is_file():
            self.path.unlink()

    def discard(self) -> None:
        if self._atomic is not None:
            self._atomic.discard()


def rejects_path(out: Path) -> Path:
    """Where the rejects of ``out`` go by default: ``<out stem>.rejects.jsonl`` beside it."""
    return out.with_name(f"{out.stem}.rejects.jsonl")
