"""topics/topics.yaml loads, and every broken spec names its topic and key."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamserve.errors import StreamserveError
from streamserve.topics import (
    REQUIRED_TOPICS,
    TopicSpec,
    TopicSpecError,
    default_topics_dir,
    load_topic_specs,
)

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"


def test_repository_topics_load() -> None:
    specs = load_topic_specs(REPO_TOPICS)

    assert set(REQUIRED_TOPICS) <= set(specs)
    assert {name: spec.partitions for name, spec in specs.items()} == {
        "events": 4,
        "feedback": 4,
        "predictions": 4,
        "shadow-predictions": 4,
        "examples": 4,
        "drift-alerts": 1,
        "dead-letter": 1,
    }
    assert all(spec.replication_factor == 1 for spec in specs.values())
    assert all(spec.cleanup_policy == "delete" for spec in specs.values())
    events = specs["events"]
    assert isinstance(events, TopicSpec)
    assert events.name == "events"
    assert events.key == "event_id"
    assert events.value_schema == "event.avsc"
    assert events.config["retention.ms"] == "604800000"
    assert specs["feedback"].value_schema == "label.avsc"
    assert specs["drift-alerts"].value_schema == "drift_alert.avsc"
    dead_letter = specs["dead-letter"]
    assert dead_letter.value_schema is None
    assert dead_letter.schema_id is None


def test_schema_ids_are_unique_per_schema_file() -> None:
    specs = load_topic_specs(REPO_TOPICS)
    ids = {spec.value_schema: spec.schema_id for spec in specs.values() if spec.value_schema}
    assert len(set(ids.values())) == len(ids) == 5
    assert all(isinstance(schema_id, int) and schema_id > 0 for schema_id in ids.values())


def test_spec_config_is_read_only() -> None:
    spec = load_topic_specs(REPO_TOPICS)["events"]
    with pytest.raises(TypeError):
        spec.config["retention.ms"] = "1"  # type: ignore[index]


def test_default_topics_dir_is_the_repository_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMSERVE_TOPICS_DIR", raising=False)
    assert default_topics_dir() == REPO_TOPICS


def test_default_topics_dir_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STREAMSERVE_TOPICS_DIR", str(tmp_path))
    assert default_topics_dir() == tmp_path


def _spec_dir(tmp_path: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the repository's topics directory with topics.yaml mutated."""
    for schema in REPO_TOPICS.glob("*.avsc"):
        shutil.copy(schema, tmp_path / schema.name)
    document = yaml.safe_load((REPO_TOPICS / "topics.yaml").read_text(encoding="utf-8"))
    mutate(document)
    (tmp_path / "topics.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return tmp_path


def _set(topic: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        document["topics"][topic][key] = value

    return mutate


def _delete(topic: str, key: str | None = None) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        if key is None:
            del document["topics"][topic]
        else:
            del document["topics"][topic][key]

    return mutate


BROKEN_SPECS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_set("events", "partitions", 0), "events.partitions: must be a positive integer"),
    (_set("events", "partitions", "4"), "events.partitions: must be a positive integer"),
    (_set("events", "partitions", True), "events.partitions: must be a positive integer"),
    (
        _set("feedback", "replication_factor", -1),
        "feedback.replication_factor: must be a positive integer",
    ),
    (_set("predictions", "key", ""), "predictions.key: must be a non-empty string"),
    (_set("examples", "cleanup_policy", "forever"), "examples.cleanup_policy: must be"),
    (_set("events", "config", ["retention.ms"]), "events.config: must be a mapping"),
    (
        _set("events", "config", {"retention.ms": 604800000}),
        "events.config.retention.ms: value must be a string",
    ),
    (
        _set("events", "config", {"cleanup.policy": "compact"}),
        "events.config.cleanup.policy: set the topic's 'cleanup_policy' instead",
    ),
    (_set("events", "value_schema", "missing.avsc"), "events.value_schema: schema file"),
    (_set("events", "value_schema", "../event.avsc"), "events.value_schema: must be null"),
    (_set("events", "schema_id", 0), "events.schema_id: must be an integer between 1"),
    (_set("events", "schema_id", None), "events.schema_id: must be an integer between 1"),
    (_set("events", "schema_id", 2), "feedback.schema_id: id 2 is already used by event.avsc"),
    (_set("dead-letter", "schema_id", 9), "dead-letter.schema_id: must be null"),
    (_set("events", "retention", "1d"), "events.retention: unknown key"),
    (_delete("events", "key"), "events.key: missing"),
    (_delete("drift-alerts"), "topics.drift-alerts: missing"),
]


@pytest.mark.parametrize(("mutate", "message"), BROKEN_SPECS)
def test_broken_spec_names_topic_and_key(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    topics_dir = _spec_dir(tmp_path, mutate)
    with pytest.raises(TopicSpecError) as caught:
        load_topic_specs(topics_dir)
    assert str(caught.value).startswith("topics.yaml: ")
    assert message in str(caught.value)
    assert isinstance(caught.value, StreamserveError)


def test_same_schema_file_needs_the_same_id(tmp_path: Path) -> None:
    def mutate(document: dict[str, Any]) -> None:
        extra = dict(document["topics"]["events"])
        extra["schema_id"] = 99
        document["topics"]["events-replay"] = extra

    with pytest.raises(TopicSpecError, match=r"events-replay\.schema_id: event\.avsc already has"):
        load_topic_specs(_spec_dir(tmp_path, mutate))


def test_extra_topics_are_allowed(tmp_path: Path) -> None:
    def mutate(document: dict[str, Any]) -> None:
        document["topics"]["audit"] = dict(document["topics"]["dead-letter"])

    specs = load_topic_specs(_spec_dir(tmp_path, mutate))
    assert specs["audit"].partitions == 1


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    (tmp_path / "topics.yaml").write_text("topics: [unclosed\n", encoding="utf-8")
    with pytest.raises(TopicSpecError, match=r"topics\.yaml: invalid YAML"):
        load_topic_specs(tmp_path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(TopicSpecError, match=r"topics\.yaml: cannot read"):
        load_topic_specs(tmp_path)


def test_top_level_must_hold_topics(tmp_path: Path) -> None:
    (tmp_path / "topics.yaml").write_text("- events\n", encoding="utf-8")
    with pytest.raises(TopicSpecError, match="top level: must be a mapping"):
        load_topic_specs(tmp_path)
    (tmp_path / "topics.yaml").write_text("topics: {}\nversion: 2\n", encoding="utf-8")
    with pytest.raises(TopicSpecError, match="version: unknown top-level key"):
        load_topic_specs(tmp_path)
