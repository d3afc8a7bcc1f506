"""Promise 5 (Redis): paused, then killed and restarted, Redis stops nothing for good.

Scorer, joiner and learner run while events, labels and extra examples flow. Redis is
paused (SIGSTOP) for tens of seconds: scorers must keep scoring with their loaded model
meanwhile, the learner keep learning. Then Redis is killed -9 and restarted on the same
port (with its append-only file, as a production Redis would run). At the end every
event has a prediction, every labelled event an example, and the learner has written
new versions after each outage.
"""

from __future__ import annotations

import json
import os
import random

import redis

from streamserve.records import Example
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, running, wait_for
from tests.reliability.faults import Feeder, PrivateRedis, json_ids, reader
from tests.reliability.tally import Tally

PAUSE_S = float(os.environ.get("STREAMSERVE_FAULT_REDIS_PAUSE_S", "20"))
DOWN_S = float(os.environ.get("STREAMSERVE_FAULT_REDIS_DOWN_S", "15"))
EVENTS = 12_000
FEED_S = PAUSE_S + DOWN_S + 30


def test_scoring_and_learning_survive_redis_pause_and_restart(
    bootstrap: str, uid: str, tally: Tally
) -> None:
    server = PrivateRedis().start()
    try:
        _run(bootstrap, uid, server, tally)
    finally:
        server.close()


# A fault scenario, read top to bottom: each step's effect is checked before the next.
def _run(bootstrap: str, uid: str, server: PrivateRedis, tally: Tally) -> None:  # noqa: PLR0915
    s = make_settings(
        bootstrap,
        server.url,
        uid,
        serde={"output_format": "json"},
        redis={"socket_timeout_s": 1.0},
        joiner={"window_seconds": 600},
    )
    rt = Runtime.build(s)
    rt.create_topics()
    rng = random.Random(uid)
    ids = [f"{uid}-{i}" for i in range(EVENTS)]
    events, labels = [], []
    for eid in ids:
        x = rng.gauss(0, 1)
        events.append((eid.encode(), json.dumps({"event_id": eid, "features": {"x": x}}).encode()))
        labels.append((eid.encode(), json.dumps({"event_id": eid, "label": x > 0}).encode()))
    # Examples straight to the examples topic too, so the learner has input while the
    # joiner waits for Redis.
    encode = rt.serde.example_encoder().encode
    direct = [
        (f"x-{i}".encode(), encode(Example(f"x-{i}", {"x": float(i % 7)}, i % 2 == 0, i, i)))
        for i in range(EVENTS // 2)
    ]
    probe = redis.Redis.from_url(server.url, socket_timeout=2)
    model = s.models[0].name

    with running(s, ("scorer", "joiner", "learner")) as app:
        learned = app.rt.metrics.examples_learned.labels(model)
        ev_feed = Feeder(bootstrap, rt.topics["events"], events, EVENTS / FEED_S)
        fb_feed = Feeder(bootstrap, rt.topics["feedback"], labels, EVENTS / FEED_S)
        ex_feed = Feeder(bootstrap, rt.topics["examples"], direct, len(direct) / FEED_S)
        for feed in (ev_feed, fb_feed, ex_feed):
            feed.start()
        with reader(bootstrap, rt.topics["predictions"]) as preds:
            wait_for(lambda: (rt.store.latest_version(model) or 0) >= 1, 60, "a first snapshot")
            v_before_pause = rt.store.latest_version(model) or 0

            # 1. Redis paused: scorers keep scoring, the learner keeps learning.
            server.pause()
            preds.read_until(lambda _r: False, 1.0)
            n0, l0 = len(preds.records), learned._value.get()
            preds.read_until(lambda _r: False, PAUSE_S - 1.0)
            scored_paused = len(preds.records) - n0
            learned_paused = learned._value.get() - l0
            server.resume()
            wait_for(
                lambda: (
                    (probe.get(rt.store.latest_key(model)) is not None)
                    and int(probe.get(rt.store.latest_key(model)) or 0) > v_before_pause
                ),
                60,
                "a checkpoint after the pause",
            )
            v_after_pause = int(probe.get(rt.store.latest_key(model)) or 0)

            # 2. Redis killed -9, down for a while, restarted on the same port.
            server.kill9()
            preds.read_until(lambda _r: False, 1.0)
            n1 = len(preds.records)
            preds.read_until(lambda _r: False, DOWN_S - 1.0)
            scored_down = len(preds.records) - n1
            server.start()
            wait_for(
                lambda: int(probe.get(rt.store.latest_key(model)) or 0) > v_after_pause,
                60,
                "a checkpoint after the restart",
            )
            for feed in (ev_feed, fb_feed, ex_feed):
                feed.join(FEED_S + 60)
                assert feed.error is None, feed.error
            want = set(ids)
            preds.read_until(lambda r: want <= set(json_ids(r)), 120)
            got = json_ids(preds.records)
        with reader(bootstrap, rt.topics["examples"]) as examples:
            examples.read_until(lambda r: want <= set(json_ids(r)), 120)
            got_examples = json_ids(examples.records)
        errors = dict(app.errors)
        alive = all(t.is_alive() for t in app._threads.values())
    probe.close()
    rt.redis.close()

    lost = len(want - set(got)) + len(want - set(got_examples))
    tally.fault = f"Redis paused {PAUSE_S:.0f} s, then killed -9 and restarted after {DOWN_S:.0f} s"
    tally.injected = 2
    tally.sent = 2 * EVENTS
    tally.lost = lost
    tally.duplicated = (len(got) - len(set(got))) + (len(got_examples) - len(set(got_examples)))
    tally.crashes = len(errors) + (0 if alive else 1)
    tally.notes = (
        f"while paused: {scored_paused} predictions, {learned_paused:.0f} examples learned; "
        f"while down: {scored_down} predictions; versions v{v_before_pause} -> "
        f"v{v_after_pause} (after pause) -> newer after restart"
    )
    assert lost == 0, tally.notes
    assert tally.crashes == 0, errors
    assert scored_paused > 0, "the scorer stopped scoring while Redis was paused"
    assert scored_down > 0, "the scorer stopped scoring while Redis was down"
    assert learned_paused > 0, "the learner stopped learning while Redis was paused"
