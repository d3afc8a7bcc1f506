"""Wire formats: Avro (Confluent framing) and JSON codecs, schema loading, registry.

Typical wiring::

    catalog = SchemaCatalog.from_dir(topics_dir)  # the bundled topics/ when None
    serde = Serde(catalog, output_format="avro", registry=None)
    decode = serde.event_decoder().decode
"""

from streamserve.serde.codecs import Decoder, Encoder, OutputFormat, Serde
from streamserve.serde.exceptions import (
    DecodeError,
    EncodeError,
    RegistryError,
    SchemaError,
    SerdeError,
)
from streamserve.serde.registry import SchemaRegistryClient
from streamserve.serde.schemas import ParsedSchema, SchemaCatalog

__all__ = [
    "DecodeError",
    "Decoder",
    "EncodeError",
    "Encoder",
    "OutputFormat",
    "ParsedSchema",
    "RegistryError",
    "SchemaCatalog",
    "SchemaError",
    "SchemaRegistryClient",
    "Serde",
    "SerdeError",
]
