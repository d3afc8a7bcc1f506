"""Each dead-letter copy names the role and consumer group that wrote it: a bad event has
one copy from the scorer and one from the joiner, a bad label one from the joiner."""

from __future__ import annotations

from collections import Counter

import redis

from streamserve.kafka.dead_letter import (
    H_GROUP,
    H_OFFSET,
    H_PARTITION,
    H_ROLE,
    H_STAGE,
    H_TOPIC,
)
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, producer, read_topic, running

BAD_EVENTS = 20
BAD_LABELS = 5


def test_bad_events_are_dead_lettered_once_per_role_that_reads_them(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    with running(s, roles=("scorer", "joiner")) as app:
        rt: Runtime = app.rt  # type: ignore[assignment]
        topics = rt.topics
        p = producer(bootstrap)
        for i in range(BAD_EVENTS):
            p.produce(topics["events"], b"not an event %d" % i, b"bad")
        for i in range(BAD_LABELS):
            p.produce(topics["feedback"], b'{"label": true, "n": %d}' % i, b"bad")
        assert p.flush(30) == 0
        dead = read_topic(
            bootstrap,
            topics["dead-letter"],
            until=lambda got: len(got) >= 2 * BAD_EVENTS + BAD_LABELS,
            timeout_s=60,
        )
    copies = [dict(m.headers()) for m in dead]
    assert len(copies) == 2 * BAD_EVENTS + BAD_LABELS
    by_origin = Counter(
        (h[H_TOPIC].decode(), h[H_ROLE].decode(), h[H_GROUP].decode(), h[H_STAGE].decode())
        for h in copies
    )
    assert by_origin == {
        (topics["events"], "scorer", f"t{uid}-scorer", "decode"): BAD_EVENTS,
        (topics["events"], "joiner", f"t{uid}-joiner", "join-decode"): BAD_EVENTS,
        (topics["feedback"], "joiner", f"t{uid}-joiner", "join-decode"): BAD_LABELS,
    }
    # keeping one role's copies gives each bad event once
    scorer_events = {
        (h[H_TOPIC], h[H_PARTITION], h[H_OFFSET]) for h in copies if h[H_ROLE] == b"scorer"
    }
    joiner_events = {
        (h[H_TOPIC], h[H_PARTITION], h[H_OFFSET])
        for h in copies
        if h[H_ROLE] == b"joiner" and h[H_TOPIC] == topics["events"].encode()
    }
    assert len(scorer_events) == BAD_EVENTS and scorer_events == joiner_events
