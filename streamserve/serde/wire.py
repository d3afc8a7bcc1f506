"""Decoders that detect the wire format, and encoders for one format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from streamserve.serde.avro import (
    AvroBodyWriter,
    RegistryWriterSchemas,
    frame_header,
    framed_schema_id,
    read_body,
)
from streamserve.serde.exceptions import DecodeError, SerdeError
from streamserve.serde.json_codec import dumps, loads_object
from streamserve.serde.schemas import ParsedSchema

T = TypeVar("T")

FromDict = Callable[[dict[str, Any], int | None], T]
ToDict = Callable[[T], dict[str, Any]]
FastWrite = Callable[[T], bytes | None]


class FastReader(Protocol[T]):
    """Reads common Avro bodies faster than fastavro, or declines (None); learns from
    records the general path read."""

    def read(self, value: bytes, record_ts: int | None) -> T | None: ...

    def learn(self, value: bytes, record: T) -> None: ...


_JSON_WHITESPACE = b" \t\r\n"
# First bytes of JSON texts: '{' is an object; the others start values we refuse, but
# parsing them gives the most precise message ("must be an object, got list").
_JSON_START = frozenset(b'{["-0123456789tfn')


class WireDecoder(Generic[T]):
    """Decodes Avro (Confluent framing) or JSON values, told apart by the first byte.

    Without a registry, Avro values must carry ``local_id``; with one, the id is looked
    up there and the writer schema resolved against ``schema``.
    """

    def __init__(
        self,
        *,
        schema: ParsedSchema,
        local_id: int | None,
        registry_schemas: RegistryWriterSchemas | None,
        from_avro: FromDict[T],
        from_json: FromDict[T],
        fast: FastReader[T] | None = None,
    ) -> None:
        if (local_id is None) == (registry_schemas is None):
            raise SerdeError("give exactly one of local_id and registry_schemas")
        # Only bodies written with our own schema (the local id) take the fast path.
        self._fast = fast if local_id is not None else None
        self._schema = schema
        self._local_header = frame_header(local_id) if local_id is not None else None
        self._registry_schemas = registry_schemas
        self._from_avro = from_avro
        self._from_json = from_json

    def decode(self, value: bytes | None, record_ts: int | None) -> T:
        if value is None:
            raise DecodeError("record has no value (null)")
        if not value:
            raise DecodeError("record value is empty")
        first = value[0]
        if first == 0:
            fast = self._fast
            if fast is None or value[:5] != self._local_header:
                return self._from_avro(self._read_avro(value), record_ts)
            record = fast.read(value, record_ts)
            if record is None:
                record = self._from_avro(self._read_avro(value), record_ts)
                fast.learn(value, record)
            return record
        if first == 0x7B:
            return self._from_json(loads_object(value), record_ts)
        where = "first byte"
        if first in _JSON_WHITESPACE:
            stripped = value.lstrip(_JSON_WHITESPACE)
            if not stripped:
                raise DecodeError("record value is only whitespace")
            first = stripped[0]
            where = "first byte after whitespace"
        if first in _JSON_START:
            return self._from_json(loads_object(value), record_ts)
        raise DecodeError(
            f"unrecognised value format: {where} 0x{first:02x} is neither the Avro "
            "magic byte 0x00 nor the '{' of a JSON object"
        )

    def _read_avro(self, value: bytes) -> Any:
        if self._registry_schemas is None:
            if value[:5] == self._local_header:
                return read_body(value, self._schema, None)
            raise DecodeError(f"unknown schema id {framed_schema_id(value)}")
        writer, reader = self._registry_schemas.lookup(framed_schema_id(value))
        return read_body(value, writer, reader)


class AvroEncoder(Generic[T]):
    """Encodes records as framed Avro under one schema id."""

    format = "avro"

    def __init__(
        self, writer: AvroBodyWriter, to_dict: ToDict[T], fast: FastWrite[T] | None = None
    ) -> None:
        self._write = writer.write
        self._to_dict = to_dict
        self._fast = fast
        self.schema_id = writer.schema_id

    def encode(self, obj: T) -> bytes:
        fast = self._fast
        if fast is not None:
            value = fast(obj)
            if value is not None:
                return value
        return self._write(self._to_dict(obj))


class JsonEncoder(Generic[T]):
    """Encodes records as compact UTF-8 JSON objects."""

    format = "json"
    schema_id = None

    def __init__(self, to_dict: ToDict[T], *, allow_nan: bool) -> None:
        self._to_dict = to_dict
        self._allow_nan = allow_nan

    def encode(self, obj: T) -> bytes:
        return dumps(self._to_dict(obj), allow_nan=self._allow_nan)
