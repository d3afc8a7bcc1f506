"""Errors raised by the serde subpackage."""

from __future__ import annotations

from streamserve.errors import StreamserveError


class SerdeError(StreamserveError):
    """Base class of serialization errors."""


class DecodeError(SerdeError):
    """A record's bytes are not a valid record of the expected kind; the message says why.

    The record itself is at fault: send it to dead-letter and move on.
    """


class EncodeError(SerdeError):
    """An object cannot be encoded (a value does not fit the schema)."""


class SchemaError(SerdeError):
    """A schema file is missing or invalid, or a schema is not in the catalog."""


class RegistryError(SerdeError):
    """The schema registry could not be reached or refused a request.

    ``status`` is the HTTP status (None when no response arrived) and ``error_code``
    the registry's own error code when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
