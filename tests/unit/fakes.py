"""Fakes shared by unit tests of the Kafka layer."""

from __future__ import annotations


class FakeMsg:
    """A consumed record: topic, partition, offset and a value; never an error."""

    def __init__(self, topic: str, partition: int, offset: int, value: bytes = b"v") -> None:
        self._t, self._p, self._o, self._v = topic, partition, offset, value

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._v
