"""Read streamserve's ``predictions`` topic from your own consumer.

A deserializer in confluent-kafka's ``(value, ctx)`` style: give it to a
``DeserializingConsumer`` as ``value.deserializer``, or call it on any Kafka client's
record value. It reads every format the scorers write: Avro in the Confluent wire format
(magic byte 0, 4-byte schema id, Avro body) and JSON, told apart by the first byte. Avro
schema ids are those of the schemas shipped with this package (``topics/``) unless the
service writes through a schema registry; then give the same registry here. A value
that is not a prediction raises :class:`DecodeError`; ``None`` (a tombstone) gives
``None``.

::

    from confluent_kafka import DeserializingConsumer
    from streamserve.client import PredictionDeserializer

    consumer = DeserializingConsumer({
        "bootstrap.servers": "localhost:9092",
        "group.id": "my-app",
        "value.deserializer": PredictionDeserializer(),  # schema_registry_url=... if used
    })
    consumer.subscribe(["predictions"])
    prediction = consumer.poll(1.0).value()  # Prediction(event_id=..., model_version=...)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from streamserve.records import Prediction
from streamserve.serde.codecs import Serde
from streamserve.serde.exceptions import DecodeError, RegistryError
from streamserve.serde.registry import SchemaRegistryClient
from streamserve.serde.schemas import SchemaCatalog

__all__ = ["DecodeError", "Prediction", "PredictionDeserializer", "RegistryError"]


class PredictionDeserializer:
    """``deserializer(value, ctx)`` -> :class:`Prediction` (or a dict with ``as_dict``).

    ``Prediction`` is a frozen dataclass: ``event_id``, ``model``, ``model_version``,
    ``prediction`` (class or value, None before the model could predict),
    ``probabilities`` (class name -> probability, classifiers only), ``score``, ``ts``
    (the event's time) and ``scored_at`` (both epoch milliseconds).

    ``schema_registry_url`` (with ``registry_username``/``registry_password`` for basic
    auth): the Confluent-compatible registry the service writes through; Avro schema ids
    are then looked up there (once each) and resolved against the bundled schema.
    ``topics_dir``: a directory holding ``topics.yaml`` and the ``.avsc`` files, when the
    service runs with its own (``serde.topics_dir``).
    """

    def __init__(
        self,
        *,
        schema_registry_url: str | None = None,
        registry_username: str | None = None,
        registry_password: str | None = None,
        topics_dir: str | Path | None = None,
        as_dict: bool = False,
    ) -> None:
        catalog = SchemaCatalog.from_dir(Path(topics_dir) if topics_dir is not None else None)
        registry = None
        if schema_registry_url is not None:
            registry = SchemaRegistryClient(
                schema_registry_url, username=registry_username, password=registry_password
            )
        self._decode = Serde(catalog, registry=registry).prediction_decoder().decode
        self._as_dict = as_dict

    def __call__(self, value: bytes | None, ctx: Any = None) -> Prediction | dict[str, Any] | None:
        """Decode one record value; ``ctx`` (a ``SerializationContext``) is not needed."""
        if value is None:
            return None
        prediction = self._decode(value, None)
        return dataclasses.asdict(prediction) if self._as_dict else prediction
