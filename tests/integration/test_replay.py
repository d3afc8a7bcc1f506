"""The replay policy's reader: the last N examples, or those of the last T seconds,
read back from the real examples topic by offsets; records it cannot use are counted."""

from __future__ import annotations

import json
import logging
import time

import pytest

from streamserve.drift.replay import ExamplesReplayer
from streamserve.learners.spec import Task
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, producer


def test_replayer_reads_by_count_and_by_time(
    bootstrap: str, redis_url: str, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    rt = Runtime.build(s)
    try:
        rt.create_topics()
        topic = rt.topics["examples"]
        now_ms = int(time.time() * 1000)
        p = producer(bootstrap)
        for i in range(300):
            ts = now_ms - 3_600_000 + i if i < 200 else now_ms - 1000 + i
            value = {"event_id": f"e{i}", "features": {"i": i}, "label": i % 2 == 0}
            p.produce(topic, json.dumps(value).encode(), b"k", partition=1, timestamp=ts)
        assert p.flush(30) == 0
        _, errors = rt.producer("replay-test")
        replayer = ExamplesReplayer(
            consumer_factory=lambda: rt.consumer("replay", "replay-test", errors),
            topic=topic,
            decoder=rt.serde.example_decoder(),
            task=Task.BINARY,
            timeout_s=30.0,
            model="default",
            metrics=rt.metrics,
        )
        last = replayer.read({1: 300}, 250)
        assert [x["i"] for x, _ in last] == list(range(50, 300))
        assert last[-1][1] is False and last[-2][1] is True  # labels coerced
        recent = replayer.read({1: 300}, 250, since_ms=now_ms - 60_000)
        assert [x["i"] for x, _ in recent] == list(range(200, 300))
        upto = replayer.read({1: 120}, 50)  # the learner's position bounds the read
        assert [x["i"] for x, _ in upto] == list(range(70, 120))
        assert replayer.read({1: 300}, 10, since_ms=now_ms + 3_600_000) == []

        # undecodable records and labels that do not fit the task are skipped, counted
        # and logged at WARNING
        for i in range(10):
            value = {"event_id": f"g{i}", "features": {"i": i}, "label": True}
            p.produce(topic, json.dumps(value).encode(), b"k", partition=2)
        p.produce(topic, b"not json", b"k", partition=2)
        p.produce(topic, b"\x00\x00\x00\x00\x63garbage", b"k", partition=2)
        bad_label = {"event_id": "b", "features": {"i": 0}, "label": "maybe"}
        p.produce(topic, json.dumps(bad_label).encode(), b"k", partition=2)
        assert p.flush(30) == 0
        with caplog.at_level(logging.WARNING, logger="streamserve.drift.replay"):
            kept = replayer.read({2: 13}, 13)
        assert [x["i"] for x, _ in kept] == list(range(10))
        value_of = rt.registry.get_sample_value
        labels = {"model": "default", "reason": "decode"}
        assert value_of("streamserve_replay_skipped_total", labels) == 2
        labels["reason"] = "label"
        assert value_of("streamserve_replay_skipped_total", labels) == 1
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and "2 decode and 1 label" in warned[0].getMessage()
    finally:
        rt.redis.close()
