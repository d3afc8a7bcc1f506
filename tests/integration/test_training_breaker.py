"""The training breaker and the automatic rollback on the real broker and Redis, through the
scorer, the joiner and the learner.

A clean label stream (about 28 % positives, 100 labels a second by label time) trains a
first version; then a burst of flipped labels at 20 times the rate: the breaker pauses
learning (an alert names the label rate, its value and bounds), though the examples of the
burst read before its window closed were learned and checkpointed into a poisoned serving
version. On the events that version answered (its predictions, read back by the learner),
its live error exceeds its predecessor's by
more than the margin: the serving pointer goes back (an alert with the figures), the
learner continues from the clean version, the breaker resumes learning once the stream
settles (an alert), and the final model is within 2 points of accuracy of a run without
the poison (the same learner fed the same clean examples).

Sized by ``STREAMSERVE_TEST_POISON_CLEAN`` (clean examples before the burst; 1800 by
default, a multiple of the breaker's window).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import redis

from streamserve.app import App
from streamserve.drift import alerts as actions
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner, load_learner
from streamserve.snapshots import SnapshotStore
from tests.integration.harness import make_settings, produce_json, read_topic, running, wait_for

MODEL = "default"
WINDOW = 300
CLEAN = max(
    WINDOW * 4, int(os.environ.get("STREAMSERVE_TEST_POISON_CLEAN", "1800")) // WINDOW * WINDOW
)
BURST = 900
AFTER = 2100
RATE_MS = 10.0  # 100 labels a second
BURST_MS = 0.5  # 2000 a second


class Stream:
    """Examples of one fixed concept, with label times 10 ms apart (or ``BURST_MS`` in a
    burst) and the wall clock for event times."""

    def __init__(self, uid: str, seed: int) -> None:
        self.uid = uid
        self.rng = random.Random(seed)
        self.n = 0
        self.label_ms = float(int(time.time() * 1000))

    def take(
        self, n: int, *, flipped: bool = False, gap_ms: float = RATE_MS
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``n`` events (event time now) and their labels (label times ``gap_ms`` apart)."""
        events, labels = [], []
        for _ in range(n):
            x = {"a": self.rng.gauss(0, 1), "b": self.rng.gauss(0, 1)}
            y = x["a"] + 0.5 * x["b"] > 0.7
            self.label_ms += gap_ms
            event_id = f"{self.uid}-{self.n}"
            events.append({"event_id": event_id, "features": x, "ts": int(time.time() * 1000)})
            labels.append(
                {"event_id": event_id, "label": (not y) if flipped else y, "ts": int(self.label_ms)}
            )
            self.n += 1
        return events, labels


def _holdout() -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(4242)
    out = []
    for _ in range(2000):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        out.append((x, x["a"] + 0.5 * x["b"] > 0.7))
    return out


def _accuracy(model: Learner) -> float:
    held = _holdout()
    return sum(model.predict_one(x).prediction == y for x, y in held) / len(held)


def _model(app: App, version: int) -> Learner:
    blob = app.rt.store.get_blob(MODEL, version)
    assert blob is not None
    meta, payload = app.rt.codec.decode(blob)
    return load_learner(app.rt.settings.model(MODEL), meta.format, payload)


def _seen(store: SnapshotStore, version: int | None) -> int:
    meta = store.get_meta(MODEL, version) if version else None
    return meta.examples_seen if meta else -1


def _alerts(app: App, bootstrap: str, want: list[str]) -> list[dict[str, Any]]:
    decode = app.rt.serde.alert_decoder().decode

    def done(rs: list[dict[str, Any]]) -> bool:
        got = [r["action"] for r in rs]
        return all(a in got for a in want)

    records = read_topic(
        bootstrap,
        app.rt.topics["drift-alerts"],
        until=done,
        decode=lambda m: decode(m.value(), None),
        timeout_s=60,
    )
    assert done(records), [r["action"] for r in records]
    return records


def _scorer_serves(app: App) -> int:
    return int(app.health()[1]["roles"]["scorer"]["serving"][MODEL])


def _send(
    app: App, bootstrap: str, events: list[dict[str, Any]], labels: list[dict[str, Any]]
) -> None:
    produce_json(bootstrap, app.rt.topics["events"], events)
    produce_json(bootstrap, app.rt.topics["feedback"], labels)


def _answered(app: App, bootstrap: str, events: list[dict[str, Any]], version: int) -> None:
    """Produce ``events`` and wait until the scorer answered each (with ``version``)."""
    produce_json(bootstrap, app.rt.topics["events"], events)
    ids = {e["event_id"] for e in events}
    decoder = app.rt.serde.prediction_decoder()
    preds = read_topic(
        bootstrap,
        app.rt.topics["predictions"],
        decode=lambda m: decoder.decode(m.value(), None),
        until=lambda got: ids <= {p.event_id for p in got},
        timeout_s=60,
    )
    assert {p.model_version for p in preds if p.event_id in ids} == {version}


def _check_alerts(records: list[dict[str, Any]], poisoned: int, clean: int) -> None:
    """One pause (the label rate, its value and bounds), one rollback (the figures), one
    resume, in that order."""
    learning = [
        r for r in records if r["signal"] == "learning" or r["action"] == actions.ACTION_ROLLED_BACK
    ]
    assert [r["action"] for r in learning] == [
        actions.ACTION_LEARNING_PAUSED,
        actions.ACTION_ROLLED_BACK,
        actions.ACTION_LEARNING_RESUMED,
    ]
    paused, rolled, resumed = learning
    assert paused["detector"] == "breaker" and paused["details"]["statistic"] == "label_rate"
    assert float(paused["details"]["value"]) > float(paused["details"]["high"]) == 4.0
    assert (rolled["model_version"], rolled["action_version"]) == (poisoned, clean)
    figures = rolled["details"]
    assert float(figures["serving_error"]) - float(figures["predecessor_error"]) > 0.01
    assert int(figures["examples"]) >= 300
    assert resumed["detector"] == "breaker"


def test_a_poisoned_burst_pauses_learning_rolls_back_and_costs_under_2_points(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        snapshots={"checkpoint_every_examples": 100_000, "checkpoint_every_seconds": 2.0},
        models=[
            {
                "name": MODEL,
                "task": "binary",
                "learner": "logistic_regression",
                "retrain": {"policy": "alert"},  # no challenger's versions in between
            }
        ],
        learner={
            "batch_size": 50,
            "breaker": {
                "enabled": True,
                "window_examples": WINDOW,
                "history_windows": 5,
                "min_history_windows": 3,
                "settle_windows": 4,
            },
            "rollback": {"enabled": True, "min_examples": 300, "margin": 0.01},
        },
    )
    stream = Stream(uid, seed=1)
    clean_events, clean_labels = stream.take(CLEAN)
    with running(s, roles=("scorer", "joiner", "learner")) as app:
        store = app.rt.store
        _send(app, bootstrap, clean_events, clean_labels)
        wait_for(lambda: _seen(store, store.serving_version(MODEL)) == CLEAN, 90, "clean version")
        clean = store.serving_version(MODEL) or 0
        wait_for(lambda: _scorer_serves(app) == clean, 20, f"the scorer to serve v{clean}")

        # the burst: flipped labels at 20 times the rate
        _send(app, bootstrap, *stream.take(BURST, flipped=True, gap_ms=BURST_MS))
        wait_for(lambda: store.learning(MODEL).paused, 30, "the breaker to pause learning")
        state = store.learning(MODEL)
        assert state.by == "breaker" and "label_rate" in state.reason, state
        wait_for(lambda: _seen(store, store.latest_version(MODEL)) > CLEAN, 30, "poisoned version")
        poisoned = store.latest_version(MODEL) or 0
        assert store.serving_version(MODEL) == poisoned
        wait_for(lambda: _scorer_serves(app) == poisoned, 20, f"the scorer to serve v{poisoned}")
        learned_poison = _seen(store, poisoned) - CLEAN
        assert 0 < learned_poison < BURST
        poisoned_accuracy = _accuracy(_model(app, poisoned))

        # clean events again, answered by the poisoned version; then their labels at the
        # usual rate: it did worse on them than its predecessor would have
        after_events, after_labels = stream.take(AFTER)
        _answered(app, bootstrap, after_events, poisoned)
        produce_json(bootstrap, app.rt.topics["feedback"], after_labels)
        wait_for(lambda: store.serving_version(MODEL) == clean, 60, f"the rollback to v{clean}")
        wait_for(lambda: _scorer_serves(app) == clean, 10, f"the scorer to serve v{clean}")
        wait_for(lambda: not store.learning(MODEL).paused, 60, "the breaker to resume learning")
        wait_for(lambda: (store.latest_version(MODEL) or 0) > poisoned, 60, "a newer version")
        first_after = store.get_meta(MODEL, poisoned + 1)
        assert first_after is not None and first_after.parent == clean

        records = _alerts(
            app,
            bootstrap,
            [
                actions.ACTION_LEARNING_PAUSED,
                actions.ACTION_ROLLED_BACK,
                actions.ACTION_LEARNING_RESUMED,
            ],
        )
        time.sleep(s.snapshots.checkpoint_every_seconds + 1.0)  # the last examples checkpointed
        final = store.latest_version(MODEL) or 0
        final_model = _model(app, final)
        rollbacks = app.rt.registry.get_sample_value(
            "streamserve_auto_rollbacks_total", {"model": MODEL}
        )

    _check_alerts(records, poisoned, clean)
    assert rollbacks == 1

    # a run without poison: the same learner fed the same clean examples in order
    reference = build_learner(s.model(MODEL))
    for event, label in zip(clean_events + after_events, clean_labels + after_labels, strict=True):
        reference.learn_one(event["features"], label["label"])
    got, want = _accuracy(final_model), _accuracy(reference)
    rolled = next(r for r in records if r["action"] == actions.ACTION_ROLLED_BACK)
    print(f"\nrollback figures: {rolled['details']}")
    print(
        f"accuracy on 2000 held-out examples: without poison {want:.4f}, poisoned v{poisoned} "
        f"{poisoned_accuracy:.4f} ({learned_poison} flipped labels learned), after the "
        f"rollback and resume v{final} {got:.4f}"
    )
    assert poisoned_accuracy < want - 0.01
    assert got >= want - 0.02
