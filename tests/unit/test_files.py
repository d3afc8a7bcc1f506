"""The file commands' pure parts: formats, CSV values, positions in the examples topic,
rows read in chunks (each format, rejects), answers scored per chunk against the model's
own per-record scores, and the progress bar kept off a terminal."""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamserve.files.examples_topic import Position
from streamserve.files.exceptions import FileError
from streamserve.files.formats import Format, format_of
from streamserve.files.progress import Quiet, progress_bar
from streamserve.files.reading import Chunk, csv_value, open_rows
from streamserve.files.scoring import ChunkScorer, FileModel
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.serving.decisions import Decision
from streamserve.snapshots.holder import Serving


def test_formats_are_told_by_suffix_or_flag() -> None:
    assert format_of(Path("a.ndjson")) is Format.JSONL
    assert format_of(Path("a.PQ")) is Format.PARQUET
    assert format_of(Path("a.txt"), "csv") is Format.CSV
    with pytest.raises(FileError, match="cannot tell the format"):
        format_of(Path("a.txt"))
    with pytest.raises(FileError, match="'xls' is not a format"):
        format_of(Path("a.csv"), "xls")


def test_csv_values() -> None:
    assert csv_value("") is None
    assert csv_value("true") is True and csv_value("FALSE") is False
    assert csv_value("12") == 12 and isinstance(csv_value("12"), int)
    assert csv_value("1.5") == 1.5
    assert math.isnan(csv_value("nan"))  # type: ignore[arg-type]
    assert csv_value("FR") == "FR"


def test_positions() -> None:
    assert Position.parse("beginning", "--from").kind == "beginning"
    assert Position.parse("120", "--from").offsets == {-1: 120}
    assert Position.parse("0:120,1:98", "--to").offsets == {0: 120, 1: 98}
    at = Position.parse("2026-12-01T00:00:00Z", "--from")
    assert at.kind == "time" and at.ms == 1796083200000
    assert Position.parse("2026-12-01T00:00:00", "--from").ms == at.ms  # UTC when naive
    with pytest.raises(FileError, match="--to 'soon' is not a position"):
        Position.parse("soon", "--to")


def _rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    return [{"event_id": f"e{i}", "x0": rng.random(), "n": i % 3} for i in range(n)]


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_reads_in_chunks_in_order(tmp_path: Path, fmt: Format) -> None:
    rows = _rows(25)
    path = tmp_path / f"in.{fmt.value}"
    if fmt is Format.JSONL:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt is Format.CSV:
        path.write_text(
            "event_id,x0,n\n" + "".join(f"{r['event_id']},{r['x0']!r},{r['n']}\n" for r in rows)
        )
    elif fmt is Format.PARQUET:
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        import fastavro

        schema = {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "event_id", "type": "string"},
                {"name": "x0", "type": "double"},
                {"name": "n", "type": "long"},
            ],
        }
        with path.open("wb") as f:
            fastavro.writer(f, fastavro.parse_schema(schema), rows)
    source = open_rows(path, fmt, chunk_rows=10)
    chunks = list(source.chunks())
    assert [len(c) for c in chunks if len(c)] == [10, 10, 5]
    got = [(r, i, x) for c in chunks for r, i, x in zip(c.rows, c.ids, c.rows_dicts(), strict=True)]
    assert [r for r, _, _ in got] == list(range(1, 26))
    assert [i for _, i, _ in got] == [r["event_id"] for r in rows]
    assert [x for _, _, x in got] == [{"x0": r["x0"], "n": r["n"]} for r in rows]
    assert sum(c.progress for c in chunks) == source.total


def test_parquet_rows_with_a_bad_id_or_no_label_are_rejected(tmp_path: Path) -> None:
    rows = [
        {"event_id": "a", "x": 1.0, "c": "FR", "label": True},
        {"event_id": "", "x": 2.0, "c": None, "label": False},
        {"event_id": "b", "x": None, "c": "DE", "label": None},
        {"event_id": None, "x": 4.0, "c": None, "label": True},
    ]
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    (chunk,) = open_rows(path, Format.PARQUET, chunk_rows=100, label_column="label").chunks()
    assert chunk.rows == [1, 4] and chunk.ids == ["a", None] and chunk.labels == [True, True]
    assert [(r.row, "event_id" in r.reason) for r in chunk.rejects] == [(2, True), (3, False)]
    assert "no label" in chunk.rejects[1].reason
    assert chunk.rows_dicts() == [{"x": 1.0, "c": "FR"}, {"x": 4.0, "c": None}]
    frame = chunk.frame
    assert frame is not None and frame.names == ("x", "c") and frame.strings["c"] == ["FR", None]


def test_parquet_columns_of_other_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": pa.array([[1, 2]])}), path)
    with pytest.raises(FileError, match="column 'x' is list<element: int64>"):
        open_rows(path, Format.PARQUET, chunk_rows=10)


@pytest.mark.parametrize(
    ("task", "learner"),
    [
        (Task.BINARY, "logistic_regression"),
        (Task.BINARY, "naive_bayes"),
        (Task.MULTICLASS, "softmax_regression"),
        (Task.REGRESSION, "linear_regression"),
    ],
)
def test_chunk_answers_equal_the_models_own_scores(task: Task, learner: str) -> None:
    spec = ModelSpec("m", task, learner)
    model = build_learner(spec)
    rng = random.Random(2)
    xs = []
    for _ in range(300):
        x: dict[str, Any] = {"a": rng.random(), "b": rng.random()}
        s = x["a"] + x["b"]
        y: Any = {Task.BINARY: s > 1, Task.MULTICLASS: "lo" if s < 1 else "hi"}.get(task, s)
        model.learn_one(x, y)
        xs.append(x)
    xs[7] = {"a": 0.5, "b": 0.2, "country": "FR"}  # a row of other names: per record
    chunk = Chunk(list(range(1, 301)), [None] * 300, features=xs)
    rule = Decision(threshold=0.8) if task is Task.BINARY else Decision()
    answers, rejects = ChunkScorer(FileModel(spec, Serving(3, model), rule)).score(chunk)
    assert not rejects and answers.rows == chunk.rows and answers.version == 3
    for i, x in enumerate(xs):
        want = model.predict_one(x)
        assert answers.predictions[i] == pytest.approx(want.prediction)
        assert answers.scores[i] == pytest.approx(want.score, abs=1e-9)
        if want.probabilities is not None:
            assert answers.probabilities is not None
            for c, p in want.probabilities.items():
                assert answers.probabilities[c][i] == pytest.approx(p, abs=1e-9)
        assert answers.decisions[i] == pytest.approx(rule.decide(want), abs=1e-9)


def test_a_business_rule_that_fails_rejects_its_row_only() -> None:
    spec = ModelSpec("m", Task.BINARY, "logistic_regression")
    model = build_learner(spec)
    model.learn_one({"a": 1.0}, True)

    def rule(features: Any, scored: Any, decision: Any) -> Any:
        if features["a"] < 0:
            raise ValueError("negative")
        return "yes" if features["a"] > 5 else decision

    xs = [{"a": 1.0}, {"a": -1.0}, {"a": 9.0}, {"a": 2.0}]
    chunk = Chunk([1, 2, 3, 4], ["a", "b", "c", "d"], features=xs)
    answers, rejects = ChunkScorer(FileModel(spec, Serving(1, model), Decision(), rule)).score(
        chunk
    )
    assert answers.rows == [1, 4] and answers.ids == ["a", "d"]
    assert [(r.row, r.reason.split(":")[0]) for r in rejects] == [
        (2, "the business rule failed"),
        (3, "the business rule returned 'yes', not a bool"),
    ]


def test_the_progress_bar_stays_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(progress_bar(100, "rows", "x"), Quiet)
    bar = progress_bar(100, "rows", "x", show=True)
    bar.update(50)
    bar.close()


def test_an_untrained_binary_model_still_writes_both_probability_columns(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from streamserve.files.score_file import score_file
    from streamserve.metrics import Metrics

    src = tmp_path / "in.jsonl"
    src.write_text('{"a": 1}\n{"a": 2, "s": "x"}\n')
    spec = ModelSpec("m", Task.BINARY, "hoeffding_tree")
    model = FileModel(spec, Serving(0, build_learner(spec)), Decision())
    out = tmp_path / "out.parquet"
    report = score_file(
        open_rows(src, Format.JSONL, chunk_rows=10),
        model,
        out,
        Format.PARQUET,
        tmp_path / "rejects.jsonl",
        metrics=Metrics(CollectorRegistry()),
        progress=Quiet(),
    )
    assert report.scored == 2 and report.rejected == 0
    table = pq.read_table(out)
    assert table.column_names == [
        "row",
        "event_id",
        "prediction",
        "score",
        "probability_false",
        "probability_true",
        "decision",
        "model_version",
    ]
    assert table.column("probability_true").to_pylist() == [None, None]
    assert not (tmp_path / "rejects.jsonl").exists()
