"""The learner's Redis retry while restoring at start gives up as soon as it is stopped."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from streamserve.metrics import Metrics
from streamserve.roles.learner import LearnerConfig, LearnerRole
from streamserve.serde.codecs import Serde
from streamserve.serde.schemas import SchemaCatalog
from streamserve.snapshots.codec import SnapshotCodec
from streamserve.topics import default_topics_dir
from tests.fakes import FakeLease, FakeSnapshotStore
from tests.unit.test_learner_drift import SPEC


def _role(store: FakeSnapshotStore, consumers: list[object]) -> LearnerRole:
    topics_dir = default_topics_dir()
    serde = Serde(SchemaCatalog.from_dir(topics_dir))
    decoders = serde.example_decoders()
    return LearnerRole(
        spec=SPEC,
        config=LearnerConfig("examples", 500, 0.1, 10**9, 10**9),
        consumer_factory=lambda: consumers.append(object()),  # type: ignore[func-returns-value]
        partitions=lambda: [0],
        decoder=decoders[0],
        batch_decoder=decoders[1],
        producer=None,
        dead_letters=None,  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        codec=SnapshotCodec([b"unit-test-key-0123456789"]),
        lease=FakeLease(),  # type: ignore[arg-type]
        metrics=Metrics(CollectorRegistry()),
    )


def test_a_stop_while_redis_is_down_at_restore_ends_the_role() -> None:
    store = FakeSnapshotStore(failures=None)
    consumers: list[object] = []
    role = _role(store, consumers)
    stop = threading.Event()
    t = threading.Thread(target=role.run, args=(stop,), daemon=True)
    t.start()
    try:
        # bounded wait for the role to be inside the retry loop
        for _ in range(200):
            if store.calls >= 2:
                break
            stop.wait(0.05)
        assert store.calls >= 2
    finally:
        stop.set()
    t.join(5)  # the backoff has grown past 0.4 s by now; stop must cut it short
    assert not t.is_alive(), "the learner kept retrying Redis after stop"
    assert consumers == [], "a stopped learner went on to consume"
    assert role.state is None


def test_restore_retries_until_redis_answers() -> None:
    store = FakeSnapshotStore(failures=2)
    role = _role(store, [])
    state = role._restore(threading.Event())
    assert store.calls == 4  # two failures, then latest_version and versions
    assert state.version == 0
