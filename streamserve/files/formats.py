"""The file formats ``score-file`` and ``backfill`` read and write, told by name or suffix."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from streamserve.files.exceptions import FileError


class Format(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"
    AVRO = "avro"


SUFFIXES = {
    ".jsonl": Format.JSONL,
    ".ndjson": Format.JSONL,
    ".json": Format.JSONL,
    ".csv": Format.CSV,
    ".parquet": Format.PARQUET,
    ".pq": Format.PARQUET,
    ".avro": Format.AVRO,
}
NAMES = ", ".join(f.value for f in Format)


def format_named(name: str, flag: str = "--format") -> Format:
    try:
        return Format(name.lower())
    except ValueError:
        raise FileError(f"{flag} {name!r} is not a format streamserve reads ({NAMES})") from None


def format_of(path: Path, given: str | None = None, flag: str = "--format") -> Format:
    """The format ``given`` names, else the one ``path``'s suffix names."""
    if given:
        return format_named(given, flag)
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        suffixes = ", ".join(SUFFIXES)
        raise FileError(
            f"cannot tell the format of {str(path)!r} from its suffix ({suffixes}); "
            f"give {flag} ({NAMES})"
        )
    return found


def need_pyarrow() -> None:
    """Parquet needs pyarrow (the ``files`` extra); a clear error when it is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise FileError("Parquet files need pyarrow: pip install 'streamserve[files]'") from None
