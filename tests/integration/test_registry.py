"""Versions managed like a registry, against a real Redis: aliases, rollback (and the
learner's checkpoint it refuses), export to one signed file and import elsewhere."""

from __future__ import annotations

import time

import pytest
import redis

from streamserve.learners.spec import ModelSpec, Task
from streamserve.snapshots import SnapshotCodec, SnapshotMeta, SnapshotStore
from streamserve.snapshots.exceptions import (
    RolledBackError,
    SignatureError,
    SnapshotError,
    SnapshotNotFoundError,
)
from streamserve.snapshots.transfer import export_version, import_version

KEY = b"registry-signing-key-0123456789ab"
OTHER_KEY = b"other-deployment-key-0123456789ab"
EXPORT_KEY = b"export-signing-key-0123456789abcd"
MODEL = "fraud"
SPEC = ModelSpec(MODEL, Task.BINARY, "logistic_regression")


def _meta(version: int, parent: int | None = None, model: str = MODEL) -> SnapshotMeta:
    return SnapshotMeta(
        model=model,
        version=version,
        parent=parent,
        created_at=time.time(),
        examples_seen=version * 10,
        offsets={0: version * 10},
        metrics={"accuracy": 0.5},
        format="river-pickle",
        learner="logistic_regression",
    )


def _store(client: redis.Redis, uid: str, keep: int = 3) -> SnapshotStore:
    return SnapshotStore(client, prefix=f"t{uid}", keep=keep)


def _publish(
    store: SnapshotStore, codec: SnapshotCodec, version: int, epoch: int | None = None
) -> None:
    meta = _meta(version, version - 1 or None)
    store.publish(meta, codec.encode(meta, b"p%d" % version), epoch=epoch)


def test_aliases_point_at_versions_and_keep_them_from_pruning(
    redis_client: redis.Redis, uid: str
) -> None:
    store, codec = _store(redis_client, uid), SnapshotCodec([KEY])
    _publish(store, codec, 1)
    store.set_alias(MODEL, "champion", 1)
    store.set_alias(MODEL, "challenger", 1)
    for v in range(2, 8):
        _publish(store, codec, v)
    assert 1 in store.versions(MODEL)  # aliased: kept although keep=3
    assert store.aliases(MODEL) == {"challenger": 1, "champion": 1}
    store.set_alias(MODEL, "champion", 7)
    assert store.delete_alias(MODEL, "challenger") and not store.delete_alias(MODEL, "nope")
    _publish(store, codec, 8)
    assert 1 not in store.versions(MODEL)  # no alias holds it any more
    assert store.aliases(MODEL) == {"champion": 7}
    with pytest.raises(SnapshotNotFoundError):
        store.set_alias(MODEL, "champion", 99)
    with pytest.raises(SnapshotError):
        store.set_alias(MODEL, "bad name!", 7)


def test_a_rollback_serves_the_version_and_refuses_the_learners_next_checkpoint(
    redis_client: redis.Redis, uid: str
) -> None:
    store, codec = _store(redis_client, uid, keep=10), SnapshotCodec([KEY])
    for v in range(1, 5):
        _publish(store, codec, v, epoch=0)
    store.pin(MODEL, 4)
    epoch = store.rollback(MODEL, 2)
    assert epoch == 1 == store.epoch(MODEL)
    assert store.serving_version(MODEL) == 2 and not store.is_pinned(MODEL)
    assert store.resume_version(MODEL) == 2
    with pytest.raises(RolledBackError) as refused:  # made from the state before it
        _publish(store, codec, 5, epoch=0)
    assert refused.value.version == 2
    assert store.latest_version(MODEL) == 4
    store.publish(_meta(5, 2), codec.encode(_meta(5, 2), b"p5"), epoch=1)  # from v2's state
    assert store.serving_version(MODEL) == 5 and store.resume_version(MODEL) is None
    with pytest.raises(SnapshotNotFoundError):
        store.rollback(MODEL, 42)


def test_export_then_import_into_another_deployment(redis_client: redis.Redis, uid: str) -> None:
    here = _store(redis_client, f"{uid}a")
    there = _store(redis_client, f"{uid}b")
    codec_here, codec_there = SnapshotCodec([KEY]), SnapshotCodec([OTHER_KEY])
    _publish(here, codec_here, 1)
    _publish(here, codec_here, 2)
    _publish(there, codec_there, 1)
    data = export_version(here, codec_here, SPEC, 2, SnapshotCodec([EXPORT_KEY]))
    with pytest.raises(SignatureError):  # verified with the import key before anything
        import_version(there, codec_there, SPEC, data, SnapshotCodec([KEY]))
    with pytest.raises(SnapshotError, match="learner"):
        other = ModelSpec(MODEL, Task.BINARY, "hoeffding_tree")
        import_version(there, codec_there, other, data, SnapshotCodec([EXPORT_KEY]))
    meta = import_version(there, codec_there, SPEC, data, SnapshotCodec([EXPORT_KEY]))
    assert meta.version == 2 and meta.extra["imported_from"] == {"model": MODEL, "version": 2}
    assert there.serving_version(MODEL) == 2 and there.resume_version(MODEL) == 2
    blob = there.get_blob(MODEL, 2)
    assert blob is not None
    got_meta, payload = codec_there.decode(blob)  # re-signed with that deployment's key
    assert payload == b"p2" and got_meta.examples_seen == 20
    with pytest.raises(SignatureError):
        codec_here.decode(blob)


def test_a_decision_is_versioned_apart_from_the_model(redis_client: redis.Redis, uid: str) -> None:
    store = _store(redis_client, uid)
    assert store.decision(MODEL) is None
    first = store.set_decision(MODEL, {"threshold": 0.7})
    assert first == {"threshold": 0.7, "version": 1}
    second = store.set_decision(MODEL, {"costs": {"true": {"false": 5.0}, "false": {"true": 1.0}}})
    assert second["version"] == 2 and second["costs"]["true"]["false"] == 5
    assert store.decision(MODEL) == second
    assert store.set_decision(MODEL, None) == {"version": 3}
    assert store.versions(MODEL) == []  # no model version was made


def test_the_experiment_is_stream_state_with_a_version(redis_client: redis.Redis, uid: str) -> None:
    store = _store(redis_client, uid)
    assert store.experiment() is None
    first = store.set_experiment({"champion": "lr", "split": {}})
    assert first == {"champion": "lr", "split": {}, "version": 1}
    second = store.set_experiment({"champion": "tree", "split": {}, "version": 99})
    assert second["version"] == 2 and store.experiment() == second
