"""The joiner on a real broker and Redis: either order, any partition, within the window."""

from __future__ import annotations

import json

import redis

from tests.integration.harness import make_settings, producer, read_topic, running, wait_for


def test_joins_in_either_order_across_partitions_and_counts_expiry(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(bootstrap, redis_url, uid, joiner={"window_seconds": 3.0})
    with running(s, roles=("joiner",)) as app:
        rt = app.rt
        p = producer(bootstrap)

        def send(topic: str, obj: dict[str, object], partition: int) -> None:
            p.produce(
                rt.topics[topic],
                json.dumps(obj).encode(),
                str(obj["event_id"]).encode(),
                partition=partition,
            )
            assert p.flush(10) == 0

        # event first, label later, on another partition
        send("events", {"event_id": f"{uid}-a", "features": {"x": 1.0}, "ts": 1000}, 0)
        # label first, event later, on another partition
        send("feedback", {"event_id": f"{uid}-b", "label": "yes", "ts": 2000}, 3)
        send("feedback", {"event_id": f"{uid}-a", "label": True, "ts": 3000}, 2)
        send("events", {"event_id": f"{uid}-b", "features": {"x": 2.0}, "ts": 4000}, 1)
        # never matched: expire after the window
        send("events", {"event_id": f"{uid}-lonely-event", "features": {"x": 0.0}}, 0)
        send("feedback", {"event_id": f"{uid}-lonely-label", "label": False}, 1)

        decoder = rt.serde.example_decoder()
        examples = read_topic(
            bootstrap,
            rt.topics["examples"],
            decode=lambda m: decoder.decode(m.value(), None),
            until=lambda got: len(got) >= 2,
            timeout_s=60,
        )
        value = rt.registry.get_sample_value
        wait_for(
            lambda: (
                (value("streamserve_joins_expired_total", {"kind": "event"}) or 0) >= 1
                and (value("streamserve_joins_expired_total", {"kind": "label"}) or 0) >= 1
            ),
            30,
            "the lonely event and label to expire",
        )
        matched = value("streamserve_joins_matched_total")
    by_id = {e.event_id: e for e in examples}
    assert set(by_id) == {f"{uid}-a", f"{uid}-b"}
    a, b = by_id[f"{uid}-a"], by_id[f"{uid}-b"]
    assert (a.features, a.label, a.event_ts, a.label_ts) == ({"x": 1.0}, True, 1000, 3000)
    assert (b.features, b.label, b.event_ts, b.label_ts) == ({"x": 2.0}, "yes", 4000, 2000)
    assert matched == 2
