"""The serde facade the roles use: one decoder or encoder per record kind and topic."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from streamserve.records import Event, Example, Label, Prediction
from streamserve.serde.avro import AvroBodyWriter, RegistryWriterSchemas, frame_header
from streamserve.serde.exceptions import DecodeError, SerdeError
from streamserve.serde.fast.event_columns import AvroEventColumnsReader
from streamserve.serde.fast.example_rows import AvroExampleRowsReader
from streamserve.serde.fast.fit import fits
from streamserve.serde.fast.json_events import FirstFormatReader, JsonEventColumnsReader
from streamserve.serde.fast.layouts import EventLayouts, ExampleLayouts
from streamserve.serde.fast.prediction_columns import PredictionColumnsWriter
from streamserve.serde.fast.prediction_json import JsonPredictionColumnsWriter
from streamserve.serde.fast.prediction_writer import PredictionWriter
from streamserve.serde.fast.protocols import (
    EventBatchDecoder,
    ExampleBatchDecoder,
    PredictionBatchEncoder,
)
from streamserve.serde.outbound import (
    alert_to_dict,
    event_to_dict,
    example_to_dict,
    label_to_dict,
    prediction_to_dict,
)
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
    FastReader,
    FastWrite,
    FromDict,
    JsonEncoder,
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

    def event_decoder(self) -> Decoder[Event]:
        return self.event_decoders()[0]

    def event_decoders(self) -> tuple[Decoder[Event], EventBatchDecoder]:
        """Events per record, and a whole batch at once: JSON batches always, Avro ones
        when the fast codecs fit (no registry, the bundled event schema); both decoders
        share what the fast path learned."""
        if not self._fast_fits(_EVENT):
            decoder = self._decoder(_EVENT, event_from_avro, event_from_json)
            return decoder, FirstFormatReader(None, JsonEventColumnsReader())
        layouts = EventLayouts()
        decoder = self._decoder(_EVENT, event_from_avro, event_from_json, layouts)
        avro = AvroEventColumnsReader(self._local_header(_EVENT), layouts)
        return decoder, FirstFormatReader(avro, JsonEventColumnsReader())

    def label_decoder(self) -> Decoder[Label]:
        return self._decoder(_LABEL, label_from_avro, label_from_json)

    def example_decoder(self) -> Decoder[Example]:
        return self.example_decoders()[0]

    def example_decoders(self) -> tuple[Decoder[Example], ExampleBatchDecoder | None]:
        """Examples per record, and a whole batch at once when the fast codecs fit."""
        if not self._fast_fits(_EXAMPLE):
            return self._decoder(_EXAMPLE, example_from_avro, example_from_json), None
        layouts = ExampleLayouts()
        decoder = self._decoder(_EXAMPLE, example_from_avro, example_from_json, layouts)
        return decoder, AvroExampleRowsReader(self._local_header(_EXAMPLE), layouts)

    def prediction_decoder(self) -> Decoder[Prediction]:
        return self._decoder(_PREDICTION, prediction_from_avro, prediction_from_json)

    def alert_decoder(self) -> Decoder[dict[str, Any]]:
        return self._decoder(_ALERT, _alert_from_avro, self._alert_from_json)

    def prediction_encoder(self) -> Encoder[Prediction]:
        return self.prediction_encoders()[0]

    def prediction_encoders(self) -> tuple[Encoder[Prediction], PredictionBatchEncoder | None]:
        """Predictions per record, and a whole batch read as columns at once when the
        output is Avro with the bundled prediction schema."""
        if self._output_format == "json":
            encoder = JsonEncoder(partial(prediction_to_dict, finite_only=True), allow_nan=False)
            return encoder, JsonPredictionColumnsWriter()
        schema_id = self._schema_id(_PREDICTION)
        writer = AvroBodyWriter(self._catalog.schema(_PREDICTION.schema), schema_id)
        to_dict = partial(prediction_to_dict, finite_only=False)
        if not fits(self._catalog, _PREDICTION.schema):
            return AvroEncoder(writer, to_dict), None
        header = frame_header(schema_id)
        fast = AvroEncoder(writer, to_dict, PredictionWriter(header).write)
        return fast, PredictionColumnsWriter(header)

    def example_encoder(self) -> Encoder[Example]:
        # Features may legitimately be NaN/inf; in JSON they are written as NaN/Infinity
        # tokens, which our decoders (json.loads) read back unchanged.
        return self._encoder(_EXAMPLE, example_to_dict, example_to_dict, allow_nan=True)

    def event_encoder(self) -> Encoder[Event]:
        """Events as a producer writes them (the API, for requests that carry an id)."""
        return self._encoder(_EVENT, event_to_dict, event_to_dict, allow_nan=True)

    def label_encoder(self) -> Encoder[Label]:
        """Labels as a producer writes them to ``feedback``."""
        return self._encoder(_LABEL, label_to_dict, label_to_dict, allow_nan=False)

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

    def _fast_fits(self, kind: _Kind) -> bool:
        """Whether records of ``kind`` may take the fast readers: framed with the local
        id (no registry) in the schema the fast codecs were written for."""
        return self._registry is None and fits(self._catalog, kind.schema)

    def _local_header(self, kind: _Kind) -> bytes:
        return frame_header(self._catalog.local_id(kind.schema))

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
