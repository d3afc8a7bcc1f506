"""``streamserve score-file`` and ``streamserve backfill``: parse the arguments, build the
parts through the wiring, run, print what was done."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamserve.errors import ConfigError
from streamserve.files.backfill import StreamPosition
from streamserve.files.examples_topic import Position
from streamserve.files.formats import (
    NAMES,
    SUFFIXES,
    Format,
    format_named,
    format_of,
    need_pyarrow,
)
from streamserve.files.progress import progress_bar
from streamserve.files.reading import RowSource, open_rows
from streamserve.files.score_file import score_file
from streamserve.files.writing import RejectsWriter, rejects_path
from streamserve.wiring import (
    Runtime,
    backfill_for,
    examples_range,
    examples_topic_id,
    file_model,
)

Common = Callable[[argparse.ArgumentParser], None]

DEFAULT_CHUNK_ROWS = 65536


def add_files_parsers(sub: Any, common: Common) -> None:
    text = (
        "score every row of a file (JSON lines, CSV, Parquet, Avro) with one model version; "
        "one prediction per row, in input order; rows that fail go to a rejects file"
    )
    p: argparse.ArgumentParser = sub.add_parser("score-file", help=text, description=text)
    common(p)
    p.add_argument("input", metavar="IN", help="the file to score")
    p.add_argument("output", metavar="OUT", help="where the predictions go")
    p.add_argument(
        "--model", help="a configured model (default: the champion, else the first model)"
    )
    p.add_argument(
        "--version",
        dest="ref",
        help="a version, alias, latest or serving (default: the serving version); "
        "0 is the untrained model",
    )
    p.add_argument(
        "--format",
        help=f"the output's format ({NAMES}; default: told by OUT's suffix, else the input's)",
    )
    p.add_argument(
        "--input-format", help=f"the input's format ({NAMES}; default: told by its suffix)"
    )
    p.add_argument(
        "--rejects", help="where rejected rows go (default: <OUT stem>.rejects.jsonl beside OUT)"
    )
    _chunk_rows(p)

    text = (
        "train a model on labelled history before it goes live (a file of labelled rows, "
        "or the examples topic between two positions) and publish it as a new signed version"
    )
    b: argparse.ArgumentParser = sub.add_parser("backfill", help=text, description=text)
    common(b)
    b.add_argument("--model", required=True, help="a configured model")
    b.add_argument(
        "input",
        metavar="IN",
        nargs="?",
        help="a file of labelled rows (JSON lines, CSV, Parquet, Avro); without it, the "
        "examples topic is read",
    )
    b.add_argument(
        "--input-format", help=f"the input's format ({NAMES}; default: told by its suffix)"
    )
    b.add_argument(
        "--label-column", default="label", help="the label's column in a file (default: label)"
    )
    b.add_argument(
        "--from",
        dest="start",
        help="where to start in the examples topic: beginning (default), an offset (120), "
        "offsets per partition (0:120,1:98) or a time (2026-12-01T00:00:00Z)",
    )
    b.add_argument(
        "--to",
        dest="stop",
        help="where to stop (exclusive): end (default: the end when the backfill starts), "
        "an offset, offsets per partition or a time",
    )
    b.add_argument(
        "--rejects",
        help="where rejected rows go (default: <IN stem>.rejects.jsonl beside IN, or "
        "backfill-<model>.rejects.jsonl)",
    )
    _chunk_rows(b)


def _chunk_rows(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--chunk-rows",
        type=_at_least_one,
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows read, scored and written at a time (default {DEFAULT_CHUNK_ROWS})",
    )


def _at_least_one(text: str) -> int:
    """A count of rows: a whole number of at least 1 (else argparse exits 2 naming it)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_score_file(rt: Runtime, args: argparse.Namespace) -> int:
    src, out = Path(args.input), Path(args.output)
    in_format = format_of(src, args.input_format, "--input-format")
    out_format = format_named(args.format) if args.format else SUFFIXES.get(out.suffix.lower())
    out_format = out_format or in_format
    rejects = Path(args.rejects) if args.rejects else rejects_path(out)
    if out_format is Format.PARQUET:
        need_pyarrow()  # before any work
    source = open_rows(src, in_format, chunk_rows=args.chunk_rows)
    model, served = file_model(rt, args.model, args.ref)
    try:
        bar = progress_bar(source.total, source.unit, f"{model.name} v{model.version}")
        report = score_file(
            source, model, out, out_format, rejects, metrics=rt.metrics, progress=bar
        )
    finally:
        for close in served.closers:
            close()
    print(report.line(), flush=True)
    return 0


def run_backfill(rt: Runtime, args: argparse.Namespace) -> int:
    spec = rt.lifecycle.versioned(args.model)  # NotFound, or Refused for an ensemble
    if args.input is not None and (args.start or args.stop):
        raise ConfigError("--from", "--from and --to read the examples topic; not with IN")
    backfill = backfill_for(rt, spec)
    if args.input is not None:
        src = Path(args.input)
        fmt = format_of(src, args.input_format, "--input-format")
        rejects = Path(args.rejects) if args.rejects else rejects_path(src)
        source: RowSource = open_rows(
            src, fmt, chunk_rows=args.chunk_rows, label_column=args.label_column
        )
        position: Callable[[], StreamPosition] | None = None
        label = str(src)
    else:
        start = Position.parse(args.start or "beginning", "--from")
        stop = Position.parse(args.stop or "end", "--to")
        rejects = Path(args.rejects or f"backfill-{spec.name}.rejects.jsonl")
        topic_range = examples_range(rt, spec, start, stop, args.chunk_rows)
        source = topic_range
        topic_id = examples_topic_id(rt)

        def position() -> StreamPosition:  # once read: a time may end a partition early
            return StreamPosition(topic_range.end_offsets, topic_id)

        label = f"{rt.topics['examples']} from {args.start or 'beginning'} to {args.stop or 'end'}"
    backfill.take_lease()
    try:
        bar = progress_bar(source.total, source.unit, f"backfill {spec.name}")
        report = backfill.run(
            source.chunks(),
            source=label,
            position=position,
            rejects=RejectsWriter(rejects),
            progress=bar,
        )
    finally:
        backfill.release()
    print(report.line(), flush=True)
    return 0
