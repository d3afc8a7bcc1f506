"""The learner's reader of the prediction topics: it keeps the model's answers by event id
(the version and what it answered), bounded, other models' skipped, an undecodable
prediction counted; it starts from the lookback's offsets and finds new partitions."""

from __future__ import annotations

from typing import Any

from confluent_kafka import OFFSET_END, KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from streamserve.drift.served import ServedVersions
from streamserve.metrics import Metrics
from streamserve.records import Prediction
from streamserve.serde.codecs import Serde
from streamserve.serde.schemas import SchemaCatalog
from streamserve.topics import default_topics_dir
from tests.fakes import FakeMsg


class Reader:
    """A consumer of assigned partitions: hands out ``batches``; ``offsets_for_times``
    answers ``found`` per partition (-1: nothing that recent)."""

    def __init__(self, batches: list[list[FakeMsg]], found: dict[int, int]) -> None:
        self.batches = batches
        self.found = found
        self.assigned: list[tuple[str, int, int]] = []
        self.closed = False

    def offsets_for_times(self, tps: list[Any], timeout: float) -> list[Any]:
        for tp in tps:
            tp.offset = self.found.get(tp.partition, -1)
        return tps

    def incremental_assign(self, tps: list[Any]) -> None:
        self.assigned += [(tp.topic, tp.partition, tp.offset) for tp in tps]

    def consume(self, n: int, timeout: float) -> list[FakeMsg]:
        return self.batches.pop(0) if self.batches else []

    def close(self) -> None:
        self.closed = True


def _prediction(serde: Serde, event_id: str, model: str, version: int, p: float) -> bytes:
    return serde.prediction_encoder().encode(
        Prediction(event_id, model, version, p >= 0.5, {"true": p, "false": 1 - p}, p, None, 1)
    )


def test_it_keeps_the_models_answers_by_event_bounded() -> None:
    serde = Serde(SchemaCatalog.from_dir(default_topics_dir()))
    registry = CollectorRegistry()
    msgs = [
        FakeMsg("predictions", 0, 0, _prediction(serde, "e1", "m", 3, 0.9)),
        FakeMsg("predictions", 0, 1, _prediction(serde, "e2", "other", 7, 0.2)),
        FakeMsg("predictions", 0, 2, b"\x00garbage"),
        FakeMsg("shadow-predictions", 1, 0, _prediction(serde, "e3", "m", 4, 0.1)),
        FakeMsg("predictions", 0, 3, _prediction(serde, "e4", "m", 4, 0.6)),
    ]
    reader = Reader([msgs], {0: 12})
    served = ServedVersions(
        model="m",
        consumer_factory=lambda: reader,
        topics=["predictions", "shadow-predictions"],
        partitions=lambda topic: [0] if topic == "predictions" else [1],
        decoder=serde.prediction_decoder(),
        metrics=Metrics(registry),
        max_events=2,
    )
    served.poll()
    assert reader.assigned == [("predictions", 0, 12), ("shadow-predictions", 1, OFFSET_END)]
    assert served.get("e1") is None  # the oldest, past max_events
    assert served.get("e2") is None  # another model's
    e3, e4 = served.get("e3"), served.get("e4")
    assert e3 is not None and e3.version == 4 and e3.scored.prediction is False
    assert (
        e4 is not None
        and e4.scored.score == 0.6
        and e4.scored.probabilities
        == {
            "true": 0.6,
            "false": 0.4,
        }
    )
    assert len(served) == 2
    skipped = registry.get_sample_value(
        "streamserve_live_error_skipped_total", {"model": "m", "reason": "prediction"}
    )
    assert skipped == 1
    served.close()
    assert reader.closed


def test_a_broker_that_does_not_answer_is_counted_and_tried_again_later() -> None:
    serde = Serde(SchemaCatalog.from_dir(default_topics_dir()))
    registry = CollectorRegistry()
    calls: list[str] = []

    def partitions(topic: str) -> list[int]:
        calls.append(topic)
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "down"))

    served = ServedVersions(
        model="m",
        consumer_factory=lambda: Reader([], {}),
        topics=["predictions"],
        partitions=partitions,
        decoder=serde.prediction_decoder(),
        metrics=Metrics(registry),
    )
    served.poll()
    served.poll()  # not listed again before the refresh interval
    assert calls == ["predictions"]
    skipped = registry.get_sample_value(
        "streamserve_live_error_skipped_total", {"model": "m", "reason": "kafka"}
    )
    assert skipped == 1
