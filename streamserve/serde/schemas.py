"""The Avro schemas in ``topics/``, parsed once, with their local ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import SchemaParseException, to_parsing_canonical_form

from streamserve.serde.exceptions import SchemaError
from streamserve.topics import TopicSpec, default_topics_dir, load_topic_specs

logger = logging.getLogger(__name__)

#: A schema as returned by ``fastavro.parse_schema`` for a record.
ParsedSchema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    parsed: ParsedSchema
    schema_json: str
    canonical_form: str
    local_id: int | None


class SchemaCatalog:
    """Every ``.avsc`` file of the topics directory, keyed by file stem ("event", ...).

    Build it with :meth:`load`; lookups are dictionary reads.
    """

    def __init__(self, entries: Mapping[str, _Entry], topic_schemas: Mapping[str, str]) -> None:
        self._entries = dict(entries)
        self._topic_schemas = dict(topic_schemas)
        self._by_local_id = {
            entry.local_id: entry.name for entry in entries.values() if entry.local_id is not None
        }

    @classmethod
    def from_dir(cls, topics_dir: Path | None = None) -> SchemaCatalog:
        """The schemas of a topics directory (``topics.yaml`` and its ``.avsc`` files);
        the bundled one (:func:`~streamserve.topics.default_topics_dir`) by default."""
        topics_dir = topics_dir or default_topics_dir()
        return cls.load(topics_dir, load_topic_specs(topics_dir))

    @classmethod
    def load(cls, topics_dir: Path, specs: Mapping[str, TopicSpec]) -> SchemaCatalog:
        """Parse every ``*.avsc`` in ``topics_dir``; local ids come from the topic specs."""
        ids: dict[str, int] = {}
        topic_schemas: dict[str, str] = {}
        for spec in specs.values():
            if spec.value_schema is None:
                continue
            stem = Path(spec.value_schema).stem
            topic_schemas[spec.name] = stem
            if spec.schema_id is not None:
                ids[stem] = spec.schema_id
        try:
            files = sorted(topics_dir.glob("*.avsc"))
        except OSError as exc:
            raise SchemaError(f"cannot list schemas in {topics_dir}: {exc.strerror}") from exc
        entries = {path.stem: _load_file(path, ids.get(path.stem)) for path in files}
        for topic, stem in topic_schemas.items():
            if stem not in entries:
                raise SchemaError(
                    f"topic {topic}: schema file {stem}.avsc not found in {topics_dir}"
                )
        logger.debug("loaded %d Avro schemas from %s", len(entries), topics_dir)
        return cls(entries, topic_schemas)

    def names(self) -> list[str]:
        """The schema names, sorted."""
        return sorted(self._entries)

    def schema(self, name: str) -> ParsedSchema:
        """The parsed schema, ready for fastavro's readers and writers."""
        return self._entry(name).parsed

    def schema_json(self, name: str) -> str:
        """The schema as compact JSON (docs and defaults kept), to register."""
        return self._entry(name).schema_json

    def canonical_form(self, name: str) -> str:
        """The Avro Parsing Canonical Form, to compare with a writer's schema."""
        return self._entry(name).canonical_form

    def local_id(self, name: str) -> int:
        """The id framed into records when no schema registry is configured."""
        local_id = self._entry(name).local_id
        if local_id is None:
            raise SchemaError(f"schema {name!r} has no schema_id in topics.yaml")
        return local_id

    def name_for_local_id(self, schema_id: int) -> str | None:
        """The schema with that local id, or None."""
        return self._by_local_id.get(schema_id)

    def schema_for_topic(self, topic: str) -> str | None:
        """The name of a logical topic's value schema, or None."""
        return self._topic_schemas.get(topic)

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise SchemaError(f"unknown schema {name!r} (known: {', '.join(self.names())})")
        return entry


def _load_file(path: Path, local_id: int | None) -> _Entry:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError(f"{path.name}: cannot read: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path.name}: not valid JSON: {exc}") from exc
    try:
        parsed = parse_schema(raw)
        canonical = to_parsing_canonical_form(parsed)
    except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SchemaError(f"{path.name}: invalid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise SchemaError(f"{path.name}: top-level type must be an Avro record")
    return _Entry(
        name=path.stem,
        parsed=parsed,
        schema_json=json.dumps(raw, separators=(",", ":"), ensure_ascii=False),
        canonical_form=canonical,
        local_id=local_id,
    )
