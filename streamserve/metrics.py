"""Every Prometheus metric streamserve exports, in one place.

Metrics live in a registry passed in (one per process in production, one per test), so
several apps can run side by side without clashing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


_API_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """The metric families, labelled by role, model or stage as each needs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        # scorer
        self.events_scored = Counter(
            "streamserve_events_scored", "Events scored, per model.", ["model"], registry=r
        )
        self.batch_seconds = Histogram(
            "streamserve_batch_seconds",
            "Wall time to process one micro-batch, per role.",
            ["role"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "streamserve_batch_records",
            "Records per micro-batch, per role.",
            ["role"],
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "streamserve_end_to_end_seconds",
            "Event timestamp to prediction produced, per model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.serving_version = Gauge(
            "streamserve_serving_version",
            "Snapshot version a scorer serves.",
            ["model"],
            registry=r,
        )
        self.swaps = Counter(
            "streamserve_snapshot_swaps",
            "Snapshots hot-swapped into scoring.",
            ["model"],
            registry=r,
        )
        self.swap_failures = Counter(
            "streamserve_snapshot_swap_failures",
            "Snapshots refused or failed to load (the old one kept serving).",
            ["model", "reason"],
            registry=r,
        )
        self.swap_delay_seconds = Histogram(
            "streamserve_snapshot_swap_delay_seconds",
            "Snapshot written to snapshot serving in this scorer.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # joiner
        self.joins_matched = Counter(
            "streamserve_joins_matched", "Events joined with their labels.", registry=r
        )
        self.joins_expired = Counter(
            "streamserve_joins_expired",
            "Events or labels whose join window passed without a match.",
            ["kind"],
            registry=r,
        )
        self.join_records = Counter(
            "streamserve_join_records", "Records read by the joiner.", ["kind"], registry=r
        )
        # learner
        self.examples_learned = Counter(
            "streamserve_examples_learned", "Examples learned, per model.", ["model"], registry=r
        )
        self.examples_sampled_out = Counter(
            "streamserve_examples_sampled_out",
            "Negative examples left out by the model's negative sampling (neither scored "
            "nor learned), per model.",
            ["model"],
            registry=r,
        )
        self.checkpoints = Counter(
            "streamserve_checkpoints", "Snapshots written, per model.", ["model"], registry=r
        )
        self.checkpoint_failures = Counter(
            "streamserve_checkpoint_failures",
            "Snapshot writes that failed and will be retried, per model.",
            ["model", "reason"],
            registry=r,
        )
        self.learner_version = Gauge(
            "streamserve_learner_version", "Newest snapshot version written.", ["model"], registry=r
        )
        self.learner_leader = Gauge(
            "streamserve_learner_leader",
            "1 while this process holds the model's lease.",
            ["model"],
            registry=r,
        )
        self.examples_topic_recreated = Counter(
            "streamserve_examples_topic_recreated",
            "Times the learner found the examples topic recreated (a broker that lost it) "
            "and restarted every partition from the new topic's beginning, per model.",
            ["model"],
            registry=r,
        )
        self.learning_paused = Gauge(
            "streamserve_learning_paused",
            "1 while the model's learning is paused (examples are read but not learned), "
            "else 0; per model.",
            ["model"],
            registry=r,
        )
        self.examples_paused = Counter(
            "streamserve_examples_paused",
            "Examples the learner read while its learning was paused and did not learn "
            "(they are passed over for good), per model.",
            ["model"],
            registry=r,
        )
        self.learning_state_unread = Counter(
            "streamserve_learning_state_unread",
            "Times the learner could not read or write whether its learning is paused "
            "(Redis unreachable; the state last read holds), per model.",
            ["model"],
            registry=r,
        )
        self.live_error = Gauge(
            "streamserve_live_error",
            "Mean error on the events the serving version served (which='serving') and "
            "its predecessor's on the same events (which='predecessor'), per model; set "
            "while learner.rollback is enabled.",
            ["model", "which"],
            registry=r,
        )
        self.live_error_skipped = Counter(
            "streamserve_live_error_skipped",
            "Times the live error of the serving version could not be measured or acted on: "
            "reason 'redis' (unreachable), 'load' (a version that did not verify or load), "
            "'rollback' (the rollback it called for failed), 'prediction' (a prediction "
            "read back that did not decode), 'kafka' (the prediction topics' partitions "
            "could not be listed) or 'unattributed' (examples whose prediction was not "
            "seen), per model.",
            ["model", "reason"],
            registry=r,
        )
        self.auto_rollbacks = Counter(
            "streamserve_auto_rollbacks",
            "Serving versions rolled back to their predecessor by learner.rollback, per model.",
            ["model"],
            registry=r,
        )
        self.breaker_trips = Counter(
            "streamserve_breaker_trips",
            "Times the training breaker paused learning, per model and statistic "
            "(label_rate, class_mix, label_mean, label_scale).",
            ["model", "statistic"],
            registry=r,
        )
        self.prequential = Gauge(
            "streamserve_prequential_metric",
            "Running prequential metric of the learner.",
            ["model", "metric"],
            registry=r,
        )
        # drift
        self.drift_alerts = Counter(
            "streamserve_drift_alerts",
            "Drift warnings and detections, per model, signal, detector, severity and action.",
            ["model", "signal", "detector", "severity", "action"],
            registry=r,
        )
        self.drift_promotions = Counter(
            "streamserve_drift_promotions",
            "Models promoted by a retraining policy (a new snapshot version), per model.",
            ["model", "policy"],
            registry=r,
        )
        self.auto_promotion_decisions = Counter(
            "streamserve_auto_promotion_decisions",
            "Automatic promotion decisions on a shadow's paired errors against the "
            "champion's: outcome 'promoted', 'kept' or 'failed' (significant, but the "
            "promotion was refused or Redis was gone), per shadow model.",
            ["model", "outcome"],
            registry=r,
        )
        self.auto_promotion_skipped = Counter(
            "streamserve_auto_promotion_skipped",
            "Automatic promotion work skipped: reason 'redis' (a batch's errors not written "
            "or paired yet: Redis unavailable), 'experiment' (the stored experiment is "
            "malformed) or 'unpaired' (errors dropped that found no champion's error within "
            "max_pending), per model.",
            ["model", "reason"],
            registry=r,
        )
        self.batch_scoring_fallbacks = Counter(
            "streamserve_batch_scoring_fallbacks",
            "Batches a model failed to score at once, scored one record at a time instead.",
            ["model"],
            registry=r,
        )
        self.alert_encode_failures = Counter(
            "streamserve_alert_encode_failures",
            "Drift alerts that could not be encoded, so never reached drift-alerts "
            "(counted in streamserve_drift_alerts_total and logged all the same), per model.",
            ["model"],
            registry=r,
        )
        self.replay_skipped = Counter(
            "streamserve_replay_skipped",
            "Examples a replay read back and skipped: reason 'decode' (undecodable) or "
            "'label' (a label that does not fit the task), per model.",
            ["model", "reason"],
            registry=r,
        )
        self.input_monitor_seconds = Histogram(
            "streamserve_input_monitor_seconds",
            "Time a scorer spends per batch updating its input drift monitors.",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
            registry=r,
        )
        # api
        self.api_requests = Counter(
            "streamserve_api_requests",
            "HTTP requests answered by the API, per route and status code.",
            ["route", "status"],
            registry=r,
        )
        self.api_request_seconds = Histogram(
            "streamserve_api_request_seconds",
            "Time from a request's arrival at the API to its answer, per route.",
            ["route"],
            buckets=_API_BUCKETS,
            registry=r,
        )
        self.api_batch_instances = Histogram(
            "streamserve_api_batch_instances",
            "Instances scored in one model call by the API's dynamic batcher, per model.",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=r,
        )
        self.api_records_written = Counter(
            "streamserve_api_records_written",
            "Events and labels the API wrote to Kafka, per topic and outcome "
            "(acknowledged or failed).",
            ["topic", "outcome"],
            registry=r,
        )
        # console (the operator page and what feeds it)
        self.console_write_failures = Counter(
            "streamserve_console_write_failures",
            "Console records that could not be written to Redis (logged at WARNING; what "
            "they record went on): kind 'audit', 'alert' or 'status'.",
            ["kind"],
            registry=r,
        )
        self.console_streams = Gauge(
            "streamserve_console_streams",
            "Live-update streams (server-sent events) the console has open in this process.",
            registry=r,
        )
        self.console_streams_refused = Counter(
            "streamserve_console_streams_refused",
            "Live-update streams refused because console.max_streams were open (503).",
            registry=r,
        )
        # files (score-file, backfill)
        self.file_rows_rejected = Counter(
            "streamserve_file_rows_rejected",
            "Rows of an input file (or examples-topic records) that score-file or backfill "
            "could not use and wrote to the rejects file, per command and model.",
            ["command", "model"],
            registry=r,
        )
        # shared
        self.batch_retries = Counter(
            "streamserve_batch_retries",
            "Micro-batches abandoned (transaction aborted, input rewound) to run again, "
            "per role and reason.",
            ["role", "reason"],
            registry=r,
        )
        self.client_rebuilds = Counter(
            "streamserve_kafka_client_rebuilds",
            "Times a role replaced its Kafka consumer, producer and committer in place "
            "(outputs stuck unacknowledged, or a fatal client error), per role and reason.",
            ["role", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "streamserve_consumer_lag",
            "Records in this process's assigned partitions of a topic not consumed yet: the "
            "high watermark its fetches last saw minus its position, summed over the "
            "partitions it has read from; updated every few seconds, per role and topic.",
            ["role", "topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "streamserve_dead_letters",
            "Records sent to the dead-letter topic.",
            ["stage"],
            registry=r,
        )
        self.produce_errors = Counter(
            "streamserve_produce_errors",
            "Learner outputs (dead-letter copies, drift alerts) whose delivery failed and "
            "that were produced again, per topic.",
            ["topic"],
            registry=r,
        )


API_PREFIX = "streamserve_api_"


def use_worker_values(directory: str) -> None:
    """In an API worker process, before its metrics are created: keep every value in
    files under ``directory``, which the parent process exports (:class:`WorkerMetrics`)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class WorkerMetrics(Collector):
    """The API worker processes' ``streamserve_api_*`` metrics, summed over the workers,
    for the parent's ``/metrics`` (their other metrics, e.g. their own snapshot swaps,
    stay in the workers)."""

    def __init__(self, directory: str) -> None:
        self._inner = multiprocess.MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        found = self._inner.collect()  # type: ignore[no-untyped-call]
        return [m for m in found if m.name.startswith(API_PREFIX)]


def observe_many(histogram: Any, values: Sequence[float] | np.ndarray[Any, Any]) -> None:
    """Add every value of ``values`` to the labelled histogram child ``histogram`` at once.

    ``Histogram.observe`` takes a lock and walks the buckets for every value; a scorer
    that observed each record's latency would pay that per record. This counts the batch's
    values per bucket with numpy and adds each bucket's count and the batch's sum once: the
    exported histogram is the same as observing every value (``_sum`` may differ in the
    last bits of rounding). It relies on prometheus-client's histogram child layout
    (``_upper_bounds``, ``_buckets``, ``_sum``); if a release changes it, it observes per
    value.
    """
    if len(values) == 0:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(float(value))
        return
    array = np.asarray(values, dtype=np.float64)
    # Each value lands in the first bucket whose upper bound is >= the value, as in
    # Histogram.observe; the last bound is +Inf, and NaN lands in no bucket.
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), array, side="left")
    counts = np.bincount(index, minlength=len(bounds) + 1)
    total.inc(float(array.sum()))
    for i, count in enumerate(counts[: len(bounds)].tolist()):
        if count:
            buckets[i].inc(count)
