"""``kafka.client`` properties (security.protocol, sasl.*, ssl.*) reach every client:
consumer, producer (plain and transactional) and admin."""

from __future__ import annotations

from streamserve.kafka import config as kconf
from streamserve.settings import KafkaSettings

SECURITY = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "svc",
    "sasl.password": "pw",
    "ssl.ca.location": "/etc/ca.pem",
}


def _errors(_err: object) -> None:
    pass


def test_client_properties_pass_to_every_client() -> None:
    s = KafkaSettings(bootstrap_servers="b:9092", client=SECURITY)
    configs = {
        "consumer": kconf.consumer_config(s, "g", _errors),
        "producer": kconf.producer_config(s, _errors),
        "transactional producer": kconf.producer_config(s, _errors, transactional_id="t"),
        "admin": kconf.admin_config(s),
    }
    for name, conf in configs.items():
        missing = {k: v for k, v in SECURITY.items() if conf.get(k) != v}
        assert missing == {}, f"{name} lacks {sorted(missing)}"
        assert conf["bootstrap.servers"] == "b:9092"


def test_a_full_prefetch_queue_pauses_fetching_briefly_unless_told_otherwise() -> None:
    s = KafkaSettings(bootstrap_servers="b:9092")
    assert kconf.consumer_config(s, "g", _errors)["fetch.queue.backoff.ms"] == 20
    s = KafkaSettings(bootstrap_servers="b:9092", consumer={"fetch.queue.backoff.ms": 1000})
    assert kconf.consumer_config(s, "g", _errors)["fetch.queue.backoff.ms"] == 1000


def test_role_specific_properties_stay_with_their_role() -> None:
    s = KafkaSettings(
        bootstrap_servers="b:9092",
        client=SECURITY,
        consumer={"fetch.min.bytes": "10"},
        producer={"linger.ms": "20"},
    )
    consumer = kconf.consumer_config(s, "g", _errors)
    producer = kconf.producer_config(s, _errors)
    assert consumer["fetch.min.bytes"] == "10" and "fetch.min.bytes" not in producer
    assert producer["linger.ms"] == "20" and consumer.get("linger.ms") is None
