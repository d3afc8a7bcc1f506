"""The quick start: `streamserve up` on embedded defaults, driven by a second Kafka client."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time

import httpx
from kafka import KafkaConsumer, KafkaProducer

from streamserve.client import PredictionDeserializer
from tests.integration.harness import wait_for
from tests.integration.procs import streamserve


def test_up_serves_a_second_client_and_versions_rise_with_labels() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVE")}
    env["STREAMSERVE_HTTP_PORT"] = "0"
    env["STREAMSERVE_API_PORT"] = "0"
    env["STREAMSERVE__SNAPSHOTS__CHECKPOINT_EVERY_SECONDS"] = "2"
    with streamserve(["up"], env) as proc:
        wait_for(
            lambda: "streamserve is up" in proc.output() or proc.poll() is not None,
            60,
            "the banner",
        )
        assert proc.poll() is None, proc.output()
        bootstrap = re.search(r"bootstrap servers : (\S+)", proc.output()).group(1)  # type: ignore[union-attr]
        assert re.search(r"redis url         : redis://127\.0\.0\.1:\d+/0", proc.output())

        producer = KafkaProducer(bootstrap_servers=bootstrap)
        rng = random.Random(3)

        def publish(start: int, n: int, labels: bool) -> None:
            for i in range(start, start + n):
                x = rng.uniform(-1, 1)
                eid = f"e-{i}"
                producer.send(
                    "events",
                    key=eid.encode(),
                    value=json.dumps({"event_id": eid, "features": {"x": x}}).encode(),
                )
                if labels:
                    producer.send(
                        "feedback",
                        key=eid.encode(),
                        value=json.dumps({"event_id": eid, "label": x > 0}).encode(),
                    )
            producer.flush(30)

        deserialize = PredictionDeserializer()  # the README's consumer
        consumer = KafkaConsumer(
            "predictions",
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=1000,
        )
        versions: dict[str, int] = {}

        def read() -> None:
            for record in consumer:
                p = deserialize(record.value, None)
                assert p is not None and not isinstance(p, dict)
                versions[p.event_id] = p.model_version

        publish(0, 300, labels=True)
        deadline = time.monotonic() + 90
        batch = 1
        while time.monotonic() < deadline:
            read()
            if any(v >= 2 for v in versions.values()):
                break
            publish(batch * 1000, 100, labels=True)
            batch += 1
        consumer.close()
        producer.close()
        assert len(versions) >= 300
        assert min(versions[f"e-{i}"] for i in range(300)) >= 0
        assert max(versions.values()) >= 2, proc.output()
        _http_answers_from_the_serving_version(proc.output())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, proc.output()


def _http_answers_from_the_serving_version(log: str) -> None:
    """Both HTTP protocols answer from the version the scorer has hot-swapped to."""
    url = re.search(r"http api          : (\S+)", log).group(1)  # type: ignore[union-attr]
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/v2/health/ready").status_code == 200

        def versions() -> tuple[int, int]:
            tf = client.post("/v1/models/default:predict", json={"instances": [{"x": 0.5}]})
            v2 = client.post(
                "/v2/models/default/infer",
                json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [0.5]}]},
            )
            return tf.json()["predictions"][0]["model_version"], int(v2.json()["model_version"])

        wait_for(lambda: min(versions()) >= 2, 30, "HTTP answers from version 2 or later")
