"""Errors of the file commands (the CLI exits 1 on them, printing the message)."""

from streamserve.errors import StreamserveError


class FileError(StreamserveError):
    """A file cannot be read or written: a bad path, format, schema or column type."""


class BackfillError(StreamserveError):
    """A backfill cannot publish: the lease is held by another learner or was lost, the
    model was moved meanwhile, or nothing could be learned."""
