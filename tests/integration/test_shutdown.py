"""SIGTERM leaves no acknowledged event without a prediction."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

import redis
from confluent_kafka import Consumer, TopicPartition

from streamserve.settings import settings_from_dict
from streamserve.wiring import Runtime
from tests.integration.harness import TEST_KEY, produce_json, read_topic
from tests.integration.procs import role_env, streamserve


def test_sigterm_commits_only_what_was_predicted_and_loses_nothing(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    rt = Runtime.build(
        settings_from_dict(
            {
                "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": f"t{uid}."},
                "redis": {"url": redis_url, "key_prefix": f"t{uid}"},
                "snapshots": {"signing_key": TEST_KEY},
            }
        )
    )
    rt.create_topics()
    events_topic, preds_topic = rt.topics["events"], rt.topics["predictions"]
    feeding = threading.Event()
    feeding.set()
    produced: list[int] = []

    def paced() -> Iterator[dict[str, object]]:
        # about 5,000 events/s until told to stop: the scorer is mid-stream when stopped
        for i in range(200_000):
            if not feeding.is_set():
                return
            if i % 500 == 0:
                time.sleep(0.1)
            produced.append(i)
            yield {"event_id": f"{uid}-{i}", "features": {"x": i % 97}}

    feeder = threading.Thread(target=produce_json, args=(bootstrap, events_topic, paced()))
    decoder = rt.serde.prediction_decoder()

    def predicted_including(ids: set[str], timeout_s: float) -> set[str]:
        got = read_topic(
            bootstrap,
            preds_topic,
            decode=lambda m: decoder.decode(m.value(), None).event_id,
            until=lambda g: ids <= set(g),
            timeout_s=timeout_s,
        )
        return set(got)

    env = role_env(bootstrap, redis_url, uid)
    with streamserve(["score"], env) as proc:
        feeder.start()
        started = read_topic(
            bootstrap,
            preds_topic,
            until=lambda g: len(g) >= 2000 or proc.poll() is not None,
            timeout_s=90,
        )
        assert len(started) >= 2000, proc.output()
        assert proc.poll() is None, proc.output()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        assert rc == 0, proc.output()
        time.sleep(1.0)  # events keep arriving after the scorer stopped
        feeding.clear()
    feeder.join(60)
    n = len(produced)

    # every event below the committed offset of its partition has a prediction
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t{uid}-scorer"})
    committed = c.committed([TopicPartition(events_topic, p) for p in range(4)], timeout=10)
    c.close()
    offsets = {tp.partition: tp.offset for tp in committed}
    assert 0 < sum(max(0, o) for o in offsets.values()) < n, "not stopped mid-stream"
    located = read_topic(
        bootstrap,
        events_topic,
        until=lambda g: len(g) >= n,
        timeout_s=60,
        decode=lambda m: (m.partition(), m.offset(), m.key().decode()),
    )
    by_partition: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for p, o, key in located:
        by_partition[p].append((o, key))
    acknowledged = {
        key for p, rows in by_partition.items() for o, key in rows if o < offsets.get(p, -1)
    }
    assert acknowledged, "nothing was committed"
    missing = acknowledged - predicted_including(acknowledged, 30)
    assert not missing, f"{len(missing)} committed events have no prediction"

    # a restarted scorer finishes the rest: nothing lost
    with streamserve(["score"], env) as proc:
        wanted = {f"{uid}-{i}" for i in range(n)}
        final = predicted_including(wanted, 120)
        assert proc.poll() is None, proc.output()
    assert final == wanted, (len(final), n, sorted(wanted - final)[:5], sorted(final - wanted)[:5])
