"""The learner's prequential accuracy, learned through the real examples topic, equals
``river.evaluate.progressive_val_score`` on the same stream and model (River's bundled
Phishing dataset; labels immediate). Examples go to one partition so the learner reads
them in the dataset's order (across partitions Kafka keeps no order, and neither would
the comparison). Delayed labels are compared in ``tests/unit/test_learning_parity.py``.
"""

from __future__ import annotations

import json

from river import datasets, evaluate, metrics

from streamserve.app import App
from streamserve.learners.catalogue import build_learner
from tests.integration.harness import make_settings, producer, running, wait_for


def _seen(app: App) -> int:
    return int(app.health()[1]["roles"]["learner-default"]["examples_seen"] or 0)


def test_learner_accuracy_through_kafka_matches_progressive_val_score(
    bootstrap: str, redis_url: str, uid: str
) -> None:
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        snapshots={"checkpoint_every_examples": 400, "checkpoint_every_seconds": 60.0},
        models=[
            {
                "name": "default",
                "task": "binary",
                "learner": "logistic_regression",
                "drift": False,
            }
        ],
    )
    rows = list(datasets.Phishing())
    reference = evaluate.progressive_val_score(
        datasets.Phishing(), build_learner(s.models[0]).estimator, metrics.Accuracy()
    ).get()
    with running(s, roles=("learner",)) as app:
        p = producer(bootstrap)
        topic = app.rt.topics["examples"]
        for i, (x, y) in enumerate(rows):
            value = {"event_id": f"{uid}-{i}", "features": x, "label": y}
            p.produce(topic, json.dumps(value).encode(), f"{uid}-{i}".encode(), partition=0)
        assert p.flush(30) == 0
        wait_for(lambda: _seen(app) >= len(rows), 60, "every example learned")
    version = app.rt.store.latest_version("default")
    assert version is not None
    meta = app.rt.store.get_meta("default", version)
    assert meta is not None and meta.examples_seen == len(rows)
    service = meta.metrics["accuracy"]
    assert abs(service - reference) <= 0.005, (service, reference)
