"""Create the topics declared in topics/topics.yaml, idempotently, and report mismatches."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

from streamserve.kafka.exceptions import FatalKafkaError, error_of
from streamserve.topics import TopicSpec

logger = logging.getLogger(__name__)


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"created  {t}" for t in self.created]
        out += [f"exists   {t}" for t in self.existing]
        out += [f"MISMATCH {m}" for m in self.mismatches]
        return out


def ensure_topics(
    admin_conf: Mapping[str, Any],
    specs: Mapping[str, TopicSpec],
    *,
    prefix: str = "",
    replication_factor: int | None = None,
    timeout_s: float = 15.0,
) -> TopicReport:
    """Create missing topics; compare existing ones with their spec (partitions, cleanup)."""
    admin = AdminClient(dict(admin_conf))
    report = TopicReport()
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise FatalKafkaError(f"cannot list topics: {exc}") from exc
    to_create: list[NewTopic] = []
    for spec in specs.values():
        name = prefix + spec.name
        if name in existing:
            report.existing.append(name)
            have = len(existing[name].partitions)
            if have != spec.partitions:
                report.mismatches.append(
                    f"{name}: {have} partitions, topics.yaml says {spec.partitions}"
                )
            continue
        config = {"cleanup.policy": spec.cleanup_policy, **dict(spec.config)}
        to_create.append(
            NewTopic(
                name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor or spec.replication_factor,
                config=config,
            )
        )
    if to_create:
        for name, fut in admin.create_topics(to_create, request_timeout=timeout_s).items():
            try:
                fut.result(timeout=timeout_s)
                report.created.append(name)
            except KafkaException as exc:
                err = error_of(exc)
                if err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    report.existing.append(name)
                else:
                    raise FatalKafkaError(f"cannot create topic {name}: {exc}") from exc
    _compare_cleanup(admin, specs, prefix, report, [n for n in report.existing], timeout_s)
    return report


def _compare_cleanup(
    admin: AdminClient,
    specs: Mapping[str, TopicSpec],
    prefix: str,
    report: TopicReport,
    names: list[str],
    timeout_s: float,
) -> None:
    by_name = {prefix + s.name: s for s in specs.values()}
    if not names:
        return
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
    try:
        futures = admin.describe_configs(resources, request_timeout=timeout_s)
    except (KafkaException, ValueError) as exc:  # some brokers do not describe configs
        logger.warning("cannot describe topic configs; cleanup.policy not compared: %s", exc)
        return
    for res, fut in futures.items():
        try:
            entries = fut.result(timeout=timeout_s)
        except KafkaException as exc:
            logger.warning(
                "cannot describe config of %s; cleanup.policy not compared: %s", res.name, exc
            )
            continue
        entry = entries.get("cleanup.policy")
        want = by_name[res.name].cleanup_policy
        if entry is not None and entry.value and entry.value != want:
            report.mismatches.append(
                f"{res.name}: cleanup.policy={entry.value}, topics.yaml says {want}"
            )


def partitions_of(admin_conf: Mapping[str, Any], topic: str, timeout_s: float = 10.0) -> list[int]:
    """The partition ids of a topic (empty if it does not exist)."""
    admin = AdminClient(dict(admin_conf))
    md = admin.list_topics(topic=topic, timeout=timeout_s)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return []
    return sorted(t.partitions)


def broker_answers(client: Any, timeout_s: float = 5.0) -> bool:
    """True when the broker answers a metadata request from ``client``."""
    try:
        client.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return True


def look_up_topics(client: Any, topics: Sequence[str], budget_s: float = 1.0) -> bool:
    """Fetch the metadata of the ``topics`` a new producer writes to, before its first
    record: otherwise librdkafka looks a topic up only when the first record for it is
    produced, and that record (a role's first dead-letter copy or drift alert, on which
    the learner's next checkpoint waits) sat 0.5 s on the development broker. At most
    ``budget_s`` in all; False, logged at WARNING, when the broker did not answer within
    it (a topic not looked up is looked up on first use, as without this)."""
    deadline = time.monotonic() + budget_s
    for topic in dict.fromkeys(topics):
        try:
            client.list_topics(topic=topic, timeout=max(0.0, deadline - time.monotonic()))
        except KafkaException as exc:
            logger.warning(
                "no metadata for %s within %.1f s (%s): its first record waits for the look-up",
                topic,
                budget_s,
                exc,
            )
            return False
    return True
