"""Unit tests for the serving holder and the snapshot watcher (with an in-memory store)."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable

import pytest

from streamserve.snapshots import (
    Serving,
    SnapshotCodec,
    SnapshotError,
    SnapshotHolder,
    SnapshotMeta,
    SnapshotNotFoundError,
    SnapshotWatcher,
    load_serving,
)

KEY = b"unit-test-signing-key-0123456789"
MODEL = "fraud"
WAIT_S = 5.0


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# -- holder ---------------------------------------------------------------------------


def test_swap_returns_the_old_and_installs_the_new() -> None:
    first, second = Serving(1, "m1"), Serving(2, "m2")
    holder = SnapshotHolder(first)
    assert holder.current is first
    assert holder.swap(second) is first
    assert holder.current is second
    assert holder.swap(first) is second
    assert holder.current is first


def test_serving_is_frozen_and_slotted() -> None:
    serving = Serving(1, "m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        serving.version = 2  # type: ignore[misc]
    assert not hasattr(serving, "__dict__")


def test_concurrent_swaps_lose_nothing() -> None:
    holder: SnapshotHolder[int] = SnapshotHolder(Serving(0, 0))
    returned: list[int] = []
    lock = threading.Lock()
    per_thread = 500

    def worker(base: int) -> None:
        got = [holder.swap(Serving(base + i, base + i)).version for i in range(per_thread)]
        with lock:
            returned.extend(got)

    threads = [threading.Thread(target=worker, args=(1 + t * per_thread,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert not any(thread.is_alive() for thread in threads)
    # Every value installed is returned exactly once as "old", except the final current.
    everything = sorted([*returned, holder.current.version])
    assert everything == list(range(4 * per_thread + 1))


# -- fakes ----------------------------------------------------------------------------


class FakeSubscription:
    def __init__(self, store: FakeStore) -> None:
        self._store = store
        self.messages: queue.Queue[int] = queue.Queue()
        self.closed = False

    def wait(self, timeout_s: float) -> int | None:
        self._store.maybe_fail()
        try:
            return self.messages.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed = True


class FakeStore:
    """Just enough of SnapshotStore for the watcher, in memory."""

    def __init__(self) -> None:
        self.blobs: dict[int, bytes] = {}
        self.serving: int | None = None
        self.subscriptions: list[FakeSubscription] = []
        self.failures_left = 0
        self.reads = 0

    def maybe_fail(self) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise ConnectionError("redis is down (fake)")

    def serving_version(self, model: str) -> int | None:
        assert model == MODEL
        self.maybe_fail()
        self.reads += 1
        return self.serving

    def get_blob(self, model: str, version: int) -> bytes | None:
        self.maybe_fail()
        return self.blobs.get(version)

    def subscribe(self, model: str) -> FakeSubscription:
        self.maybe_fail()
        subscription = FakeSubscription(self)
        self.subscriptions.append(subscription)
        return subscription

    def point(self, version: int, *, notify: bool) -> None:
        self.serving = version
        if notify:
            for subscription in self.subscriptions:
                if not subscription.closed:
                    subscription.messages.put(version)


def make_meta(version: int, model: str = MODEL) -> SnapshotMeta:
    return SnapshotMeta(
        model=model,
        version=version,
        parent=version - 1 or None,
        created_at=time.time(),
        examples_seen=version * 100,
        offsets={0: version * 100},
        metrics={},
        format="text/1",
        learner="unit",
    )


class Loader:
    """Records every payload it is asked to load; "boom" payloads fail."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, meta: SnapshotMeta, payload: bytes) -> str:
        self.calls.append(payload)
        if payload.startswith(b"boom"):
            raise ValueError("cannot load this")
        return payload.decode()


@dataclasses.dataclass
class Rig:
    store: FakeStore
    codec: SnapshotCodec
    holder: SnapshotHolder[str]
    loader: Loader
    watcher: SnapshotWatcher[str]
    swaps: list[tuple[int, int, float]]
    failures: list[tuple[int, str]]

    def put(self, version: int, payload: bytes, *, key: bytes = KEY, model: str = MODEL) -> None:
        self.store.blobs[version] = SnapshotCodec([key]).encode(make_meta(version, model), payload)


@pytest.fixture
def rig() -> Rig:
    store = FakeStore()
    codec = SnapshotCodec([KEY])
    holder: SnapshotHolder[str] = SnapshotHolder(Serving(1, "model-1"))
    loader = Loader()
    swaps: list[tuple[int, int, float]] = []
    failures: list[tuple[int, str]] = []
    watcher = SnapshotWatcher(
        store=store,
        codec=codec,
        model=MODEL,
        holder=holder,
        load=loader,
        poll_interval_s=60.0,
        on_swap=lambda old, new, lag: swaps.append((old, new, lag)),
        on_failure=lambda version, reason: failures.append((version, reason)),
        min_backoff_s=0.01,
        max_backoff_s=0.05,
    )
    store.serving = 1
    built = Rig(store, codec, holder, loader, watcher, swaps, failures)
    built.put(1, b"model-1")
    return built


# -- check_once -----------------------------------------------------------------------


def test_no_pointer_and_same_version_do_nothing(rig: Rig) -> None:
    rig.store.serving = None
    assert rig.watcher.check_once() is False
    rig.store.serving = 1
    assert rig.watcher.check_once() is False
    assert rig.loader.calls == []
    assert rig.holder.current == Serving(1, "model-1")


def test_new_version_is_verified_loaded_and_swapped(rig: Rig) -> None:
    rig.put(2, b"model-2")
    rig.store.serving = 2

    assert rig.watcher.check_once() is True

    assert rig.holder.current == Serving(2, "model-2")
    assert rig.loader.calls == [b"model-2"]
    assert len(rig.swaps) == 1
    old, new, lag = rig.swaps[0]
    assert (old, new) == (1, 2)
    assert 0.0 <= lag < WAIT_S
    assert rig.watcher.check_once() is False
    assert rig.failures == []


def test_rollback_moves_backwards(rig: Rig) -> None:
    rig.put(2, b"model-2")
    rig.store.serving = 2
    assert rig.watcher.check_once()
    rig.store.serving = 1
    assert rig.watcher.check_once()
    assert rig.holder.current == Serving(1, "model-1")
    assert [(o, n) for o, n, _ in rig.swaps] == [(1, 2), (2, 1)]


def test_tampered_blob_is_refused_once_and_never_loaded(rig: Rig) -> None:
    rig.put(2, b"model-2")
    tampered = bytearray(rig.store.blobs[2])
    tampered[-1] ^= 0x01
    rig.store.blobs[2] = bytes(tampered)
    rig.store.serving = 2

    assert rig.watcher.check_once() is False
    assert rig.watcher.check_once() is False

    assert rig.failures == [(2, "signature")]
    assert rig.loader.calls == []
    assert rig.holder.current == Serving(1, "model-1")
    assert rig.watcher.failed_version == 2


def test_failed_version_is_retried_only_after_the_pointer_moves(rig: Rig) -> None:
    rig.put(2, b"boom-2")
    rig.put(3, b"model-3")
    rig.store.serving = 2
    assert not rig.watcher.check_once()
    assert not rig.watcher.check_once()
    assert rig.failures == [(2, "load")]

    rig.store.serving = 3
    assert rig.watcher.check_once()
    assert rig.holder.current.version == 3
    assert rig.watcher.failed_version is None

    rig.store.serving = 2  # pointer moved back to the bad one: try once more
    assert not rig.watcher.check_once()
    assert rig.failures == [(2, "load"), (2, "load")]
    assert rig.holder.current == Serving(3, "model-3")


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda r: r.put(2, b"model-2", key=b"attacker-key-attacker-key-000000"), "signature"),
        (lambda r: r.store.blobs.__setitem__(2, b"not a snapshot at all"), "format"),
        (lambda r: None, "missing"),
        (lambda r: r.put(2, b"boom"), "load"),
        (lambda r: r.put(2, b"model-2", model="other"), "format"),
        (lambda r: r.store.blobs.__setitem__(2, r.codec.encode(make_meta(5), b"m5")), "format"),
    ],
)
def test_failure_reasons(rig: Rig, setup: Callable[[Rig], None], reason: str) -> None:
    setup(rig)
    rig.store.serving = 2
    assert rig.watcher.check_once() is False
    assert rig.failures == [(2, reason)]
    assert rig.holder.current == Serving(1, "model-1")
    if reason != "load":
        assert rig.loader.calls == []


def test_callback_errors_do_not_break_swapping(rig: Rig) -> None:
    def bad_callback(*args: object) -> None:
        raise RuntimeError("callback bug")

    watcher = SnapshotWatcher(
        store=rig.store,
        codec=rig.codec,
        model=MODEL,
        holder=rig.holder,
        load=rig.loader,
        on_swap=bad_callback,
        on_failure=bad_callback,
    )
    rig.put(2, b"boom")
    rig.put(3, b"model-3")
    rig.store.serving = 2
    assert watcher.check_once() is False
    rig.store.serving = 3
    assert watcher.check_once() is True
    assert rig.holder.current.version == 3


def test_redis_errors_propagate_from_check_once(rig: Rig) -> None:
    rig.store.failures_left = 1
    with pytest.raises(ConnectionError):
        rig.watcher.check_once()
    assert rig.holder.current.version == 1


def test_load_serving_loads_the_pointer_or_returns_none(rig: Rig) -> None:
    loaded = load_serving(rig.store, rig.codec, MODEL, rig.loader)
    assert loaded is not None
    meta, serving = loaded
    assert (meta.version, serving) == (1, Serving(1, "model-1"))
    rig.store.serving = 7
    with pytest.raises(SnapshotNotFoundError):
        load_serving(rig.store, rig.codec, MODEL, rig.loader)
    rig.store.serving = None
    assert load_serving(rig.store, rig.codec, MODEL, rig.loader) is None


def test_watcher_rejects_bad_arguments(rig: Rig) -> None:
    with pytest.raises(SnapshotError):
        SnapshotWatcher(
            store=rig.store,
            codec=rig.codec,
            model=MODEL,
            holder=rig.holder,
            load=rig.loader,
            poll_interval_s=0,
        )


# -- the thread -----------------------------------------------------------------------


def test_thread_swaps_on_notification_without_polling(rig: Rig) -> None:
    rig.watcher.start()
    try:
        assert wait_until(lambda: len(rig.store.subscriptions) == 1)
        reads_before = rig.store.reads
        assert wait_until(lambda: rig.store.reads >= 1)
        rig.put(2, b"model-2")
        rig.store.point(2, notify=True)
        assert wait_until(lambda: rig.holder.current.version == 2)
        assert rig.swaps[0][:2] == (1, 2)
        # poll_interval_s is 60 s, so only the notification can explain the swap
        assert rig.store.reads <= reads_before + 3
    finally:
        rig.watcher.stop()
    assert rig.store.subscriptions[0].closed


def test_thread_falls_back_to_polling(rig: Rig) -> None:
    watcher = SnapshotWatcher(
        store=rig.store,
        codec=rig.codec,
        model=MODEL,
        holder=rig.holder,
        load=rig.loader,
        poll_interval_s=0.05,
    )
    watcher.start()
    try:
        assert wait_until(lambda: rig.store.reads >= 1)
        rig.put(2, b"model-2")
        rig.store.point(2, notify=False)
        assert wait_until(lambda: rig.holder.current.version == 2)
    finally:
        watcher.stop()


def test_thread_survives_redis_outage_and_keeps_serving(rig: Rig) -> None:
    rig.put(2, b"model-2")
    rig.store.point(2, notify=False)
    rig.store.failures_left = 6
    rig.watcher.start()
    try:
        assert wait_until(lambda: rig.holder.current.version == 2)
        assert rig.store.failures_left == 0
        # it resubscribed after the errors and still reacts to notifications
        rig.put(3, b"model-3")
        rig.store.point(3, notify=True)
        assert wait_until(lambda: rig.holder.current.version == 3)
    finally:
        rig.watcher.stop()
    assert all(subscription.closed for subscription in rig.store.subscriptions)


def test_stop_ends_the_thread_promptly_and_start_twice_is_refused(rig: Rig) -> None:
    rig.watcher.start()
    with pytest.raises(SnapshotError):
        rig.watcher.start()
    started = time.monotonic()
    rig.watcher.stop(timeout_s=WAIT_S)
    assert time.monotonic() - started < 2.0
    assert not any(t.name == f"snapshot-watcher-{MODEL}" for t in threading.enumerate())
    rig.watcher.start()  # restartable after stop
    rig.watcher.stop()
