"""streamserve on a real Redis Cluster: three masters from ``redis-server --cluster-enabled
yes`` on free ports, joined by ``redis-cli --cluster create``.

The store, the lease, the notifications, the registry and the join state work on it (the
join state spread over every master); the whole loop (scorer, joiner, learner) runs on it;
then masters are killed: with a replica the cluster fails over and the loop resumes, without
one the cluster refuses every command and the scorer keeps serving the model it holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from redis.cluster import RedisCluster

from streamserve.app import App
from streamserve.redis.client import build_client
from streamserve.redis.join_state import EventSide, JoinState, LabelSide
from streamserve.settings import RedisSettings, settings_from_dict
from streamserve.snapshots import Lease, SnapshotCodec, SnapshotMeta, SnapshotStore
from streamserve.snapshots.exceptions import FencedError
from streamserve.wiring import Runtime
from tests.integration.harness import (
    make_settings,
    produce_json,
    read_topic,
    running,
    wait_for,
)
from tests.integration.redis_cluster import Cluster, redis_cluster
from tests.integration.test_core_loop import _events, _labels, _predictions, _rt

KEY = b"cluster-test-signing-key-0123456789"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with redis_cluster(masters=3) as c:
        yield c


def _meta(model: str, version: int) -> SnapshotMeta:
    return SnapshotMeta(
        model=model,
        version=version,
        parent=version - 1 or None,
        created_at=time.time(),
        examples_seen=version,
        offsets={0: version},
        metrics={},
        format="text/1",
        learner="cluster-test",
    )


def test_settings_and_urls_choose_the_cluster_client(cluster: Cluster) -> None:
    by_url = build_client(RedisSettings(url=cluster.url))
    by_flag = build_client(
        RedisSettings(url=cluster.url.replace("redis+cluster://", "redis://"), cluster=True)
    )
    try:
        assert isinstance(by_url, RedisCluster) and isinstance(by_flag, RedisCluster)
        assert by_url.ping() and by_flag.ping()
        assert len(by_url.get_primaries()) == 3
    finally:
        by_url.close()
        by_flag.close()
    s = settings_from_dict({"redis": {"url": cluster.url}})
    assert s.redis.url == cluster.url


def test_store_lease_notifications_registry_and_join_state_on_a_cluster(
    cluster: Cluster, uid: str
) -> None:
    client = build_client(RedisSettings(url=cluster.url))
    assert isinstance(client, RedisCluster)
    codec = SnapshotCodec([KEY])
    store = SnapshotStore(client, prefix=f"t{uid}", keep=2)
    models = [f"m{i}" for i in range(6)]
    try:
        # Each model's keys share its hash tag: every script runs on one slot, and the
        # models themselves land on different masters.
        subs = {m: store.subscribe(m) for m in models}
        for m in models:
            lease = Lease(client, store.lease_key(m), ttl_ms=5000, holder=f"holder-{m}")
            assert lease.acquire() and lease.renew()
            assert not Lease(client, store.lease_key(m), ttl_ms=5000, holder="other").acquire()
            for v in (1, 2, 3):
                meta = _meta(m, v)
                store.publish(
                    meta, codec.encode(meta, f"{m}-{v}".encode()), lease_token=lease.token
                )
            with pytest.raises(FencedError):
                meta = _meta(m, 4)
                store.publish(meta, codec.encode(meta, b"x"), lease_token="not-the-holder")
            lease.release()
        for m in models:
            assert store.latest_version(m) == 3 and store.serving_version(m) == 3
            assert store.versions(m) == [2, 3]  # keep=2: the prune inside the script
            blob = store.get_blob(m, 3)
            assert blob is not None and codec.decode(blob)[1] == f"{m}-3".encode()
            # The notification PUBLISHed inside the script reaches a subscriber whichever
            # node it is connected to (classic pub/sub is broadcast over the cluster bus).
            seen = []
            deadline = time.monotonic() + 10
            while 3 not in seen and time.monotonic() < deadline:
                got = subs[m].wait(0.5)
                if got is not None:
                    seen.append(got)
            assert 3 in seen, (m, seen)
            subs[m].close()
        homes = {cluster.master_of(store.latest_key(m)).port for m in models}
        assert len(homes) >= 2, homes
        _registry_operations(cluster, store, uid)
        _join_state(cluster, client, uid)
    finally:
        for key in client.scan_iter(match=f"t{uid}*", count=1000):
            client.delete(key)
        client.close()


def _registry_operations(cluster: Cluster, store: SnapshotStore, uid: str) -> None:
    """The registry's operations (pin, alias, rollback, decision, experiment)."""
    store.pin("m0", 2)
    assert store.serving_version("m0") == 2 and store.is_pinned("m0")
    store.unpin("m0")
    store.set_alias("m1", "champion", 2)
    assert store.aliases("m1") == {"champion": 2}
    assert store.rollback("m2", 2) == 1 and store.serving_version("m2") == 2
    assert store.set_decision("m3", {"threshold": 0.7})["version"] == 1
    assert store.set_experiment({"champion": "m4"})["version"] == 1
    rt = Runtime(
        settings_from_dict(
            {
                "redis": {"url": cluster.url, "key_prefix": f"t{uid}"},
                "models": [{"name": "m1", "task": "binary", "learner": "logistic_regression"}],
            }
        )
    )
    try:
        view = rt.lifecycle.model("m1")
        assert rt.lifecycle.resolve("m1", "champion") == 2, view
        assert rt.lifecycle.show("m1")["version"] == 3
    finally:
        rt.close()


def _join_state(cluster: Cluster, client: RedisCluster, uid: str) -> None:
    """Join state: pairs match across slots, and keys spread over every master."""
    state = JoinState(client, prefix=f"t{uid}", window_s=60)
    ids = [f"{uid}-{i}" for i in range(300)]
    assert state.put_many([(i, EventSide({"x": 1.0}, 1)) for i in ids]) == [None] * 300
    got = state.put_many([(i, LabelSide(True, 2)) for i in ids])
    assert all(isinstance(o, EventSide) and o.features == {"x": 1.0} for o in got)
    assert state.emitters(ids[:3]) == [{"label"}] * 3
    per_master = {n.port: n.client().dbsize() for n in cluster.masters()}
    assert all(count > 100 for count in per_master.values()), per_master
    pending_homes = {cluster.master_of(key).port for key in state.pending_keys}
    assert len(pending_homes) == 3, pending_homes
    assert state.put_many([(f"{uid}-lonely", EventSide({}, 1))]) == [None]
    assert state.sweep(now_ms=2**62) == {"event": 1, "label": 0}
    # A master that never saw the join script (flushed here) answers NOSCRIPT inside
    # the cluster pipeline: the script is loaded on every master and the batch re-run.
    for n in cluster.masters():
        n.client().script_flush()
    again = state.put_many([(i, LabelSide(True, 2)) for i in ids[:50]])
    assert all(isinstance(o, EventSide) for o in again)


def _served(app: App, rt: Runtime) -> int:
    return int(app.health()[1]["roles"]["scorer"]["serving"]["default"])


def _round(bootstrap: str, rt: Runtime, uid: str, start: int, n: int, labels: bool) -> set[int]:
    """Produce ``n`` events (and their labels); the model versions that scored them."""
    events = _events(uid, n, start=start)
    produce_json(bootstrap, rt.topics["events"], events)
    if labels:
        produce_json(bootstrap, rt.topics["feedback"], _labels(events))
    ids = {e["event_id"] for e in events}
    preds = read_topic(
        bootstrap,
        rt.topics["predictions"],
        decode=_predictions(rt.serde),
        until=lambda got: ids <= {p.event_id for p in got},
        timeout_s=120,
    )
    mine = [p for p in preds if p.event_id in ids]
    assert ids <= {p.event_id for p in mine}, f"{len(ids - {p.event_id for p in mine})} unscored"
    return {p.model_version for p in mine}


def test_the_whole_loop_runs_on_a_cluster_and_rides_out_a_master_failover(
    bootstrap: str, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Three masters, one replica each. Kill the master of the model's slot: its replica
    takes over after ``cluster-node-timeout`` and the loop resumes (new versions learned,
    published, swapped in). Kill that promoted master too, which has no replica: the
    cluster reports ``fail`` and refuses every command (full coverage is required by
    default), the learner and joiner retry, and the scorer keeps scoring every event with
    the version it holds."""
    with redis_cluster(masters=3, replicas=1) as cluster:
        s = make_settings(bootstrap, cluster.url, uid)
        with running(s) as app:
            rt = _rt(app)
            assert isinstance(rt.redis, RedisCluster)
            _round(bootstrap, rt, uid, 0, 1500, labels=True)
            wait_for(lambda: (rt.store.serving_version("default") or 0) >= 1, 90, "a snapshot")
            wait_for(lambda: _served(app, rt) >= 1, 30, "the scorer to swap")
            before = rt.store.serving_version("default") or 0

            home = cluster.master_of(rt.store.latest_key("default"))
            home.kill()
            failover_s = cluster.wait_failover(rt.store.latest_key("default"), home, 60)
            print(f"replica took over {failover_s:.1f}s after the master was killed")
            promoted = cluster.master_of(rt.store.latest_key("default"))
            assert promoted.port != home.port and promoted.role() == "master"
            # The loop resumes on the promoted replica: new labels make new versions.
            _round(bootstrap, rt, uid, 10_000, 1500, labels=True)
            wait_for(
                lambda: (rt.store.serving_version("default") or 0) > before,
                120,
                f"a version newer than v{before} after the failover ({failover_s:.1f}s)",
            )
            wait_for(lambda: _served(app, rt) > before, 60, "the scorer to swap after failover")
            served = _served(app, rt)

            # No replica left for these slots: the cluster fails as a whole.
            promoted.kill()
            cluster.wait_state("fail", 60)
            caplog.clear()
            versions = _round(bootstrap, rt, uid, 20_000, 500, labels=True)
            assert versions == {served}, versions  # scored by the version it held
            assert _served(app, rt) == served
            # The joiner says why it waits, in words an operator can act on. Its first call
            # after the loss goes through the cluster client's own retries (slot map
            # refreshes over the nodes still listed), which took over 30 s under CI load.
            wait_for(
                lambda: any("join state: Redis unavailable" in r.message for r in caplog.records),
                120,
                "the joiner's warning that Redis is unavailable",
            )
