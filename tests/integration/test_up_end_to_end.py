"""The quick start: `streamserve up` on embedded defaults, driven by a second Kafka client."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time

from kafka import KafkaConsumer, KafkaProducer

from streamserve.client import PredictionDeserializer
from tests.integration.harness import wait_for
from tests.integration.procs import streamserve


def test_up_serves_a_second_client_and_versions_rise_with_labels() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVE")}
    env["STREAMSERVE_HTTP_PORT"] = "0"
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
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, proc.output()
