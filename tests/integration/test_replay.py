"""The replay policy's reader: the last N examples, or those of the last T seconds,
read back from the real examples topic by offsets."""

from __future__ import annotations

import json
import time

from streamserve.drift.replay import ExamplesReplayer
from streamserve.learners.spec import Task
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, producer


def test_replayer_reads_by_count_and_by_time(bootstrap: str, redis_url: str, uid: str) -> None:
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
        )
        last = replayer.read({1: 300}, 250)
        assert [x["i"] for x, _ in last] == list(range(50, 300))
        assert last[-1][1] is False and last[-2][1] is True  # labels coerced
        recent = replayer.read({1: 300}, 250, since_ms=now_ms - 60_000)
        assert [x["i"] for x, _ in recent] == list(range(200, 300))
        upto = replayer.read({1: 120}, 50)  # the learner's position bounds the read
        assert [x["i"] for x, _ in upto] == list(range(70, 120))
        assert replayer.read({1: 300}, 10, since_ms=now_ms + 3_600_000) == []
    finally:
        rt.redis.close()
