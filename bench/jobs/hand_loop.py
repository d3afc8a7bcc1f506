"""A hand-written scoring loop: confluent-kafka consume, a decode per record (fastavro for
Avro events, ``json`` for JSON ones), River predict_proba_one (a scaled logistic
regression; for JSON, River's StandardScaler on the numbers and OneHotEncoder on the
strings), fastavro encode, produce."""

from __future__ import annotations

import signal

from _shared import codec_for, job_args, model_for, score
from confluent_kafka import Consumer, Producer


def main() -> None:
    a = job_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    codec, model = codec_for(a.format, a.topics_dir), model_for(a.format)
    consumer = Consumer(
        {
            "bootstrap.servers": a.bootstrap,
            "group.id": a.group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 50,
        }
    )
    producer = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 5})
    consumer.subscribe([a.input])
    produce, topic = producer.produce, a.output
    while not stop:
        for m in consumer.consume(1000, 0.1):
            if m.error() is None:
                produce(topic, score(codec, model, m.value()), m.key())
        producer.poll(0)
    producer.flush(10)
    consumer.close()


if __name__ == "__main__":
    main()
