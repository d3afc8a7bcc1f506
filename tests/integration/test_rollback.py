"""A rollback on the real broker and Redis: the scorers serve the version rolled back to
within the polling interval, and the learner continues from it (its next version's parent,
its model that version's plus only what it learned after the rollback). An exported
version imported into a second deployment (other key prefix, other signing key) serves
there, and that deployment's learner continues from it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry

from streamserve.app import App
from streamserve.cli import main
from streamserve.learners.base import Learner
from streamserve.learners.catalogue import build_learner, load_learner
from streamserve.learners.evaluation import RunningMetrics
from streamserve.learners.spec import ModelSpec, Task
from streamserve.metrics import Metrics
from streamserve.roles.restore import Restorer
from streamserve.settings import Settings
from streamserve.snapshots import SnapshotCodec, SnapshotMeta, SnapshotStore
from streamserve.snapshots.exceptions import RolledBackError
from tests.integration.harness import TEST_KEY, make_settings, running, wait_for
from tests.integration.test_learner_resume import _examples, _produce_to_partition_zero

MODEL = "default"
OTHER_KEY = "second-deployment-signing-key-0123456789"


def _config(tmp_path: Path, s: Settings, key: str) -> str:
    """The settings the command line is given: Redis and (for export/import) the key."""
    path = tmp_path / f"{s.redis.key_prefix}.yaml"
    data = {
        "redis": {"url": s.redis.url, "key_prefix": s.redis.key_prefix},
        "snapshots": {"signing_key": key},
    }
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _cli(*args: str) -> None:
    assert main(["models", *args]) == 0, args


def _serving(app: App) -> int:
    return int(app.health()[1]["roles"]["scorer"]["serving"][MODEL])


def _meta(store: SnapshotStore, version: int | None) -> SnapshotMeta | None:
    return None if version is None else store.get_meta(MODEL, version)


def _learned(
    app: App, store: SnapshotStore, rows: list[dict[str, Any]], seen: int, what: str
) -> int:
    """Produce ``rows``; the version that reflects ``seen`` examples once they are learned."""
    _produce_to_partition_zero(app.rt.settings.kafka.bootstrap_servers or "", _topic(app), rows)

    def done() -> bool:
        meta = _meta(store, store.latest_version(MODEL))
        return meta is not None and meta.examples_seen == seen

    wait_for(done, 60, what)
    latest = store.latest_version(MODEL)
    assert latest is not None
    return latest


def _topic(app: App) -> str:
    return app.rt.topics["examples"]


def _model(app: App, store: SnapshotStore, version: int) -> tuple[SnapshotMeta, Learner]:
    blob = store.get_blob(MODEL, version)
    assert blob is not None
    meta, payload = app.rt.codec.decode(blob)
    return meta, load_learner(app.rt.settings.model(MODEL), meta.format, payload)


def _same_model(got: Learner, want: Learner, uid: str) -> None:
    for row in _examples(uid, 90_000, 100):
        p = got.predict_one(row["features"]).probabilities
        q = want.predict_one(row["features"]).probabilities
        assert p is not None and q is not None
        assert abs(p["true"] - q["true"]) < 1e-9, (p, q)


def _continued(
    app: App, store: SnapshotStore, base: int, rows: list[dict[str, Any]], after: int, uid: str
) -> int:
    """Check that the versions after ``after`` descend from ``base`` and that the newest
    is ``base``'s model plus ``rows``; return the newest."""
    base_meta, reference = _model(app, store, base)
    for row in rows:
        reference.learn_one(row["features"], row["label"])
    newest = _learned(
        app, store, rows, base_meta.examples_seen + len(rows), f"{len(rows)} examples on v{base}"
    )
    first = _meta(store, after + 1)
    assert first is not None and first.parent == base, first
    meta, model = _model(app, store, newest)
    assert meta.metrics["n"] == base_meta.metrics["n"] + len(rows)
    _same_model(model, reference, uid)
    return newest


def test_a_rollback_serves_v_and_the_learner_continues_from_it(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        snapshots={"checkpoint_every_examples": 100_000, "checkpoint_every_seconds": 0.5},
    )
    config = _config(tmp_path, s, TEST_KEY)
    batches = [_examples(uid, 300 * i, 300) for i in range(3)]
    with running(s, roles=("scorer", "learner")) as app:
        store = app.rt.store
        v = _learned(app, store, batches[0], 300, "the first 300 examples")
        _learned(app, store, batches[1], 600, "600 examples")
        latest = _learned(app, store, batches[2], 900, "900 examples")
        wait_for(lambda: _serving(app) == latest, 20, f"the scorer to serve v{latest}")

        started = time.monotonic()
        _cli("rollback", "--to", str(v), "--config", config)
        poll = s.snapshots.poll_interval_seconds
        wait_for(lambda: _serving(app) == v, poll + 10, f"the scorer to serve v{v}", 0.02)
        took = time.monotonic() - started
        assert took <= poll + 1.0, f"v{v} served {took:.2f}s after the rollback"

        after = _examples(uid, 5000, 200)
        newest = _continued(app, store, v, after, latest, uid)
        wait_for(lambda: _serving(app) == newest, 20, f"the scorer to serve v{newest}")
        assert store.resume_version(MODEL) is None

    exported = tmp_path / "v.ssnap"
    _cli("export", "--version", str(v), str(exported), "--config", config)
    keys = tmp_path / "deployment-one.keys"
    keys.write_text(TEST_KEY + "\n")
    _imported_serves_there(bootstrap, redis_url, uid, tmp_path, exported, keys)


def _imported_serves_there(
    bootstrap: str, redis_url: str, uid: str, tmp_path: Path, exported: Path, keys: Path
) -> None:
    s = make_settings(
        bootstrap,
        redis_url,
        f"{uid}b",
        snapshots={
            "signing_key": OTHER_KEY,
            "checkpoint_every_examples": 100_000,
            "checkpoint_every_seconds": 0.5,
        },
    )
    config = _config(tmp_path, s, OTHER_KEY)
    with running(s, roles=("scorer", "learner")) as app:
        store = app.rt.store
        _cli("import", str(exported), "--key-file", str(keys), "--config", config)
        imported = store.latest_version(MODEL)
        assert imported == 1 == store.resume_version(MODEL)
        wait_for(lambda: _serving(app) == imported, 10, "the imported version to serve")
        _continued(app, store, imported, _examples(uid, 7000, 100), imported, uid)


def test_restore_after_a_rollback_takes_v_and_the_newest_position(
    redis_client: redis.Redis, uid: str
) -> None:
    spec = ModelSpec(MODEL, Task.BINARY, "logistic_regression")
    store = SnapshotStore(redis_client, prefix=f"t{uid}", keep=10)
    codec = SnapshotCodec([TEST_KEY.encode()])
    metrics, learner = RunningMetrics(spec.task), build_learner(spec)
    for v in range(1, 4):
        meta = SnapshotMeta(
            model=MODEL,
            version=v,
            parent=v - 1 or None,
            created_at=time.time(),
            examples_seen=10 * v,
            offsets={0: 10 * v},
            metrics={},
            format=learner.format,
            learner=spec.learner,
            extra={"metrics_state": metrics.state(), "examples_topic_id": f"topic-{v}"},
        )
        store.publish(meta, codec.encode(meta, learner.dumps()), epoch=0)

    def restore() -> tuple[int | None, int | None, int, int]:
        got = Restorer(spec, store, codec, Metrics(CollectorRegistry()), lambda fn: fn()).restore()
        assert got.position is not None and got.position.offsets == {0: 30}
        base = got.base.meta.version if got.base else None
        return base, got.position.version, got.latest, got.epoch

    assert restore() == (3, 3, 3, 0)
    store.rollback(MODEL, 1)
    assert restore() == (1, 3, 3, 1)  # v1's model, read on from v3's offsets
    meta = SnapshotMeta(MODEL, 4, 3, time.time(), 40, {}, {}, learner.format, spec.learner)
    with pytest.raises(RolledBackError, match="rolled back to v1"):
        store.publish(meta, codec.encode(meta, b"x"), epoch=0)
