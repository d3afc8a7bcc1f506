"""The serde facade the roles use: one decoder or encoder per record kind and topic."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from streamserve.records import Example, Label, Prediction
from streamserve.serde.avro import AvroBodyWriter, RegistryWriterSchemas, frame_header
from streamserve.serde.exceptions import DecodeError, SerdeError
from streamserve.serde.fast.records import EventLayouts, ExampleLayouts, PredictionWriter
from streamserve.serde.outbound import alert_to_dict, example_to_dict, prediction_to_dict
from streamserve.serde.registry import SchemaRegistryClient
from streamserve.serde.schemas import ParsedSchema, SchemaCatalog
from streamserve.serde.validate import (
    RecordShape,
    event_from_avro,
    event_from_json,
    example_from_avro,
    example_from_json,
    label_from_avro,
    label_from_json,
    prediction_from_avro,
    prediction_from_json,
)
from streamserve.serde.wire import (
    AvroEncoder,
    EventDecoder,
    ExampleDecoder,
    FastReader,
    FastWrite,
    FromDict,
    JsonEncoder,
    PredictionEncoder,
    ToDict,
    WireDecoder,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)

OutputFormat = Literal["avro", "json"]


class Decoder(Protocol[T_co]):
    def decode(self, value: bytes | None, record_ts: int | None) -> T_co:
        """Decode one Kafka record value; ``record_ts`` is its timestamp (epoch ms).

        Raises DecodeError when the record is bad (send it to dead-letter), and
        RegistryError when a configured schema registry cannot answer (transient;
        the record is not at fault).
        """
        ...


class Encoder(Protocol[T_contra]):
    def encode(self, obj: T_contra) -> bytes:
        """Encode one record value; raises EncodeError when it does not fit the schema."""
        ...


@dataclass(frozen=True, slots=True)
class _Kind:
    schema: str  # schema name in the catalog (the .avsc file stem)
    topic: str  # logical topic the records travel on


_EVENT = _Kind("event", "events")
_LABEL = _Kind("label", "feedback")
_PREDICTION = _Kind("prediction", "predictions")
_EXAMPLE = _Kind("example", "examples")
_ALERT = _Kind("drift_alert", "drift-alerts")


class Serde:
    """Builds decoders and encoders for every record kind.

    ``topic_names`` maps logical topic names to physical ones (when a prefix is
    applied); with a ``registry`` each encoder registers its schema under subject
    ``"<physical topic>-value"`` when it is created (so misconfiguration fails fast)
    and decoders resolve the ids they meet through the registry.
    """

    def __init__(
        self,
        catalog: SchemaCatalog,
        *,
        output_format: OutputFormat = "avro",
        registry: SchemaRegistryClient | None = None,
        topic_names: Mapping[str, str] | None = None,
    ) -> None:
        if output_format not in ("avro", "json"):
            raise SerdeError(f"output_format must be 'avro' or 'json', got {output_format!r}")
        self._catalog = catalog
        self._output_format = output_format
        self._registry = registry
        self._topic_names = dict(topic_names or {})
        self._alert_shape = RecordShape(catalog.schema(_ALERT.schema), "drift alert")

    @property
    def output_format(self) -> OutputFormat:
        return self._output_format

    def event_decoder(self) -> EventDecoder:
        """Events, per record (``decode``) or a batch at once (``read_columns``)."""
        schema, local_id, writers = self._schemas(_EVENT)
        return EventDecoder(
            schema=schema,
            local_id=local_id,
            registry_schemas=writers,
            from_avro=event_from_avro,
            from_json=event_from_json,
            layouts=EventLayouts() if local_id is not None else None,
        )

    def label_decoder(self) -> Decoder[Label]:
        return self._decoder(_LABEL, label_from_avro, label_from_json)

    def example_decoder(self) -> ExampleDecoder:
        """Examples, per record (``decode``) or a batch at once (``read_examples``)."""
        schema, local_id, writers = self._schemas(_EXAMPLE)
        return ExampleDecoder(
            schema=schema,
            local_id=local_id,
            registry_schemas=writers,
            from_avro=example_from_avro,
            from_json=example_from_json,
            layouts=ExampleLayouts() if local_id is not None else None,
        )

    def prediction_decoder(self) -> Decoder[Prediction]:
        return self._decoder(_PREDICTION, prediction_from_avro, prediction_from_json)

    def alert_decoder(self) -> Decoder[dict[str, Any]]:
        return self._decoder(_ALERT, _alert_from_avro, self._alert_from_json)

    def prediction_encoder(self) -> Encoder[Prediction]:
        """Predictions; the Avro encoder also writes batches (``write_columns``)."""
        if self._output_format == "json":
            return JsonEncoder(partial(prediction_to_dict, finite_only=True), allow_nan=False)
        schema_id = self._schema_id(_PREDICTION)
        header = frame_header(schema_id)
        return PredictionEncoder(
            AvroBodyWriter(self._catalog.schema(_PREDICTION.schema), schema_id),
            partial(prediction_to_dict, finite_only=False),
            PredictionWriter(header).write,
            header,
        )

    def example_encoder(self) -> Encoder[Example]:
        # Features may legitimately be NaN/inf; in JSON they are written as NaN/Infinity
        # tokens, which our decoders (json.loads) read back unchanged.
        return self._encoder(_EXAMPLE, example_to_dict, example_to_dict, allow_nan=True)

    def alert_encoder(self) -> Encoder[Mapping[str, Any]]:
        shape = self._alert_shape
        return self._encoder(
            _ALERT,
            partial(alert_to_dict, shape=shape, finite_only=False),
            partial(alert_to_dict, shape=shape, finite_only=True),
            allow_nan=False,
        )

    def subject_for(self, topic: str) -> str:
        """The registry subject of a logical topic's values."""
        return f"{self._topic_names.get(topic, topic)}-value"

    def _decoder(
        self,
        kind: _Kind,
        from_avro: FromDict[T],
        from_json: FromDict[T],
        fast: FastReader[T] | None = None,
    ) -> Decoder[T]:
        schema, local_id, writers = self._schemas(kind)
        return WireDecoder(
            schema=schema,
            local_id=local_id,
            registry_schemas=writers,
            from_avro=from_avro,
            from_json=from_json,
            fast=fast,
        )

    def _schemas(
        self, kind: _Kind
    ) -> tuple[ParsedSchema, int | None, RegistryWriterSchemas | None]:
        """A decoder's reader schema and, exclusively, its local id (no registry) or the
        registry's writer schemas."""
        schema = self._catalog.schema(kind.schema)
        if self._registry is None:
            return schema, self._catalog.local_id(kind.schema), None
        writers = RegistryWriterSchemas(
            self._registry, schema, self._catalog.canonical_form(kind.schema)
        )
        return schema, None, writers

    def _encoder(
        self,
        kind: _Kind,
        to_avro: ToDict[T],
        to_json: ToDict[T],
        *,
        allow_nan: bool,
        fast: Callable[[bytes], FastWrite[T]] | None = None,
    ) -> Encoder[T]:
        if self._output_format == "json":
            return JsonEncoder(to_json, allow_nan=allow_nan)
        schema_id = self._schema_id(kind)
        writer = AvroBodyWriter(self._catalog.schema(kind.schema), schema_id)
        return AvroEncoder(writer, to_avro, fast(frame_header(schema_id)) if fast else None)

    def _schema_id(self, kind: _Kind) -> int:
        """The local id, or the id the registry gives when the schema is registered."""
        if self._registry is None:
            return self._catalog.local_id(kind.schema)
        subject = self.subject_for(kind.topic)
        return self._registry.register(subject, self._catalog.schema_json(kind.schema))

    def _alert_from_json(self, obj: dict[str, Any], record_ts: int | None) -> dict[str, Any]:
        return self._alert_shape.record(obj, DecodeError)


def _alert_from_avro(record: dict[str, Any], record_ts: int | None) -> dict[str, Any]:
    return record
