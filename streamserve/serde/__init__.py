"""Wire formats: Avro (Confluent framing) and JSON codecs, schema loading, registry.

Typical wiring::

    specs = load_topic_specs(topics_dir)
    catalog = SchemaCatalog.load(topics_dir, specs)
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
