"""Tells when a topic was recreated under the same name: the broker lost it and made it
again empty, so offsets kept from before (a learner's, in its snapshot) mean nothing.

A broker that lost its state (the memory-only development broker restarted) answers a
fetch past the new end with no records, not OFFSET_OUT_OF_RANGE, so librdkafka's
``auto.offset.reset`` never fires; once the topic refills past the old position the
reader would silently skip what came before it. The topic id (KIP-516) is what changes.

The check is conservative: it reports a recreation only when two ids were both observed
and differ. An unknown id (a broker without topic ids, the topic missing, the broker
away) never triggers a reset. After the client lost its connection, records are held
back until the id was confirmed, so none from a recreated topic is taken for old data.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0
HOLD_RETRY_S = 1.0
LOOKUP_TIMEOUT_S = 2.0
_NO_ID = "AAAAAAAAAAAAAAAAAAAAAA"  # the all-zero Uuid: a broker without topic ids


class Verdict(enum.Enum):
    GO = "go"  # same topic (or nothing known): use the records
    HOLD = "hold"  # the connection was lost and the id is not confirmed yet: wait
    RECREATED = "recreated"  # a new topic under the same name: start from its beginning


class TopicIdLookup:
    """The current id of one topic, or None when it cannot be told."""

    def __init__(self, admin_conf: Mapping[str, Any], topic: str) -> None:
        self._conf = dict(admin_conf)
        self._topic = topic

    def __call__(self) -> str | None:
        # A new client each time: lookups are rare, and one kept across a broker restart
        # may still hold what the old broker told it.
        admin = AdminClient(self._conf)  # kept alive until the answer came
        futures = admin.describe_topics(
            TopicCollection([self._topic]), request_timeout=LOOKUP_TIMEOUT_S
        )
        try:
            found = futures[self._topic].result(timeout=LOOKUP_TIMEOUT_S * 2)
        except (KafkaException, TimeoutError) as exc:
            logger.warning("cannot look up the topic id of %s: %s", self._topic, exc)
            return None
        uid = str(found.topic_id) if found.topic_id is not None else ""
        return uid if uid and uid != _NO_ID else None


class TopicIdentity:
    """Remembers a topic's id and decides, before records are used, whether it changed.

    ``disconnects`` counts the client's lost connections (``ClientErrors.disconnects``):
    after one, records wait until the id is confirmed. Otherwise the id is checked every
    ``every_s``.
    """

    def __init__(
        self,
        lookup: Callable[[], str | None],
        disconnects: Callable[[], int],
        *,
        every_s: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._disconnects = disconnects
        self._every_s = every_s
        self._clock = clock
        self.known: str | None = None
        self.previous: str | None = None
        self._seen = disconnects()
        self._suspect = False
        self._next = 0.0

    def adopt(self, known: str | None) -> None:
        """Start from ``known`` (the id a snapshot recorded, None if it recorded none);
        the next check looks the id up."""
        self.known = known
        self._suspect = known is not None  # records wait until the id is confirmed
        self._next = 0.0

    def check(self, holding_records: bool) -> Verdict:
        """GO, HOLD (only while ``holding_records`` and the id is unconfirmed after a lost
        connection) or RECREATED (``known`` is then the new id, ``previous`` the old)."""
        n = self._disconnects()
        if n != self._seen:
            self._seen = n
            self._suspect = True
            self._next = 0.0
        now = self._clock()
        if now < self._next:
            return Verdict.HOLD if self._suspect and holding_records else Verdict.GO
        try:
            observed = self._lookup()
        except Exception as exc:  # an admin call that failed tells nothing
            logger.warning("topic id lookup failed: %s", exc)
            observed = None
        if observed is None:
            if self._suspect and self.known is not None:
                self._next = now + HOLD_RETRY_S
                if not holding_records:
                    return Verdict.GO  # nothing to protect yet; looked up again soon
                logger.warning(
                    "topic id not confirmed after a lost connection; records wait (was %s)",
                    self.known,
                )
                return Verdict.HOLD
            self._suspect = False
            self._next = now + self._every_s
            return Verdict.GO
        self._suspect = False
        self._next = now + self._every_s
        if self.known is None or observed == self.known:
            self.known = observed
            return Verdict.GO
        self.previous, self.known = self.known, observed
        return Verdict.RECREATED
