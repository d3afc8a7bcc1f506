"""Avro bodies in the Confluent wire format: framing, reading and writing.

Wire format: byte 0 is the magic byte 0, bytes 1-4 the schema id (big-endian), then
the schemaless Avro body.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import SchemaParseException, to_parsing_canonical_form

from streamserve.serde.exceptions import DecodeError, EncodeError, RegistryError
from streamserve.serde.registry import SchemaRegistryClient
from streamserve.serde.schemas import ParsedSchema

logger = logging.getLogger(__name__)

MAGIC_BYTE = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">bI")
_MAX_UNKNOWN_IDS = 1024


def frame_header(schema_id: int) -> bytes:
    """The 5-byte Confluent header for ``schema_id``."""
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def framed_schema_id(value: bytes) -> int:
    """The schema id of a framed value whose first byte is the magic byte."""
    if len(value) < HEADER_SIZE:
        raise DecodeError(
            f"truncated Avro header: {len(value)} bytes, the wire format needs {HEADER_SIZE}"
        )
    schema_id: int = _HEADER.unpack_from(value)[1]
    return schema_id


def read_body(value: bytes, writer: ParsedSchema, reader: ParsedSchema | None) -> Any:
    """Read the Avro body after the header; the whole rest of ``value`` must be consumed."""
    buffer = io.BytesIO(value)
    buffer.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(buffer, writer, reader)
    except EOFError as exc:
        raise DecodeError("truncated Avro body") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError("Avro string is not valid UTF-8") from exc
    except Exception as exc:
        # fastavro reports malformed input with assorted built-in exceptions (IndexError
        # for an overlong varint or a union branch that does not exist, schema resolution
        # errors, ...): every one of them means this record is unreadable.
        raise DecodeError(f"malformed Avro body ({type(exc).__name__}: {exc})") from exc
    extra = len(value) - buffer.tell()
    if extra:
        raise DecodeError(f"{extra} unexpected bytes after the Avro body")
    return record


class AvroBodyWriter:
    """Frames records under one schema id; the header is computed once."""

    def __init__(self, schema: ParsedSchema, schema_id: int) -> None:
        self._schema = schema
        self._header = frame_header(schema_id)
        self.schema_id = schema_id

    def write(self, record: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self._header)
        try:
            schemaless_writer(buffer, self._schema, record)
        except (ValueError, TypeError, OverflowError, KeyError, AttributeError) as exc:
            # UnicodeEncodeError (a lone surrogate in a string) is a ValueError.
            raise EncodeError(f"value does not fit the Avro schema: {exc}") from exc
        return buffer.getvalue()


WriterAndReader = tuple[ParsedSchema, ParsedSchema | None]


class RegistryWriterSchemas:
    """Writer schemas for the ids seen on an input topic, fetched from the registry once.

    Each id maps to ``(writer, reader)``: when the writer's canonical form equals our
    reader schema's, the reader is used directly (no resolution); otherwise fastavro
    resolves the writer's data into the reader schema. Ids the registry does not know
    are remembered (up to a bound) so a flood of garbage does not flood the registry.
    """

    def __init__(
        self,
        registry: SchemaRegistryClient,
        reader: ParsedSchema,
        reader_canonical_form: str,
    ) -> None:
        self._registry = registry
        self._reader = reader
        self._reader_canonical_form = reader_canonical_form
        self._known: dict[int, WriterAndReader] = {}
        self._unknown: set[int] = set()

    def lookup(self, schema_id: int) -> WriterAndReader:
        """Writer and reader schema for ``schema_id``.

        Raises DecodeError when the id is unknown or not an Avro schema, and
        RegistryError when the registry cannot answer (the record is not at fault).
        """
        known = self._known.get(schema_id)
        if known is not None:
            return known
        if schema_id in self._unknown:
            raise DecodeError(f"unknown schema id {schema_id}")
        try:
            answer = self._registry.schema_by_id(schema_id)
        except RegistryError as exc:
            if exc.status != 404:
                raise
            if len(self._unknown) < _MAX_UNKNOWN_IDS:
                self._unknown.add(schema_id)
            raise DecodeError(f"unknown schema id {schema_id}") from exc
        entry = self._resolve(schema_id, answer)
        self._known[schema_id] = entry
        return entry

    def _resolve(self, schema_id: int, answer: dict[str, Any]) -> WriterAndReader:
        schema_type = answer.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise DecodeError(f"schema id {schema_id} is a {schema_type} schema, not Avro")
        try:
            writer = parse_schema(json.loads(answer["schema"]))
            canonical = to_parsing_canonical_form(writer)
        except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
            raise DecodeError(f"schema id {schema_id} is not a valid Avro schema: {exc}") from exc
        if not isinstance(writer, dict) or writer.get("type") != "record":
            raise DecodeError(f"schema id {schema_id} is not an Avro record schema")
        if canonical == self._reader_canonical_form:
            return self._reader, None
        logger.info("schema id %d differs from the reader schema; resolving", schema_id)
        return writer, self._reader
