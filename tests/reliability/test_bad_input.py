"""Promise 2: bad input never stops a partition.

Generated bad records (hypothesis) are interleaved with good ones on `events` and
`feedback` while the scorer, joiner and learner run. Every record must come out exactly
once: a prediction (or example) for a good one, a dead-letter copy (raw bytes, headers
naming its source) for a bad one; no role dies; the groups' committed offsets reach the
end of the inputs.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from collections import Counter
from typing import Any

import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamserve.kafka import dead_letter as dl
from streamserve.serde.exceptions import DecodeError
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, running, wait_for
from tests.reliability.faults import reader
from tests.reliability.tally import Tally

_runs = itertools.count()
ID = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def _nested(depth: int) -> bytes:
    return b'{"event_id":"deep","features":{"a":' + b"[" * depth + b"]" * depth + b"}}"


BAD_EVENT = st.one_of(
    st.just(("empty", b"")),
    st.binary(min_size=1, max_size=30).map(lambda b: ("truncated", b'{"event_id": "x", ' + b)),
    st.binary(max_size=40).map(lambda b: ("wrong magic byte", b"\x07" + b)),
    st.integers(1000, 2**31 - 1).map(
        lambda i: ("unknown schema id", b"\x00" + struct.pack(">I", i) + b"\x02a\x00")
    ),
    st.binary(max_size=6).map(lambda b: ("truncated avro", b"\x00\x00\x00\x00\x01" + b)),
    st.one_of(st.integers(), st.floats(), st.lists(st.integers(), max_size=3)).map(
        lambda v: ("wrong types", _json({"event_id": v, "features": {}}))
    ),
    st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3)).map(
        lambda v: ("wrong types", _json({"event_id": "w", "features": v}))
    ),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(
        lambda f: ("missing event_id", _json({"features": f}))
    ),
    st.integers(1025, 200_000).map(
        lambda n: ("huge strings", _json({"event_id": "h" * n, "features": {}}))
    ),
    st.integers(2_000, 50_000).map(lambda n: ("deep nesting", _nested(n))),
)

# Decodable but odd: they must be scored (or dead-lettered at the score stage), once.
ODD_EVENT = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf]).map(
        lambda v: ("NaN and inf", {"x": v, "c": "a"})
    ),
    st.integers(1000, 100_000).map(lambda n: ("huge strings", {"x": 1.0, "c": "s" * n})),
)

BAD_LABEL = st.one_of(
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2).map(
        lambda v: ("labels of the wrong type", {"label": v})
    ),
    st.lists(st.integers(), max_size=3).map(lambda v: ("labels of the wrong type", {"label": v})),
    st.just(("labels of the wrong type", {})),
)


class Sent:
    """Records produced, with the (partition, offset) each landed at."""

    def __init__(self, bootstrap: str) -> None:
        self._p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.records: list[dict[str, Any]] = []

    def send(self, topic: str, key: bytes, value: bytes, **info: Any) -> None:
        rec: dict[str, Any] = {"topic": topic, "value": value, **info}
        self.records.append(rec)

        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                rec["at"] = (msg.partition(), msg.offset())

        self._p.produce(topic, value, key, on_delivery=on_delivery)

    def flush(self) -> None:
        if self._p.flush(60):
            raise AssertionError("records not acknowledged")
        missing = [r for r in self.records if "at" not in r]
        if missing:
            raise AssertionError(f"{len(missing)} records not acknowledged")


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    bad_events=st.lists(BAD_EVENT, min_size=40, max_size=80),
    odd_events=st.lists(ODD_EVENT, min_size=5, max_size=15),
    bad_labels=st.lists(BAD_LABEL, min_size=10, max_size=20),
    good_ids=st.lists(ID, min_size=50, max_size=100, unique=True),
    dup_every=st.integers(5, 15),
)
# A fault scenario, read top to bottom: each step's effect is checked before the next.
def test_bad_records_are_dead_lettered_once_and_never_stop_a_partition(  # noqa: PLR0912, PLR0915
    bootstrap: str,
    redis_url: str,
    uid: str,
    redis_client: redis.Redis,
    tally: Tally,
    bad_events: list[tuple[str, bytes]],
    odd_events: list[tuple[str, dict[str, Any]]],
    bad_labels: list[tuple[str, dict[str, Any]]],
    good_ids: list[str],
    dup_every: int,
) -> None:
    run = f"{uid}{next(_runs)}"
    s = make_settings(
        bootstrap, redis_url, run, serde={"output_format": "json"}, joiner={"window_seconds": 600}
    )
    rt = Runtime.build(s)
    rt.create_topics()
    decode_event = rt.serde.event_decoder().decode
    for category, value in bad_events:  # the categories really are bad
        try:
            decode_event(value, 0)
        except DecodeError:
            continue
        raise AssertionError(f"{category} decoded: {value[:80]!r}")
    ev_topic, fb_topic = rt.topics["events"], rt.topics["feedback"]
    sent = Sent(bootstrap)
    good_events = 0
    bad_iter = iter(bad_events)
    odd_iter = iter(odd_events)
    # Good events with bad and odd ones between them; every dup_every-th id sent twice.
    for i, eid in enumerate(good_ids):
        body = _json({"event_id": eid, "features": {"x": float(i), "c": "abc"[i % 3]}})
        copies = 2 if i % dup_every == 0 else 1
        for _ in range(copies):
            sent.send(ev_topic, eid.encode(), body, kind="good", event_id=eid)
            good_events += 1
        for source in (bad_iter, odd_iter):
            nxt = next(source, None)
            if nxt is None:
                continue
            category, payload = nxt
            if isinstance(payload, bytes):
                sent.send(ev_topic, b"bad", payload, kind="bad", category=category)
            else:
                oid = f"odd-{len(sent.records)}"
                value = _json({"event_id": oid, "features": payload})
                sent.send(
                    ev_topic, oid.encode(), value, kind="odd", event_id=oid, category=category
                )
    for category, value in bad_iter:
        sent.send(ev_topic, b"bad", value, kind="bad", category=category)
    # Labels: good ones for half the good ids, bad ones between them.
    labelled = good_ids[::2]
    label_iter = iter(bad_labels)
    for i, eid in enumerate(labelled):
        sent.send(
            fb_topic, eid.encode(), _json({"event_id": eid, "label": i % 2 == 0}), kind="label"
        )
        nxt = next(label_iter, None)
        if nxt is not None:
            category, extra = nxt
            body = _json({"event_id": f"lbl-{i}", **extra})
            sent.send(fb_topic, b"lbl", body, kind="bad-label", category=category)
    for category, extra in label_iter:
        body = _json({"event_id": "lbl-x", **extra})
        sent.send(fb_topic, b"lbl", body, kind="bad-label", category=category)
    sent.flush()

    events = [r for r in sent.records if r["topic"] == ev_topic]
    bad = [r for r in events if r["kind"] == "bad"]
    bad_lbl = [r for r in sent.records if r["kind"] == "bad-label"]
    decodable = [r for r in events if r["kind"] != "bad"]
    matched_ids = set(labelled)

    with (
        running(s, ("scorer", "joiner")) as app,
        reader(bootstrap, rt.topics["predictions"]) as preds,
        reader(bootstrap, rt.topics["dead-letter"]) as dead,
        reader(bootstrap, rt.topics["examples"]) as examples,
    ):

        def dl_stages() -> Counter[str]:
            return Counter(_header(m, dl.H_STAGE) for m in dead.records)

        def done() -> bool:
            preds.read_until(lambda _r: True, 0)
            examples.read_until(lambda _r: True, 0)
            dead.read_until(lambda _r: True, 0)
            st_ = dl_stages()
            scorer_dl = st_["decode"] + st_["score"] + st_["encode"]
            return (
                len(preds.records) + scorer_dl >= len(events)
                and st_["join-decode"] >= len(bad) + len(bad_lbl)
                and len(examples.records) >= len(matched_ids)
            )

        wait_for(done, 120, "every record predicted, joined or dead-lettered")
        # Anything extra (a duplicate) would arrive shortly after: wait, then count.
        preds.read_until(lambda _r: False, 3)
        dead.read_until(lambda _r: False, 0.5)
        examples.read_until(lambda _r: False, 0.5)

        # Lag back to 0: both groups committed the end of both inputs.
        ends: dict[tuple[str, int], int] = {}
        for r in sent.records:
            key = (r["topic"], r["at"][0])
            ends[key] = max(ends.get(key, 0), r["at"][1] + 1)
        for group, topics in (("scorer", {ev_topic}), ("joiner", {ev_topic, fb_topic})):
            wait_for(
                lambda g=group, t=topics: _lag(bootstrap, f"t{run}-{g}", ends, t) == 0,
                30,
                f"{group} lag back to 0",
            )
        assert not app.errors, app.errors
        assert all(t.is_alive() for t in app._threads.values())

        pred_ids = Counter(json.loads(m.value())["event_id"] for m in preds.records)
        by_source: dict[tuple[str, int, int], list[str]] = {}
        for m in dead.records:
            src = (
                _header(m, dl.H_TOPIC),
                int(_header(m, dl.H_PARTITION)),
                int(_header(m, dl.H_OFFSET)),
            )
            by_source.setdefault(src, []).append(_header(m, dl.H_STAGE))
        raw = {
            (
                _header(m, dl.H_TOPIC),
                int(_header(m, dl.H_PARTITION)),
                int(_header(m, dl.H_OFFSET)),
            ): m.value() or b""
            for m in dead.records
        }
        example_ids = Counter(json.loads(m.value())["event_id"] for m in examples.records)

    lost = duplicated = 0
    for r in events:
        src = (ev_topic, *r["at"])
        stages = sorted(by_source.get(src, []))
        if r["kind"] == "bad":
            # Once by the scorer, once by the joiner (both read events), raw bytes kept.
            for stage in ("decode", "join-decode"):
                n = stages.count(stage)
                lost += n == 0
                duplicated += max(0, n - 1)
            assert raw.get(src, b"") == r["value"], "dead-letter copy is not the raw record"
    want = Counter(r["event_id"] for r in decodable)
    for eid, n in want.items():
        scored_dl = sum(
            1
            for r in decodable
            if r["event_id"] == eid
            for st_ in by_source.get((ev_topic, *r["at"]), [])
            if st_ in ("score", "encode")
        )
        got = pred_ids.get(eid, 0) + scored_dl
        lost += max(0, n - got)
        duplicated += max(0, got - n)
    for r in bad_lbl:
        stages = by_source.get((fb_topic, *r["at"]), [])
        lost += stages.count("join-decode") == 0
        duplicated += max(0, stages.count("join-decode") - 1)
    lost += len(matched_ids - set(example_ids))

    tally.fault = "bad input (hypothesis-generated) through scorer and joiner"
    tally.injected = len(bad) + len(bad_lbl) + len(odd_events)
    tally.sent = len(sent.records)
    tally.bad_inputs = len(bad) + len(bad_lbl)
    tally.lost = lost
    tally.duplicated = duplicated
    tally.crashes = len(app.errors)
    cats = Counter(r.get("category") for r in sent.records if r.get("category"))
    tally.notes = "; ".join(f"{c}: {n}" for c, n in sorted(cats.items()))
    assert lost == 0 and duplicated == 0, (lost, duplicated)
    assert good_events == sum(n for eid, n in want.items() if not eid.startswith("odd-"))
    # One row per hypothesis example; a failing example's row is written at teardown.
    tally.result = "passed"
    tally.write()
    tally.fault = ""


def _header(m: Any, name: str) -> str:
    for k, v in m.headers() or []:
        if k == name:
            return bytes(v).decode()
    raise AssertionError(f"dead-letter record without header {name}")


def _lag(bootstrap: str, group: str, ends: dict[tuple[str, int], int], topics: set[str]) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for (t, p) in ends if t in topics]
        committed = c.committed(tps, timeout=10)
        return sum(max(0, ends[(tp.topic, tp.partition)] - max(tp.offset, 0)) for tp in committed)
    finally:
        c.close()
