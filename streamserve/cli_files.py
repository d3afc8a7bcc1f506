"""``streamserve score-file`` and ``streamserve backfill``: parse the arguments, build the
parts through the wiring, run, print what was done."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamserve.files.formats import NAMES, SUFFIXES, format_named, format_of
from streamserve.files.progress import progress_bar
from streamserve.files.reading import open_rows
from streamserve.files.score_file import score_file
from streamserve.files.writing import rejects_path
from streamserve.wiring import Runtime, file_model

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


def _chunk_rows(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows read, scored and written at a time (default {DEFAULT_CHUNK_ROWS})",
    )


def run_score_file(rt: Runtime, args: argparse.Namespace) -> int:
    src, out = Path(args.input), Path(args.output)
    in_format = format_of(src, args.input_format, "--input-format")
    out_format = format_named(args.format) if args.format else SUFFIXES.get(out.suffix.lower())
    out_format = out_format or in_format
    rejects = Path(args.rejects) if args.rejects else rejects_path(out)
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
