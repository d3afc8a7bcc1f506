"""A hand-written loop that decodes and scores each batch with numpy: confluent-kafka
consume; the batch decoded (Avro: the doubles read straight out of the bytes with numpy,
fastavro for an event of another layout; JSON: orjson); a feature matrix (with the
one-hot columns of the strings); one matrix product by the River model's weights; a
sigmoid; predictions written by a plain Avro writer; produce; poll. No delivery
guarantees (as the raw pipe), and the consumer fetches as streamserve's consumers do
(``fetch.queue.backoff.ms`` 20), so librdkafka's prefetch pause does not slow it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from _batch import AvroDoubles, LinearWeights, PredictionWriter, read_json
from _shared import job_args, load_schema, model_for, serve

Scorer = Callable[[Sequence[bytes]], list[bytes]]


def scorer(fmt: str, topics_dir: str) -> Scorer:
    """Values in, predictions out, a batch at a time."""
    weights = LinearWeights.from_river(model_for(fmt))
    write = PredictionWriter().write
    if fmt == "json":
        loads = orjson.loads

        def score_json(values: Sequence[bytes]) -> list[bytes]:
            numbers, onehot, heads = read_json(values, loads, weights)
            return write(heads, weights.proba(numbers, onehot), int(time.time() * 1000))

        return score_json
    schema = load_schema(topics_dir, "event")
    doubles: list[AvroDoubles] = []

    def score_avro(values: Sequence[bytes]) -> list[bytes]:
        if not doubles:  # the layout, from the first event
            doubles.append(AvroDoubles(schema, values[0]))
        numbers, heads = doubles[0].read(values)
        return write(heads, weights.proba(numbers), int(time.time() * 1000))

    return score_avro


def main() -> None:
    a = job_args()
    score = scorer(a.format, a.topics_dir)

    def handle(msgs: list[Any], produce: Callable[..., None], topic: str) -> None:
        for m, out in zip(msgs, score([m.value() for m in msgs]), strict=True):
            produce(topic, out, m.key())

    serve(a, handle, {"fetch.queue.backoff.ms": 20})


if __name__ == "__main__":
    main()
