"""Errors of the Kafka layer."""

from confluent_kafka import KafkaError, KafkaException

from streamserve.errors import StreamserveError


def error_of(exc: KafkaException) -> KafkaError | None:
    """The client's :class:`KafkaError` carried by ``exc``, when it carries one."""
    err = exc.args[0] if exc.args else None
    return err if isinstance(err, KafkaError) else None


class KafkaLayerError(StreamserveError):
    """Base of the Kafka layer's errors."""


class DeliveryError(KafkaLayerError):
    """The broker did not acknowledge a produced record: offsets are not stored past it."""


class FatalKafkaError(KafkaLayerError):
    """An error no retry will fix (authentication, fenced producer, bad configuration)."""


class TopicMismatchError(KafkaLayerError):
    """Existing topics differ from topics/topics.yaml."""


class TransactionAborted(KafkaLayerError):
    """A batch's transaction was aborted and its input rewound; the batch runs again."""
