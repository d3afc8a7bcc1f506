"""librdkafka configurations for every client, built from settings in one place.

``kafka.client`` properties (security.*, sasl.*, ssl.*, ...) pass to every client
unchanged; ``kafka.consumer`` / ``kafka.producer`` add to one kind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from streamserve.errors import ConfigError
from streamserve.settings import KafkaSettings

logger = logging.getLogger(__name__)

ErrorCallback = Callable[[KafkaError], None]

_AUTH_CODES = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError._SSL,
    }
)


def is_auth_error(err: KafkaError) -> bool:
    """An authentication or authorization failure: settings, not a passing state."""
    return err.code() in _AUTH_CODES


class ClientErrors:
    """Collects errors librdkafka reports outside any call (``error_cb``).

    Transient errors (a broker down, a connection refused) are logged and retried by the
    client itself. Fatal ones and authentication failures are kept: the role loop checks
    :meth:`fatal` each batch and stops with a clear message.
    """

    def __init__(self, role: str) -> None:
        self.role = role
        self._fatal: KafkaError | None = None
        self.disconnects = 0  # connections lost: what a broker restart looks like

    def __call__(self, err: KafkaError) -> None:
        if err.fatal() or is_auth_error(err):
            if self._fatal is None:
                logger.error("%s: fatal Kafka error: %s", self.role, err.str())
            self._fatal = err
        elif err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.disconnects += 1
            logger.warning("%s: Kafka unreachable, retrying: %s", self.role, err.str())
        else:
            logger.info("%s: Kafka client: %s", self.role, err.str())

    def fatal(self) -> KafkaError | None:
        return self._fatal


def _base(s: KafkaSettings) -> dict[str, Any]:
    if not s.bootstrap_servers:
        raise ConfigError(
            "kafka.bootstrap_servers",
            "required; pass --bootstrap-servers or set STREAMSERVE_BOOTSTRAP_SERVERS",
        )
    conf: dict[str, Any] = {"bootstrap.servers": s.bootstrap_servers}
    conf.update(s.client)
    return conf


def consumer_config(
    s: KafkaSettings, group_id: str, errors: ErrorCallback, **extra: Any
) -> dict[str, Any]:
    conf = _base(s)
    conf.update(
        {
            "group.id": group_id,
            # In exactly-once mode offsets are committed inside each batch's transaction.
            "enable.auto.commit": not s.exactly_once,
            "enable.auto.offset.store": False,
            # Readers never see records of aborted transactions.
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": s.session_timeout_ms,
            "heartbeat.interval.ms": max(500, s.session_timeout_ms // 4),
            "partition.assignment.strategy": "cooperative-sticky",
            "fetch.wait.max.ms": 50,
            # When the prefetch queue is at queued.min.messages (counted over all the
            # consumer's partitions), librdkafka stops fetching for this long (1 s by
            # default): a consumer working through a backlog drained its 100,000 queued
            # records and then sat idle until the pause ended (bench/NOTES.md).
            "fetch.queue.backoff.ms": 20,
            "error_cb": errors,
        }
    )
    conf.update(s.consumer)
    conf.update(extra)
    return conf


def producer_config(
    s: KafkaSettings, errors: ErrorCallback, *, transactional_id: str | None = None
) -> dict[str, Any]:
    conf = _base(s)
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "none",
            "error_cb": errors,
        }
    )
    if transactional_id is not None:
        conf["transactional.id"] = transactional_id
    conf.update(s.producer)
    return conf


def transactional_id(s: KafkaSettings, role: str, instance: str) -> str:
    """A transactional.id unique to one role instance: ``<group prefix>-<role>-<instance>``.

    ``instance`` is ``kafka.instance_id`` when set (stable across restarts: the restarted
    instance's ``init_transactions`` bumps the producer epoch, which fences the old one
    and aborts the transaction it left open at once, instead of after
    ``transaction.timeout.ms``), else unique to the process. Either way, zombie instances
    are also fenced by the consumer group generation sent with the offsets
    (``send_offsets_to_transaction`` with the group metadata).
    """
    return f"{s.group_prefix}-{role}-{instance}"


def admin_config(s: KafkaSettings) -> dict[str, Any]:
    return _base(s)


def topic_name(s: KafkaSettings, logical: str) -> str:
    """The physical topic name: the configured prefix, then the logical name."""
    return f"{s.topic_prefix}{logical}"
