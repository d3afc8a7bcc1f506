"""Topics as code: load and validate ``topics/topics.yaml``.

The file declares every logical topic (name, partitions, key, cleanup policy, extra
configs, value schema and its local schema id). Loading validates every field and
names the offending topic and key in the error.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from streamserve.errors import ReasonConfigError

logger = logging.getLogger(__name__)

TOPICS_FILE = "topics.yaml"
TOPICS_DIR_ENV = "STREAMSERVE_TOPICS_DIR"

#: The logical topics the roles use; topics.yaml must declare each of them.
REQUIRED_TOPICS = ("events", "feedback", "predictions", "examples", "drift-alerts", "dead-letter")

_TOPIC_KEYS = frozenset(
    {
        "partitions",
        "replication_factor",
        "key",
        "cleanup_policy",
        "config",
        "value_schema",
        "schema_id",
    }
)
_CLEANUP_POLICIES = frozenset({"delete", "compact", "compact,delete", "delete,compact"})
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_CONFIG_NAME = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")
_SCHEMA_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.avsc$")
_MAX_SCHEMA_ID = 2**31 - 1


class TopicSpecError(ReasonConfigError):
    """topics.yaml (or a file it names) is missing or invalid: a config error under
    ``serde.topics_dir``, where the file is found."""

    default_key = "serde.topics_dir"


@dataclass(frozen=True)
class TopicSpec:
    """One logical topic as declared in topics.yaml."""

    name: str
    partitions: int
    replication_factor: int
    key: str
    cleanup_policy: str
    config: Mapping[str, str]
    value_schema: str | None
    schema_id: int | None


def default_topics_dir() -> Path:
    """``$STREAMSERVE_TOPICS_DIR`` if set, else the bundled ``topics/``.

    ``topics/`` at the repository's root is the only copy. ``streamserve/_topics`` is a
    link to it, so a source checkout or an editable install reads it there, and a built
    wheel carries its files as package data (``pyproject.toml``). Where the link is not a
    directory (a checkout without symbolic links) the repository's ``topics/`` is used.
    """
    override = os.environ.get(TOPICS_DIR_ENV)
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent
    bundled = here / "_topics"
    return bundled.resolve() if bundled.is_dir() else here.parent / "topics"


def load_topic_specs(topics_dir: Path) -> dict[str, TopicSpec]:
    """Read ``topics_dir/topics.yaml`` and return the validated specs by logical name."""
    path = topics_dir / TOPICS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopicSpecError(f"{TOPICS_FILE}: cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TopicSpecError(f"{TOPICS_FILE}: not valid UTF-8: {exc.reason}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TopicSpecError(f"{TOPICS_FILE}: invalid YAML: {exc}") from exc
    specs = _parse_document(document, topics_dir)
    _check_schema_ids(specs)
    logger.debug("loaded %d topic specs from %s", len(specs), path)
    return specs


def _fail(where: str, reason: str) -> TopicSpecError:
    return TopicSpecError(f"{TOPICS_FILE}: {where}: {reason}")


def _parse_document(document: Any, topics_dir: Path) -> dict[str, TopicSpec]:
    if not isinstance(document, dict):
        raise _fail("top level", "must be a mapping with a 'topics' key")
    unknown = sorted(str(k) for k in document if k != "topics")
    if unknown:
        raise _fail(unknown[0], "unknown top-level key (expected only 'topics')")
    topics = document.get("topics")
    if not isinstance(topics, dict) or not topics:
        raise _fail("topics", "must be a non-empty mapping of topic name to spec")
    specs: dict[str, TopicSpec] = {}
    for name, body in topics.items():
        if not isinstance(name, str) or not _TOPIC_NAME.match(name):
            raise _fail(
                f"topics.{name}",
                "topic name must be 1-249 characters of letters, digits, '.', '_' or '-'",
            )
        specs[name] = _parse_topic(name, body, topics_dir)
    for required in REQUIRED_TOPICS:
        if required not in specs:
            raise _fail(f"topics.{required}", "missing; every logical topic must be declared")
    return specs


def _parse_topic(name: str, body: Any, topics_dir: Path) -> TopicSpec:
    if not isinstance(body, dict):
        raise _fail(name, "must be a mapping of topic settings")
    for key in body:
        if key not in _TOPIC_KEYS:
            raise _fail(f"{name}.{key}", f"unknown key (allowed: {', '.join(sorted(_TOPIC_KEYS))})")
    for key in sorted(_TOPIC_KEYS):
        if key not in body:
            raise _fail(f"{name}.{key}", "missing")
    value_schema = _value_schema(name, body["value_schema"], topics_dir)
    return TopicSpec(
        name=name,
        partitions=_positive_int(name, "partitions", body["partitions"]),
        replication_factor=_positive_int(name, "replication_factor", body["replication_factor"]),
        key=_non_empty_str(name, "key", body["key"]),
        cleanup_policy=_cleanup_policy(name, body["cleanup_policy"]),
        config=_config(name, body["config"]),
        value_schema=value_schema,
        schema_id=_schema_id(name, body["schema_id"], value_schema),
    )


def _positive_int(topic: str, key: str, value: Any) -> int:
    if type(value) is not int or value < 1:
        raise _fail(f"{topic}.{key}", "must be a positive integer")
    return value


def _non_empty_str(topic: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{topic}.{key}", "must be a non-empty string")
    return value


def _cleanup_policy(topic: str, value: Any) -> str:
    if not isinstance(value, str) or value.replace(" ", "") not in _CLEANUP_POLICIES:
        raise _fail(f"{topic}.cleanup_policy", "must be 'delete', 'compact' or 'compact,delete'")
    return value.replace(" ", "")


def _config(topic: str, value: Any) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise _fail(f"{topic}.config", "must be a mapping of topic config name to string value")
    config: dict[str, str] = {}
    for key, item in value.items():
        where = f"{topic}.config.{key}"
        if not isinstance(key, str) or not _CONFIG_NAME.match(key):
            raise _fail(where, "config name must be a dotted lowercase Kafka config name")
        if key == "cleanup.policy":
            raise _fail(where, "set the topic's 'cleanup_policy' instead")
        if not isinstance(item, str):
            raise _fail(where, "value must be a string (quote it in YAML)")
        config[key] = item
    return MappingProxyType(config)


def _value_schema(topic: str, value: Any, topics_dir: Path) -> str | None:
    if value is None:
        return None
    where = f"{topic}.value_schema"
    if not isinstance(value, str) or not _SCHEMA_FILE.match(value):
        raise _fail(where, "must be null or the name of an .avsc file in the topics directory")
    if not (topics_dir / value).is_file():
        raise _fail(where, f"schema file {value} not found in {topics_dir}")
    return value


def _schema_id(topic: str, value: Any, value_schema: str | None) -> int | None:
    where = f"{topic}.schema_id"
    if value_schema is None:
        if value is not None:
            raise _fail(where, "must be null when value_schema is null")
        return None
    if type(value) is not int or not 1 <= value <= _MAX_SCHEMA_ID:
        raise _fail(where, f"must be an integer between 1 and {_MAX_SCHEMA_ID}")
    return value


def _check_schema_ids(specs: Mapping[str, TopicSpec]) -> None:
    """One id per schema file, and no id shared by two files."""
    id_by_file: dict[str, tuple[int, str]] = {}
    file_by_id: dict[int, str] = {}
    for spec in specs.values():
        if spec.value_schema is None or spec.schema_id is None:
            continue
        seen = id_by_file.get(spec.value_schema)
        if seen is not None and seen[0] != spec.schema_id:
            raise _fail(
                f"{spec.name}.schema_id",
                f"{spec.value_schema} already has id {seen[0]} (topic {seen[1]})",
            )
        other = file_by_id.get(spec.schema_id)
        if other is not None and other != spec.value_schema:
            raise _fail(f"{spec.name}.schema_id", f"id {spec.schema_id} is already used by {other}")
        id_by_file[spec.value_schema] = (spec.schema_id, spec.name)
        file_by_id[spec.schema_id] = spec.value_schema
