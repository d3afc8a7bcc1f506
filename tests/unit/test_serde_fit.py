"""The fast codecs run only on the schemas they were written for; a user's own schemas get
correct bytes from the general codecs."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastavro import parse_schema, schemaless_reader

from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.records import Event, Prediction
from streamserve.serde import SchemaCatalog, Serde
from streamserve.serde.avro import AvroBodyWriter
from streamserve.serde.event_batch import EventBatchReader
from streamserve.serde.fast.fit import WRITTEN_FOR, fits

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"


def _catalog(topics: Path) -> SchemaCatalog:
    return SchemaCatalog.from_dir(topics)


def test_the_fast_codecs_were_written_for_the_bundled_schemas() -> None:
    catalog = _catalog(REPO_TOPICS)
    for name, form in WRITTEN_FOR.items():
        assert catalog.canonical_form(name) == form, f"update the fast codecs for {name}.avsc"
        assert fits(catalog, name)


@pytest.fixture
def own_topics(tmp_path: Path) -> Path:
    """A copy of the bundled topics whose prediction schema puts ``score`` first and has
    one more field, and whose event schema lists the feature types in another order."""
    topics = tmp_path / "topics"
    shutil.copytree(REPO_TOPICS, topics)
    prediction = json.loads((topics / "prediction.avsc").read_text())
    fields = prediction["fields"]
    score = next(f for f in fields if f["name"] == "score")
    fields.remove(score)
    fields.insert(0, score)
    fields.append({"name": "region", "type": "string", "default": "eu"})
    (topics / "prediction.avsc").write_text(json.dumps(prediction))
    event = json.loads((topics / "event.avsc").read_text())
    features = next(f for f in event["fields"] if f["name"] == "features")
    features["type"]["values"] = ["null", "double", "boolean", "long", "string"]
    (topics / "event.avsc").write_text(json.dumps(event))
    return topics


def _read(value: bytes, schema: dict[str, Any]) -> Any:
    return schemaless_reader(io.BytesIO(value[5:]), parse_schema(schema), None)


def test_a_changed_prediction_schema_gets_correct_bytes(own_topics: Path) -> None:
    catalog = _catalog(own_topics)
    assert not fits(catalog, "prediction")
    encoder, batch_encoder = Serde(catalog).prediction_encoders()
    assert batch_encoder is None
    pred = Prediction("e1", "m", 4, True, {"false": 0.25, "true": 0.75}, 0.75, 17, 99)
    record = _read(encoder.encode(pred), json.loads((own_topics / "prediction.avsc").read_text()))
    assert record == {
        "score": 0.75,
        "event_id": "e1",
        "model": "m",
        "model_version": 4,
        "prediction": True,
        "probabilities": {"false": 0.25, "true": 0.75},
        "ts": 17,
        "scored_at": 99,
        "decision": None,
        "decision_version": None,
        "role": None,
        "arm": None,
        "metrics": None,
        "region": "eu",
    }


def test_a_changed_event_schema_is_decoded_by_the_general_decoder(own_topics: Path) -> None:
    catalog = _catalog(own_topics)
    assert not fits(catalog, "event")
    decoder, batch_decoder = Serde(catalog).event_decoders()
    writer = AvroBodyWriter(catalog.schema("event"), catalog.local_id("event"))
    values = [
        writer.write({"event_id": f"e{i}", "ts": i, "features": {"a": float(i), "b": 2.0}})
        for i in range(5)
    ]
    decoder.decode(values[0], None)  # a layout the fast reader would learn, were it built
    assert batch_decoder.read(values) is None
    batch = EventBatchReader(decoder, batch_decoder).read(values, lambda i: None, columns=True)
    assert batch.columns is None and not batch.failed
    assert batch.events == [Event(f"e{i}", {"a": float(i), "b": 2.0}, i) for i in range(5)]


def test_the_scorer_writes_the_users_prediction_schema(own_topics: Path) -> None:
    """End to end through the scorer's codecs: the batch path must not write bytes laid
    out for the bundled schema."""
    from tests.unit.test_scorer_columns import _learner, _msg, _run  # the scorer scaffold

    shutil.copy(REPO_TOPICS / "event.avsc", own_topics / "event.avsc")  # columns are read
    catalog = _catalog(own_topics)
    assert Serde(catalog).event_decoders()[1] is not None
    writer = AvroBodyWriter(catalog.schema("event"), catalog.local_id("event"))
    rng = np.random.default_rng(0)
    msgs = [
        _msg(i, writer.write({"event_id": f"e{i}", "ts": 1000 + i, "features": _row(rng)}))
        for i in range(30)
    ]
    models: list[Learner] = [_learner(1)]
    records, _, _ = _run(catalog, msgs, models, columns=True)
    schema = json.loads((own_topics / "prediction.avsc").read_text())
    assert len(records) == 30
    for i, (topic, value, key, _) in enumerate(records):
        assert topic == "predictions" and key == f"e{i}".encode()
        read = _read(value, schema)
        assert read["event_id"] == f"e{i}" and read["region"] == "eu" and read["ts"] == 1000 + i
        assert read["score"] == pytest.approx(read["probabilities"]["true"])


def _row(rng: np.random.Generator) -> dict[str, float]:
    return {f"x{j}": float(v) for j, v in enumerate(rng.normal(size=10))}


def test_an_untrained_tree_has_no_matrix_scorer() -> None:
    tree = build_learner(ModelSpec("t", Task.BINARY, "hoeffding_tree"))
    assert tree.matrix_scorer() is None
