"""The benchmark's timing helpers: rates from output CreateTime, stamped load events."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.kafka_io import (
    STAMPED_ID_LEN,
    EventFactory,
    StampedEvents,
    Written,
    central_rate,
    stamped_id,
    timestamp_rate,
)
from bench.latency import percentile
from streamserve.serde import SchemaCatalog, Serde

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir(REPO_TOPICS)


def _written(pairs: list[tuple[bytes, int]]) -> Written:
    return Written([k for k, _ in pairs], [t for _, t in pairs], {1})


def test_rate_is_input_records_over_the_createtime_span() -> None:
    expected = {f"e{i}".encode() for i in range(1000)}
    # 1,000 records stamped over 500 ms, out of order across partitions
    pairs = [(f"e{i}".encode(), 10_000 + (i * 7919 % 1000) // 2) for i in range(1000)]
    timed = timestamp_rate(_written(pairs), expected)
    assert (timed.first_ms, timed.last_ms) == (10_000, 10_499)
    assert timed.missing == 0 and timed.distinct == 1000
    assert timed.rate == pytest.approx(1000 / 0.499)


def test_the_run_ends_when_the_last_batch_reached_the_broker_not_at_the_last_produce() -> None:
    expected = {f"e{i}".encode() for i in range(1000)}
    pairs = [(f"e{i}".encode(), 10_000 + i // 2) for i in range(1000)]  # produced in 499 ms
    # the client's queue drained into the broker 501 ms after the last produce call
    timed = timestamp_rate(_written(pairs), expected, appended_at=11.0)
    assert timed.end_ms == 11_000
    assert timed.rate == pytest.approx(1000 / 1.0)
    assert timed.produce_rate == pytest.approx(1000 / 0.499)
    # a settle poll that saw the end before the last CreateTime's millisecond changes nothing
    early = timestamp_rate(_written(pairs), expected, appended_at=10.2)
    assert early.end_ms == 10_499 and early.rate == pytest.approx(early.produce_rate)


def test_missing_ids_void_the_rate_and_duplicates_are_not_counted_twice() -> None:
    expected = {f"e{i}".encode() for i in range(10)}
    pairs = [(f"e{i}".encode(), 1000 + i) for i in range(9)] + [(b"e0", 2000)]
    timed = timestamp_rate(_written(pairs), expected)
    assert timed.missing == 1 and timed.rate == 0.0
    complete = timestamp_rate(_written([*pairs, (b"e9", 1500)]), expected)
    assert complete.count == 11 and complete.distinct == 10
    assert complete.rate == pytest.approx(10 / 1.0)


def test_central_rate_leaves_out_a_late_last_batch() -> None:
    # 10,000 records over 100 ms, then the last 100 a second later
    stamps = [i // 100 for i in range(10_000)] + [1100] * 100
    expected = {str(i).encode() for i in range(len(stamps))}
    timed = timestamp_rate(_written([(str(i).encode(), t) for i, t in enumerate(stamps)]), expected)
    assert timed.rate == pytest.approx(10_100 / 1.1)
    assert timed.bulk_rate == pytest.approx(100_000, rel=0.05)
    assert central_rate([7] * 50) == 0.0


def test_an_output_within_one_millisecond_has_no_rate() -> None:
    expected = {b"a", b"b"}
    assert timestamp_rate(_written([(b"a", 5), (b"b", 5)]), expected).rate == 0.0


def test_stamped_events_decode_as_the_events_they_claim(catalog: SchemaCatalog) -> None:
    events = StampedEvents(EventFactory(catalog), pool=3)
    decode = Serde(catalog).event_decoder().decode
    seen_features = set()
    for i, sent_us in ((0, 1), (7, 1_795_000_000_123_456), (10**9 + 1, 9_999_999_999_999_999)):
        key, value = events.make(i, sent_us)
        assert key == stamped_id(i, sent_us) and len(key) == STAMPED_ID_LEN
        event = decode(value, 1234)
        assert event.event_id == key.decode()
        assert int(event.event_id.partition("@")[2]) == sent_us
        assert event.ts == 1234  # null in the body: the record's timestamp
        assert len(event.features) == 10
        seen_features.add(tuple(sorted(event.features.items())))
    assert len(seen_features) == 3  # the pool's templates differ


def test_percentile_picks_the_nearest_rank() -> None:
    values = [float(v) for v in random.Random(3).sample(range(1, 101), 100)]
    assert percentile(values, 50) == 51.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) != percentile([], 50)  # nan
