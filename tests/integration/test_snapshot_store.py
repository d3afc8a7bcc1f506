"""Snapshot store, lease and watcher against a real Redis.

Uses the session's own Redis (``redis_url`` in tests/conftest.py); each test gets its own
key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import builtins
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from streamserve.snapshots import (
    FencedError,
    Lease,
    Serving,
    SnapshotCodec,
    SnapshotError,
    SnapshotFormatError,
    SnapshotHolder,
    SnapshotMeta,
    SnapshotNotFoundError,
    SnapshotStore,
    SnapshotWatcher,
    load_serving,
    new_holder_token,
)

pytestmark = pytest.mark.integration

KEY = b"integration-signing-key-01234567"
ATTACKER_KEY = b"attacker-signing-key-0123456789a"
MODEL = "fraud"
WAIT_S = 5.0


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def client(redis_client: redis.Redis) -> redis.Redis:
    """The session's Redis (see tests/conftest.py)."""
    return redis_client


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    name = f"sstest-{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(client.scan_iter(match=f"{name}:*", count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def codec() -> SnapshotCodec:
    return SnapshotCodec([KEY])


@pytest.fixture
def store(client: redis.Redis, prefix: str) -> SnapshotStore:
    return SnapshotStore(client, prefix=prefix, keep=3)


def make_meta(version: int, model: str = MODEL) -> SnapshotMeta:
    return SnapshotMeta(
        model=model,
        version=version,
        parent=version - 1 or None,
        created_at=time.time(),
        examples_seen=version * 10,
        offsets={0: version * 10, 1: version},
        metrics={"accuracy": 0.5 + version / 100},
        format="text/1",
        learner="integration",
    )


def put(
    store: SnapshotStore,
    codec: SnapshotCodec,
    version: int,
    payload: bytes | None = None,
    *,
    lease_token: str | None = None,
) -> None:
    meta = make_meta(version)
    body = payload if payload is not None else f"model-{version}".encode()
    store.publish(meta, codec.encode(meta, body), lease_token=lease_token)


# -- store ----------------------------------------------------------------------------


def test_publish_sets_latest_serving_blob_and_meta(
    store: SnapshotStore, codec: SnapshotCodec, client: redis.Redis, prefix: str
) -> None:
    assert store.latest_version(MODEL) is None
    assert store.serving_version(MODEL) is None
    assert store.versions(MODEL) == []
    assert store.get_blob(MODEL, 1) is None
    assert store.get_meta(MODEL, 1) is None

    put(store, codec, 1)
    put(store, codec, 2)

    assert store.latest_version(MODEL) == 2
    assert store.serving_version(MODEL) == 2
    assert store.versions(MODEL) == [1, 2]
    blob = store.get_blob(MODEL, 2)
    assert blob is not None
    meta, payload = codec.decode(blob)
    assert (meta.version, payload) == (2, b"model-2")
    listed = store.get_meta(MODEL, 2)
    assert listed == meta  # the listing copy carries the checksum too
    assert listed is not None and len(listed.checksum) == 64
    # key layout with the hash tag
    assert client.exists(f"{prefix}:{{{MODEL}}}:snap:2", f"{prefix}:{{{MODEL}}}:meta:2") == 2
    assert client.get(f"{prefix}:{{{MODEL}}}:serving") == b"2"
    assert store.notify_channel(MODEL) == f"{prefix}:{{{MODEL}}}:notify"
    assert store.lease_key(MODEL) == f"{prefix}:{{{MODEL}}}:lease"


def test_models_are_independent(store: SnapshotStore, codec: SnapshotCodec) -> None:
    put(store, codec, 5)
    other = make_meta(1, model="churn")
    store.publish(other, codec.encode(other, b"churn-1"))
    assert store.latest_version(MODEL) == 5
    assert store.latest_version("churn") == 1


def test_publish_rejects_a_blob_that_is_not_the_meta(
    store: SnapshotStore, codec: SnapshotCodec
) -> None:
    blob = codec.encode(make_meta(3), b"x")
    with pytest.raises(SnapshotError, match="v3"):
        store.publish(make_meta(4), blob)
    with pytest.raises(SnapshotError):
        store.publish(make_meta(4), b"raw bytes")
    assert store.latest_version(MODEL) is None
    with pytest.raises(SnapshotError):
        store.get_blob("bad{name}", 1)


def test_pruning_keeps_keep_versions_and_never_the_serving_one(
    store: SnapshotStore, codec: SnapshotCodec, client: redis.Redis, prefix: str
) -> None:
    for version in range(1, 7):
        put(store, codec, version)
    assert store.versions(MODEL) == [4, 5, 6]
    for gone in (1, 2, 3):
        assert store.get_blob(MODEL, gone) is None
        assert store.get_meta(MODEL, gone) is None

    store.pin(MODEL, 4)
    for version in range(7, 11):
        put(store, codec, version)
    versions = store.versions(MODEL)
    assert len(versions) == 3
    assert 4 in versions and 10 in versions
    assert store.serving_version(MODEL) == 4
    assert store.get_blob(MODEL, 4) is not None

    # unpin: serving follows latest again; the next publish prunes the old pinned version
    store.unpin(MODEL)
    assert store.serving_version(MODEL) == 10
    assert store.versions(MODEL) == [4, 9, 10]
    put(store, codec, 11)
    assert store.versions(MODEL) == [9, 10, 11]
    assert store.get_blob(MODEL, 4) is None
    snap_keys = list(client.scan_iter(match=f"{prefix}:{{{MODEL}}}:snap:*"))
    assert len(snap_keys) == 3


def test_keep_one_never_prunes_latest_while_pinned(
    client: redis.Redis, prefix: str, codec: SnapshotCodec
) -> None:
    store = SnapshotStore(client, prefix=prefix, keep=1)
    put(store, codec, 1)
    store.pin(MODEL, 1)
    put(store, codec, 2)
    put(store, codec, 3)
    assert store.versions(MODEL) == [1, 3]
    assert store.get_blob(MODEL, 3) is not None
    assert store.serving_version(MODEL) == 1
    store.unpin(MODEL)  # the formerly pinned version is now beyond keep
    assert store.versions(MODEL) == [3]
    assert store.get_blob(MODEL, 1) is None
    assert store.serving_version(MODEL) == 3


def test_pin_and_unpin_move_serving_and_notify(
    store: SnapshotStore, codec: SnapshotCodec, client: redis.Redis
) -> None:
    put(store, codec, 1)
    put(store, codec, 2)
    subscription = store.subscribe(MODEL)
    try:
        store.pin(MODEL, 1)
        assert store.serving_version(MODEL) == 1
        assert store.is_pinned(MODEL)
        assert subscription.wait(WAIT_S) == 1

        put(store, codec, 3)  # while pinned: latest moves, serving does not, no message
        assert store.latest_version(MODEL) == 3
        assert store.serving_version(MODEL) == 1
        assert subscription.wait(0.2) is None

        store.unpin(MODEL)
        assert not store.is_pinned(MODEL)
        assert store.serving_version(MODEL) == 3
        assert subscription.wait(WAIT_S) == 3

        put(store, codec, 4)
        assert store.serving_version(MODEL) == 4
        assert subscription.wait(WAIT_S) == 4
    finally:
        subscription.close()

    with pytest.raises(SnapshotNotFoundError):
        store.pin(MODEL, 99)
    with pytest.raises(SnapshotError):
        store.pin(MODEL, 0)
    assert store.serving_version(MODEL) == 4


def test_fencing_by_version(store: SnapshotStore, codec: SnapshotCodec) -> None:
    put(store, codec, 5)
    with pytest.raises(FencedError, match="version 5 is not newer than latest 5"):
        put(store, codec, 5, b"other")
    with pytest.raises(FencedError, match="version 4 is not newer than latest 5"):
        put(store, codec, 4)
    assert store.versions(MODEL) == [5]
    blob = store.get_blob(MODEL, 5)
    assert blob is not None and codec.decode(blob)[1] == b"model-5"
    assert store.get_blob(MODEL, 4) is None


def test_fencing_by_lease_token(
    store: SnapshotStore, codec: SnapshotCodec, client: redis.Redis
) -> None:
    leader = Lease(client, store.lease_key(MODEL), ttl_ms=10_000, holder=new_holder_token())
    rival = Lease(client, store.lease_key(MODEL), ttl_ms=10_000, holder=new_holder_token())

    with pytest.raises(FencedError, match="lease not held"):
        put(store, codec, 1, lease_token=leader.token)  # nobody holds it yet
    assert leader.acquire()
    put(store, codec, 1, lease_token=leader.token)
    with pytest.raises(FencedError, match="lease not held"):
        put(store, codec, 2, lease_token=rival.token)
    assert store.latest_version(MODEL) == 1
    assert store.get_blob(MODEL, 2) is None
    with pytest.raises(SnapshotError):
        put(store, codec, 2, lease_token="")
    leader.release()


# -- lease ----------------------------------------------------------------------------


def test_lease_acquire_renew_release(client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}:{{{MODEL}}}:lease"
    a = Lease(client, key, ttl_ms=10_000, holder="a:1:x")
    b = Lease(client, key, ttl_ms=10_000, holder="b:2:y")

    assert a.acquire()
    assert a.acquire()  # already ours
    assert not b.acquire()
    assert client.get(key) == b"a:1:x"

    client.pexpire(key, 1_000)
    assert a.renew()
    assert 5_000 < int(client.pttl(key)) <= 10_000
    assert not b.renew()

    b.release()  # not b's: no effect
    assert client.get(key) == b"a:1:x"
    a.release()
    assert client.get(key) is None
    assert not a.renew()
    assert b.acquire()
    assert b.token == "b:2:y"
    b.release()


def test_lease_expires_and_can_be_taken_over(client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}:{{{MODEL}}}:lease"
    a = Lease(client, key, ttl_ms=150, holder="a")
    b = Lease(client, key, ttl_ms=10_000, holder="b")
    assert a.acquire()
    assert not b.acquire()
    assert wait_until(b.acquire, timeout_s=3.0)
    assert not a.renew()
    assert not a.acquire()
    a.release()
    assert client.get(key) == b"b"
    b.release()


def test_lease_rejects_bad_arguments(client: redis.Redis) -> None:
    with pytest.raises(SnapshotError):
        Lease(client, "k", ttl_ms=0, holder="a")
    with pytest.raises(SnapshotError):
        Lease(client, "k", ttl_ms=100, holder="")


def test_store_refuses_a_decoding_client(redis_url: str, prefix: str) -> None:
    decoding = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(SnapshotError, match="decode_responses"):
            SnapshotStore(decoding, prefix=prefix)
    finally:
        decoding.close()


# -- watcher --------------------------------------------------------------------------


@dataclass
class Watched:
    holder: SnapshotHolder[bytes]
    watcher: SnapshotWatcher[bytes]
    swaps: list[tuple[int, int, float]]
    failures: list[tuple[int, str]]
    loads: list[int]


def watch(
    store: SnapshotStore,
    codec: SnapshotCodec,
    client: redis.Redis,
    load: Callable[[SnapshotMeta, bytes], bytes] | None = None,
) -> Watched:
    """Start a watcher on the served version; returns once it is subscribed."""
    loads: list[int] = []

    def default_load(meta: SnapshotMeta, payload: bytes) -> bytes:
        loads.append(meta.version)
        return payload

    loader = load or default_load
    initial = load_serving(store, codec, MODEL, loader)
    assert initial is not None
    holder = SnapshotHolder(initial[1])
    swaps: list[tuple[int, int, float]] = []
    failures: list[tuple[int, str]] = []
    watcher = SnapshotWatcher(
        store=store,
        codec=codec,
        model=MODEL,
        holder=holder,
        load=loader,
        poll_interval_s=60.0,  # long: swaps within the test can only come from pub/sub
        on_swap=lambda old, new, lag: swaps.append((old, new, lag)),
        on_failure=lambda version, reason: failures.append((version, reason)),
    )
    watcher.start()
    channel = store.notify_channel(MODEL)

    def subscribed() -> bool:
        counts = dict(client.pubsub_numsub(channel))
        return int(counts.get(channel.encode(), 0)) >= 1

    assert wait_until(subscribed)
    return Watched(holder, watcher, swaps, failures, loads)


def test_watcher_swaps_soon_after_publish(
    store: SnapshotStore, codec: SnapshotCodec, client: redis.Redis
) -> None:
    put(store, codec, 1)
    watched = watch(store, codec, client)
    try:
        assert watched.holder.current == Serving(1, b"model-1")
        put(store, codec, 2)
        assert wait_until(lambda: watched.holder.current.version == 2)
        assert watched.holder.current.model == b"model-2"
        assert [(old, new) for old, new, _ in watched.swaps] == [(1, 2)]
        assert 0.0 <= watched.swaps[0][2] < WAIT_S

        store.pin(MODEL, 1)  # rollback reaches the scorer too
        assert wait_until(lambda: watched.holder.current.version == 1)
    finally:
        watched.watcher.stop()
    assert watched.failures == []


def test_watcher_refuses_a_tampered_blob(
    store: SnapshotStore, codec: SnapshotCodec, client: redis.Redis
) -> None:
    put(store, codec, 1)
    watched = watch(store, codec, client)
    try:
        meta = make_meta(2)
        tampered = bytearray(codec.encode(meta, b"model-2"))
        tampered[-1] ^= 0x01  # flip a payload bit; the header still parses
        store.publish(meta, bytes(tampered))
        assert store.serving_version(MODEL) == 2

        assert wait_until(lambda: watched.failures == [(2, "signature")])
        assert watched.holder.current == Serving(1, b"model-1")
        assert 2 not in watched.loads

        put(store, codec, 3)  # a good version afterwards is picked up
        assert wait_until(lambda: watched.holder.current.version == 3)
    finally:
        watched.watcher.stop()
    assert watched.failures == [(2, "signature")]


def _exploit_payload(marker: Path) -> bytes:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (builtins.open, (str(marker), "w"))

    return pickle.dumps(Exploit())


def test_the_planted_pickle_would_run_code_if_loaded(tmp_path: Path) -> None:
    # Control for the next test: loading this payload really does create the file.
    marker = tmp_path / "control"
    pickle.loads(_exploit_payload(marker)).close()
    assert marker.exists()


def test_planted_pickle_is_never_loaded(
    store: SnapshotStore, codec: SnapshotCodec, client: redis.Redis, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    exploit = _exploit_payload(marker)
    loaded_versions: list[int] = []

    def unsafe_load(meta: SnapshotMeta, payload: bytes) -> bytes:
        loaded_versions.append(meta.version)
        obj = pickle.loads(payload)  # what a River loader does with verified bytes
        return obj if isinstance(obj, bytes) else b"unexpected"

    put(store, codec, 1, pickle.dumps(b"model-1"))
    watched = watch(store, codec, client, load=unsafe_load)
    try:
        # 1. signed with a key the scorer does not trust
        meta = make_meta(2)
        store.publish(meta, SnapshotCodec([ATTACKER_KEY]).encode(meta, exploit))
        assert wait_until(lambda: (2, "signature") in watched.failures)

        # 2. a bare pickle written straight into Redis, pointer moved by hand
        client.set(store.snap_key(MODEL, 3), exploit)
        client.zadd(store.versions_key(MODEL), {"3": 3})
        client.set(store.serving_key(MODEL), b"3")
        client.publish(store.notify_channel(MODEL), b"3")
        assert wait_until(lambda: (3, "format") in watched.failures)

        # 3. a genuine header/payload whose payload was swapped for the exploit
        good = bytearray(codec.encode(make_meta(4), pickle.dumps(b"model-4")))
        forged = bytes(good[: len(good) - len(pickle.dumps(b"model-4"))]) + exploit
        store.publish(make_meta(4), forged)
        assert wait_until(lambda: (4, "signature") in watched.failures)

        time.sleep(0.2)  # give any (wrong) late load a chance to show up
        assert not marker.exists()
        assert loaded_versions == [1]
        assert watched.holder.current == Serving(1, b"model-1")
    finally:
        watched.watcher.stop()
    assert not marker.exists()


def test_watcher_keeps_serving_when_its_connections_are_killed(
    codec: SnapshotCodec, client: redis.Redis, prefix: str, redis_url: str
) -> None:
    name = f"{prefix}-watcher"
    own = redis.Redis.from_url(redis_url, client_name=name, socket_timeout=5)
    store = SnapshotStore(own, prefix=prefix, keep=3)
    put(store, codec, 1)
    watched = watch(store, codec, client)
    try:
        # Kill only this test's connections (pub/sub included), from the server side.
        ids = [info["id"] for info in client.client_list() if info.get("name") == name]
        assert ids
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
        assert watched.holder.current.version == 1
        put(SnapshotStore(client, prefix=prefix, keep=3), codec, 2)
        # it reconnects and catches up (notification, or the check after resubscribing)
        assert wait_until(lambda: watched.holder.current.version == 2, timeout_s=15.0)
    finally:
        watched.watcher.stop()
        own.close()


def test_concurrent_readers_never_see_a_dangling_pointer(
    client: redis.Redis, prefix: str, codec: SnapshotCodec
) -> None:
    store = SnapshotStore(client, prefix=prefix, keep=1000)  # no pruning races here
    stop = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            version = store.serving_version(MODEL)
            if version is None:
                continue
            blob = store.get_blob(MODEL, version)
            if blob is None:
                problems.append(f"serving v{version} has no blob")
                continue
            meta, _ = codec.decode(blob)
            if meta.version != version:
                problems.append(f"v{version} holds v{meta.version}")

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for version in range(1, 150):
            put(store, codec, version, b"x" * 2048)
    finally:
        stop.set()
        thread.join(WAIT_S)
    assert not thread.is_alive()
    assert problems == []


def test_garbage_pointer_is_a_format_error(
    store: SnapshotStore, client: redis.Redis, codec: SnapshotCodec
) -> None:
    put(store, codec, 1)
    client.set(store.serving_key(MODEL), b"not-a-number")
    with pytest.raises(SnapshotFormatError):
        store.serving_version(MODEL)
