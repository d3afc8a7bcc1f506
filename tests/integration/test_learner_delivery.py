"""On real brokers: a dead-letter copy the learner could not deliver holds its checkpoints
back, and once it is delivered (produced again) the checkpoints move past it.

The learner reads ``examples`` from the session broker, while its producer writes to a
second broker that is not running at first: each dead-letter copy times out
(``message.timeout.ms``), a delivery that failed, not one that waits. (Only the producer's
bootstrap servers differ: a Runtime whose ``producer`` points elsewhere.)
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Sequence

import redis
from confluent_kafka import Producer

from streamserve.embedded import EmbeddedBroker, free_port
from streamserve.kafka import config as kconf
from streamserve.kafka.dead_letter import H_ROLE, H_STAGE
from streamserve.snapshots.codec import SnapshotMeta
from streamserve.wiring import Runtime, build_app
from tests.integration.harness import make_settings, producer, read_topic, wait_for

GOOD_BEFORE, GOOD_AFTER = 20, 20
BAD_OFFSET = GOOD_BEFORE


class ProducerElsewhere(Runtime):
    """Producers bootstrap from ``out_servers``; consumers and admin from the settings."""

    out_servers = ""

    def producer(
        self, role: str, *, transactional: bool = False, writes: Sequence[str] = ()
    ) -> tuple[Producer, kconf.ClientErrors]:
        # ``writes`` is not looked up: the broker at out_servers starts later in the test
        errors = kconf.ClientErrors(role)
        elsewhere = dataclasses.replace(self.settings.kafka, bootstrap_servers=self.out_servers)
        return Producer(kconf.producer_config(elsewhere, errors)), errors


def test_a_checkpoint_waits_for_a_dead_letter_copy_whose_delivery_failed(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    out_port = free_port()
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        kafka={"producer": {"message.timeout.ms": 1500}},
        snapshots={"checkpoint_every_examples": 5, "checkpoint_every_seconds": 0.5},
    )
    rt = ProducerElsewhere.build(s)
    rt.out_servers = f"127.0.0.1:{out_port}"
    rt.create_topics()
    second = EmbeddedBroker()
    stop = threading.Event()
    app = build_app(rt, stop, ["learner"]).start()
    model = s.models[0].name
    value = rt.registry.get_sample_value

    def latest() -> SnapshotMeta | None:
        v = rt.store.latest_version(model)
        return rt.store.get_meta(model, v) if v is not None else None

    def count(name: str, **labels: str) -> float:
        return value(name, labels) or 0.0

    try:
        p = producer(bootstrap)
        topic = rt.topics["examples"]
        for i in range(GOOD_BEFORE + 1 + GOOD_AFTER):
            example = {"event_id": f"e{i}", "features": {"x": float(i)}, "label": i % 2 == 0}
            body = b"not an example" if i == BAD_OFFSET else json.dumps(example).encode()
            p.produce(topic, body, f"e{i}".encode(), partition=0)
        assert p.flush(30) == 0

        wait_for(
            lambda: (
                count("streamserve_examples_learned_total", model=model) >= GOOD_BEFORE + GOOD_AFTER
                and count("streamserve_produce_errors_total", topic=rt.topics["dead-letter"]) >= 1
            ),
            30,
            "every example learned and the dead-letter copy's delivery failed",
        )
        time.sleep(3.0)  # checkpoints are due every 0.5 s: several were tried meanwhile
        held = latest()
        # everything after the bad example was learned, yet no snapshot covers it
        assert held is None or held.offsets.get(0, 0) <= BAD_OFFSET
        assert count("streamserve_checkpoint_failures_total", model=model, reason="delivery") >= 1

        second.start(port=out_port)  # the copy can be delivered now
        end = GOOD_BEFORE + 1 + GOOD_AFTER
        wait_for(
            lambda: (m := latest()) is not None and m.offsets.get(0) == end,
            60,
            "a checkpoint past the bad example once its copy was delivered",
        )
        final = latest()
        assert final is not None and final.examples_seen == GOOD_BEFORE + GOOD_AFTER
    finally:
        stop.set()
        code = app.wait(join_timeout_s=60)
        rt.redis.close()
    try:
        dead = read_topic(
            second.bootstrap_servers,
            rt.topics["dead-letter"],
            until=lambda got: len(got) >= 1,
            timeout_s=30,
        )
    finally:
        second.stop()
    assert code == 0
    # at least once (a learner that lost its lease meanwhile relearns and writes it again)
    assert dead and all(m.value() == b"not an example" for m in dead)
    for m in dead:
        headers = dict(m.headers())
        assert (headers[H_ROLE], headers[H_STAGE]) == (b"learner", b"learn")
