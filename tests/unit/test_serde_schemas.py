"""SchemaCatalog: every .avsc parsed once, with local ids from topics.yaml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streamserve.serde import SchemaCatalog, SchemaError
from streamserve.topics import load_topic_specs

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir(REPO_TOPICS)


def test_catalog_holds_every_schema_file(catalog: SchemaCatalog) -> None:
    assert catalog.names() == ["drift_alert", "event", "example", "label", "prediction"]
    for name in catalog.names():
        parsed = catalog.schema(name)
        assert parsed["type"] == "record"
        assert parsed["name"].startswith("streamserve.")


def test_local_ids_follow_topics_yaml(catalog: SchemaCatalog) -> None:
    specs = load_topic_specs(REPO_TOPICS)
    for spec in specs.values():
        if spec.value_schema is None:
            continue
        name = Path(spec.value_schema).stem
        assert catalog.local_id(name) == spec.schema_id
        assert catalog.name_for_local_id(catalog.local_id(name)) == name
        assert catalog.schema_for_topic(spec.name) == name
    assert catalog.name_for_local_id(424242) is None
    assert catalog.schema_for_topic("dead-letter") is None


def test_schema_json_keeps_docs_and_defaults(catalog: SchemaCatalog) -> None:
    raw = json.loads(catalog.schema_json("event"))
    assert raw["namespace"] == "streamserve"
    assert [field["name"] for field in raw["fields"]] == ["event_id", "ts", "features"]
    assert raw["fields"][1]["default"] is None
    assert raw["fields"][0]["doc"].startswith("Unique id of the event")
    compact = catalog.schema_json("event")
    assert "\n" not in compact
    assert '", "' not in compact
    assert '": ' not in compact


@pytest.mark.parametrize("name", ["drift_alert", "event", "example", "label", "prediction"])
def test_every_field_is_documented(catalog: SchemaCatalog, name: str) -> None:
    raw = json.loads(catalog.schema_json(name))
    assert raw.get("doc")
    undocumented = [field["name"] for field in raw["fields"] if not field.get("doc")]
    assert undocumented == []


def test_schema_fields_match_the_records(catalog: SchemaCatalog) -> None:
    def fields(name: str) -> list[str]:
        return [field["name"] for field in json.loads(catalog.schema_json(name))["fields"]]

    assert fields("label") == ["event_id", "label", "ts"]
    assert fields("example") == ["event_id", "features", "label", "event_ts", "label_ts"]
    assert fields("prediction") == [
        "event_id",
        "model",
        "model_version",
        "prediction",
        "probabilities",
        "score",
        "ts",
        "scored_at",
        "decision",
        "decision_version",
        "role",
        "arm",
        "metrics",
    ]
    assert fields("drift_alert") == [
        "model",
        "model_version",
        "detector",
        "signal",
        "severity",
        "statistic",
        "offset",
        "ts",
        "action",
        "action_version",
        "details",
    ]


def test_canonical_form_drops_docs(catalog: SchemaCatalog) -> None:
    canonical = catalog.canonical_form("event")
    assert '"doc"' not in canonical
    assert canonical.startswith('{"name":"streamserve.Event"')


def test_unknown_schema_name(catalog: SchemaCatalog) -> None:
    with pytest.raises(SchemaError, match="unknown schema 'nope'"):
        catalog.schema("nope")


def _copy_topics(tmp_path: Path) -> Path:
    for path in REPO_TOPICS.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_invalid_schema_file_is_named(tmp_path: Path) -> None:
    topics_dir = _copy_topics(tmp_path)
    specs = load_topic_specs(topics_dir)
    (topics_dir / "label.avsc").write_text(
        '{"type": "record", "name": "Label", "fields": [{"name": "x", "type": "nosuch"}]}',
        encoding="utf-8",
    )
    with pytest.raises(SchemaError, match=r"label\.avsc: invalid Avro schema"):
        SchemaCatalog.load(topics_dir, specs)


def test_non_json_schema_file_is_named(tmp_path: Path) -> None:
    topics_dir = _copy_topics(tmp_path)
    specs = load_topic_specs(topics_dir)
    (topics_dir / "event.avsc").write_text("{not json", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"event\.avsc: not valid JSON"):
        SchemaCatalog.load(topics_dir, specs)


def test_non_record_schema_is_refused(tmp_path: Path) -> None:
    topics_dir = _copy_topics(tmp_path)
    specs = load_topic_specs(topics_dir)
    (topics_dir / "event.avsc").write_text('"string"', encoding="utf-8")
    with pytest.raises(SchemaError, match=r"event\.avsc: top-level type must be an Avro record"):
        SchemaCatalog.load(topics_dir, specs)


def test_schema_referenced_by_a_topic_must_exist(tmp_path: Path) -> None:
    topics_dir = _copy_topics(tmp_path)
    specs = load_topic_specs(topics_dir)
    (topics_dir / "prediction.avsc").unlink()
    with pytest.raises(SchemaError, match=r"topic predictions: schema file prediction\.avsc"):
        SchemaCatalog.load(topics_dir, specs)
