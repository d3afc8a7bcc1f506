"""Errors of the Kafka layer."""

from streamserve.errors import StreamserveError


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
