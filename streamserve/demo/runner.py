"""Runs the demo: the stack, the publisher, the tracker, the live view, then the report."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from streamserve.app import App
from streamserve.demo.baselines import baseline_hits
from streamserve.demo.exceptions import DemoError
from streamserve.demo.options import DemoOptions
from streamserve.demo.publisher import Publisher
from streamserve.demo.report import RunFacts, rolling_window, summary, write_report
from streamserve.demo.stream import DriftPoint, Sample, drifting_stream
from streamserve.demo.tracker import Tracker
from streamserve.demo.view import Frame, draw
from streamserve.learners.spec import ModelSpec, Task
from streamserve.settings import Settings
from streamserve.wiring import Runtime, build_app

logger = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 2.0
POLL_INTERVAL_S = 0.5
REFRESH_S = 1.0
ALERT_GRACE_S = 2.0

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def new_run_id() -> str:
    return f"demo{secrets.token_hex(3)}"


def demo_model(s: Settings) -> ModelSpec:
    """The model the demo serves and tracks: the first one, which must be binary."""
    spec = s.models[0]
    if spec.task is not Task.BINARY:
        raise DemoError(
            f"the demo stream is binary classification; model {spec.name!r} is {spec.task.value}"
        )
    return spec


def demo_settings(s: Settings, run_id: str, *, http_port_given: bool) -> Settings:
    """The settings the demo runs with: fast checkpoints and swaps; and, on a broker or a
    Redis that was given (and may hold other data), topics, groups and keys of its own."""
    demo_model(s)
    snaps = dataclasses.replace(
        s.snapshots,
        checkpoint_every_seconds=min(s.snapshots.checkpoint_every_seconds, CHECKPOINT_EVERY_S),
        poll_interval_seconds=min(s.snapshots.poll_interval_seconds, POLL_INTERVAL_S),
    )
    s = dataclasses.replace(s, snapshots=snaps)
    if not http_port_given:
        s = dataclasses.replace(s, http=dataclasses.replace(s.http, port=0))
    if s.kafka.bootstrap_servers:
        kafka = dataclasses.replace(
            s.kafka,
            topic_prefix=f"{s.kafka.topic_prefix}{run_id}.",
            group_prefix=f"{s.kafka.group_prefix}-{run_id}",
        )
        s = dataclasses.replace(s, kafka=kafka)
    if s.redis.url:
        redis = dataclasses.replace(s.redis, key_prefix=f"{s.redis.key_prefix}-{run_id}")
        s = dataclasses.replace(s, redis=redis)
    return s


def _metrics_url(s: Settings, app: App) -> str | None:
    return f"http://{s.http.host}:{app.status.port}/metrics" if app.status else None


@dataclass
class _Run:
    """The demo's parts: the stack's app, and the publisher and tracker threads."""

    rt: Runtime
    app: App
    publisher: Publisher
    tracker: Tracker
    threads: list[threading.Thread]
    halt: threading.Event  # stops the demo's own threads
    metrics_url: str | None


@dataclass
class _Outcome:
    completed: bool = False
    interrupted: bool = False
    duration_s: float = 0.0


def run_demo(
    s: Settings,
    opts: DemoOptions,
    out: TextIO,
    stop: threading.Event,
    *,
    run_id: str,
    ephemeral_key_ok: bool,
) -> int:
    """Run the demo on ``s`` (broker and Redis already set) until done or ``stop``."""
    spec = demo_model(s)
    samples, drifts = drifting_stream(opts.events, opts.seed)
    run = _start(s, spec, samples, opts, stop, run_id=run_id, ephemeral_key_ok=ephemeral_key_ok)
    try:
        outcome = _watch(run, spec, opts, drifts, out, stop)
    finally:
        _stop(run, stop)
    if run.app.errors:
        out.write(f"streamserve demo: a role failed: {', '.join(run.app.errors)}\n")
    return _report(run, spec, samples, drifts, opts, outcome, out)


def _start(
    s: Settings,
    spec: ModelSpec,
    samples: list[Sample],
    opts: DemoOptions,
    stop: threading.Event,
    *,
    run_id: str,
    ephemeral_key_ok: bool,
) -> _Run:
    """The topics, the stack's roles, the publisher and the tracker, all started."""
    rt = Runtime.build(s, ephemeral_key_ok=ephemeral_key_ok)
    for line in rt.create_topics().lines():
        logger.info("topics: %s", line)
    halt = threading.Event()
    producer, errors = rt.producer("demo")
    publisher = Publisher(
        producer,
        events_topic=rt.topics["events"],
        feedback_topic=rt.topics["feedback"],
        run_id=run_id,
        samples=samples,
        delay=opts.label_delay,
        rate=opts.rate,
        stop=halt,
    )
    tracker = Tracker(
        # reads by assignment; never commits
        rt.consumer("demo", "demo-view", errors, **{"enable.auto.commit": False}),
        predictions=rt.partitions("predictions"),
        alerts=rt.partitions("drift-alerts"),
        prediction_decoder=rt.serde.prediction_decoder(),
        alert_decoder=rt.serde.alert_decoder(),
        model=spec.name,
        run_id=run_id,
        labels=[x.label for x in samples],
        stop=halt,
    )
    app = build_app(rt, stop, ("scorer", "joiner", "learner")).start()
    threads = [
        threading.Thread(target=publisher.run, name="demo-publisher", daemon=True),
        threading.Thread(target=tracker.run, name="demo-tracker", daemon=True),
    ]
    for thread in threads:
        thread.start()
    return _Run(rt, app, publisher, tracker, threads, halt, _metrics_url(s, app))


def _watch(
    run: _Run,
    spec: ModelSpec,
    opts: DemoOptions,
    drifts: list[DriftPoint],
    out: TextIO,
    stop: threading.Event,
) -> _Outcome:
    """Redraw the view until every prediction arrived (and a grace period for the last
    alerts), the predictions stopped coming, or ``stop``."""
    outcome = _Outcome()
    started = time.monotonic()
    window = rolling_window(opts.events)
    header = (
        f"streamserve demo · model {spec.name} ({spec.learner}) · {opts.events} events at "
        f"{opts.rate:g}/s · labels after {opts.label_delay}"
        + (f" · {run.metrics_url}" if run.metrics_url else "")
    )
    last = (started, 0)
    complete_at: float | None = None
    published_done_at: float | None = None
    while not stop.wait(REFRESH_S):
        now = time.monotonic()
        published = len(run.publisher.log.published_at)
        received, version, alerts, n_versions = run.tracker.latest()
        frame = Frame(
            elapsed_s=now - started,
            events=opts.events,
            published=published,
            publish_rate=(published - last[1]) / max(1e-3, now - last[0]),
            labels=len(run.publisher.log.label_order),
            received=received,
            scored_rate=run.tracker.rate(),
            accuracy=run.tracker.rolling_accuracy(window),
            window=window,
            version=version,
            versions_seen=n_versions,
            alerts=alerts,
            drifts=drifts,
            header=header,
        )
        last = (now, published)
        draw(out, frame, live=opts.live)
        if run.publisher.log.done and published_done_at is None:
            published_done_at = now
        if received >= opts.events and run.publisher.log.done:
            complete_at = complete_at or now
            if now - complete_at >= ALERT_GRACE_S:
                outcome.completed = True
                break
        if published_done_at is not None and now - published_done_at > opts.drain_timeout_s:
            out.write(
                f"streamserve demo: only {received} of {opts.events} predictions arrived "
                f"within {opts.drain_timeout_s:.0f}s of the last event\n"
            )
            break
    else:
        outcome.interrupted = not run.app.errors
    outcome.duration_s = time.monotonic() - started
    return outcome


def _stop(run: _Run, stop: threading.Event) -> None:
    run.halt.set()
    stop.set()
    for thread in run.threads:
        thread.join(30)
    run.app.wait(join_timeout_s=60)
    run.rt.redis.close()


def _report(
    run: _Run,
    spec: ModelSpec,
    samples: list[Sample],
    drifts: list[DriftPoint],
    opts: DemoOptions,
    outcome: _Outcome,
    out: TextIO,
) -> int:
    """Write the report of what was seen and return the exit code."""
    log = run.publisher.log
    published = len(log.published_at)
    if published == 0:
        out.write("streamserve demo: stopped before any event was published; no report\n")
        return EXIT_INTERRUPTED if outcome.interrupted else EXIT_FAILED
    seen = run.tracker.seen
    hits: dict[str, list[bool | None]] = {"served": seen.hit[:published]}
    hits.update(baseline_hits(spec, samples, log))
    facts = RunFacts(
        model=spec.name,
        learner=spec.learner,
        events=opts.events,
        published=published,
        received=seen.received,
        rate=opts.rate,
        label_delay=str(opts.label_delay),
        seed=opts.seed,
        duration_s=round(outcome.duration_s, 2),
        completed=outcome.completed,
        metrics_url=run.metrics_url,
    )
    report = summary(facts, drifts, hits, seen.first_of_version, seen.alerts, log.published_at)
    json_path, png_path = write_report(report, Path(opts.out))
    _print_end(out, report, json_path, png_path, interrupted=outcome.interrupted)
    if run.app.errors or (not outcome.completed and not outcome.interrupted):
        return EXIT_FAILED
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


def _print_end(
    out: TextIO, report: Mapping[str, Any], json_path: Path, png_path: Path, *, interrupted: bool
) -> None:
    lines = ["", "streamserve demo: stopped early" if interrupted else "streamserve demo: done"]
    for name, s in report["series"].items():
        acc = s["accuracy"]
        shown = "-" if acc is None else f"{acc:.3f}"
        back = ", ".join(
            f"{'never' if r['recovered_after_events'] is None else r['recovered_after_events']}"
            f" (drift at {r['drift']})"
            for r in s["recovery"]
        )
        lines.append(f"  accuracy {name:<11} {shown}   ({s['label']})")
        lines.append(f"    events back to 95 % of the pre-drift accuracy: {back}")
    lines.append(f"  versions served      {len(report['versions'])}")
    lines.append(f"  drift alerts         {len(report['alerts'])}")
    lines.append(f"  report               {json_path}")
    lines.append(f"                       {png_path}")
    out.write("\n".join(lines) + "\n")
    out.flush()
