"""The live-error check: the serving version is judged on the events it answered, from
its own answers, against its predecessor re-scoring the same events; other versions'
events are left out, events without a seen prediction counted; a pinned version is left
alone; a predecessor that does not verify is counted and nothing is judged."""

from __future__ import annotations

import random
import time
from typing import Any

from prometheus_client import CollectorRegistry

from streamserve.drift.live_error import Labelled, LiveErrorCheck
from streamserve.drift.served import Answer
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.metrics import Metrics
from streamserve.records import Scored
from streamserve.settings import AutoRollbackSettings
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta

SPEC = ModelSpec(name="m", task=Task.BINARY, learner="logistic_regression")
CODEC = SnapshotCodec([b"unit-test-key-0123456789"])


class Store:
    """Versions 1 (a trained model) and 2 (parent 1), serving 2."""

    def __init__(self, blob: bytes | None) -> None:
        self.blob = blob
        self.pinned = False
        self.metas = {v: _meta(v) for v in (1, 2)}

    def serving_version(self, model: str) -> int:
        return 2

    def is_pinned(self, model: str) -> bool:
        return self.pinned

    def get_meta(self, model: str, version: int) -> SnapshotMeta:
        return self.metas[version]

    def versions(self, model: str) -> list[int]:
        return [1, 2]

    def get_blob(self, model: str, version: int) -> bytes | None:
        return self.blob if version == 1 else None


class Served:
    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.polls: list[float] = []

    def get(self, event_id: str) -> Answer | None:
        return self.answers.get(event_id)

    def poll(self, wait_s: float = 0.0) -> None:
        self.polls.append(wait_s)

    def close(self) -> None:
        return None


def _meta(version: int) -> SnapshotMeta:
    return SnapshotMeta(
        model="m",
        version=version,
        parent=version - 1 or None,
        created_at=time.time(),
        examples_seen=100,
        offsets={},
        metrics={},
        format="river-pickle/1",
        learner="logistic_regression",
    )


def _truth(x: dict[str, float]) -> bool:
    return x["a"] > 0


def _trained_blob() -> bytes:
    learner = build_learner(SPEC)
    rng = random.Random(1)
    for _ in range(2000):
        x = {"a": rng.gauss(0, 1)}
        learner.learn_one(x, _truth(x))
    return CODEC.encode(_meta(1), learner.dumps())


def _check(store: Store, served: Served) -> tuple[LiveErrorCheck, CollectorRegistry]:
    registry = CollectorRegistry()
    check = LiveErrorCheck(
        spec=SPEC,
        store=store,  # type: ignore[arg-type]
        codec=CODEC,
        served=served,  # type: ignore[arg-type]
        settings=AutoRollbackSettings(enabled=True, min_examples=100, margin=0.05),
        metrics=Metrics(registry),
        poll_s=1.0,
    )
    return check, registry


def _examples(n: int, start: int) -> list[Labelled]:
    rng = random.Random(start)
    out = []
    for i in range(start, start + n):
        x = {"a": rng.gauss(0, 1)}
        out.append(Labelled(f"e{i}", x, _truth(x), None))
    return out


def _answer(served: Served, ex: Labelled, version: int, right: bool) -> None:
    y = bool(ex.label) if right else not ex.label
    served.answers[ex.event_id] = Answer(version, Scored(y, {"true": float(y)}, float(y)))


def test_the_serving_version_is_judged_on_its_own_answers() -> None:
    store, served = Store(_trained_blob()), Served()
    check, registry = _check(store, served)
    examples = _examples(300, 0)
    for k, ex in enumerate(examples):
        if k < 100:
            _answer(served, ex, 1, right=False)  # answered by v1: not v2's evidence
        elif k < 280:
            _answer(served, ex, 2, right=k % 5 != 0)  # v2 wrong on a fifth
    worse = check.observe(examples)
    assert worse is not None
    assert (worse.serving, worse.predecessor, worse.examples) == (2, 1, 180)
    assert abs(worse.serving_error - 36 / 180) < 1e-9
    assert worse.predecessor_error < 0.05
    assert served.polls == [0.0, 0.5]  # caught up once for the 20 unseen
    sample = registry.get_sample_value
    assert (
        sample("streamserve_live_error_skipped_total", {"model": "m", "reason": "unattributed"})
        == 20
    )
    assert (
        sample("streamserve_live_error", {"model": "m", "which": "serving"}) == worse.serving_error
    )


def test_not_enough_events_or_not_worse_is_no_decision() -> None:
    store, served = Store(_trained_blob()), Served()
    check, _ = _check(store, served)
    examples = _examples(300, 0)
    for ex in examples:
        _answer(served, ex, 2, right=True)
    assert check.observe(examples[:50]) is None  # 50 < min_examples
    assert check.observe(examples[50:]) is None  # as good as its predecessor


def test_a_pinned_version_or_an_unverified_predecessor_is_left_alone() -> None:
    examples = _examples(200, 0)
    pinned, served = Store(_trained_blob()), Served()
    pinned.pinned = True
    for ex in examples:
        _answer(served, ex, 2, right=False)
    assert _check(pinned, served)[0].observe(examples) is None
    tampered = bytearray(_trained_blob())
    tampered[-1] ^= 1
    check, registry = _check(Store(bytes(tampered)), served)
    assert check.observe(examples) is None
    skipped: Any = registry.get_sample_value(
        "streamserve_live_error_skipped_total", {"model": "m", "reason": "load"}
    )
    assert skipped == 1
