"""Command line: parses, loads settings, calls wiring. No logic of its own."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from streamserve import __version__
from streamserve.app import App
from streamserve.cli_files import add_files_parsers, run_backfill, run_score_file
from streamserve.cli_models import add_models_parser, run_models
from streamserve.demo.options import (
    DEFAULT_EVENTS,
    DEFAULT_LABEL_DELAY,
    DEFAULT_OUT,
    DEFAULT_RATE,
    DemoOptions,
    parse_label_delay,
)
from streamserve.demo.runner import demo_settings, new_run_id, run_demo
from streamserve.embedded import EmbeddedError, embedded_defaults
from streamserve.errors import ConfigError, StreamserveError
from streamserve.settings import Settings, load_settings
from streamserve.wiring import Runtime, build_app

logger = logging.getLogger("streamserve")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML settings file (env STREAMSERVE_CONFIG)")
    p.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (env STREAMSERVE_BOOTSTRAP_SERVERS)"
    )
    p.add_argument("--redis-url", help="Redis URL (env STREAMSERVE_REDIS_URL)")
    p.add_argument(
        "--topic-prefix", help="prefix of every topic name (env STREAMSERVE_TOPIC_PREFIX)"
    )
    p.add_argument("--http-port", type=int, help="port of /metrics and /healthz (0: any free port)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (env STREAMSERVE_LOG_LEVEL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamserve",
        description="Score Kafka events, learn from delayed labels, hot-swap snapshots.",
    )
    parser.add_argument("--version", action="version", version=f"streamserve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up",
        help="run every role in one process (starts an embedded broker "
        "and Redis when none is given)",
    )
    _common(up)
    up.add_argument("--api-port", type=int, help="port of the HTTP API (0: any free port)")
    api = sub.add_parser(
        "api", help="serve predictions over HTTP (TF Serving REST and Open Inference v2)"
    )
    _common(api)
    api.add_argument("--api-port", type=int, help="port of the HTTP API (0: any free port)")
    for name, text in (("score", "run the scorer"), ("join", "run the joiner")):
        _common(sub.add_parser(name, help=text))
    learn = sub.add_parser("learn", help="run the learner of every model (or of --model)")
    _common(learn)
    learn.add_argument("--model", action="append", help="a model to learn (repeatable)")
    topics = sub.add_parser("topics", help="topics as code")
    tsub = topics.add_subparsers(dest="topics_command", required=True)
    _common(tsub.add_parser("create", help="create the topics idempotently; report mismatches"))
    add_models_parser(sub, _common)
    add_files_parsers(sub, _common)
    demo = sub.add_parser(
        "demo",
        help="run the stack on embedded defaults over a drifting synthetic stream, "
        "show a live view and write a report",
    )
    _common(demo)
    demo.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        help=f"events to publish, then stop (default {DEFAULT_EVENTS})",
    )
    demo.add_argument(
        "--label-delay",
        default=DEFAULT_LABEL_DELAY,
        help="when each label follows its event: seconds like 2s, or a number of later "
        f"events like 300 (default {DEFAULT_LABEL_DELAY})",
    )
    demo.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"events published per second (default {DEFAULT_RATE:g})",
    )
    demo.add_argument(
        "--out", default=DEFAULT_OUT, help=f"report directory (default ./{DEFAULT_OUT}/)"
    )
    demo.add_argument("--seed", type=int, default=42, help="seed of the synthetic stream")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, Any]] = {
        "kafka": {"bootstrap_servers": args.bootstrap_servers, "topic_prefix": args.topic_prefix},
        "redis": {"url": args.redis_url},
        "http": {"port": args.http_port},
        "api": {"port": getattr(args, "api_port", None)},
    }
    s = load_settings(args.config, overrides=overrides)
    if args.log_level:
        s = dataclasses.replace(s, log_level=args.log_level)
    return s


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _run_roles(
    s: Settings,
    roles: Sequence[str],
    *,
    models: Sequence[str] | None = None,
    ephemeral_key_ok: bool = False,
    banner: bool = False,
) -> int:
    stop = threading.Event()
    _stop_on_signals(stop)
    # Each role builds the parts it uses, before any starts: a missing setting stops the
    # command here, naming the key (the joiner asks no signing key, say).
    rt = Runtime(s, ephemeral_key_ok=ephemeral_key_ok)
    if banner:
        for line in rt.create_topics().lines():
            logger.info("topics: %s", line)
    app = build_app(rt, stop, roles, models).start()
    if banner:
        _print_banner(s, rt, app.status.port if app.status else None, _api_url(app))
    return app.wait()


def _api_url(app: App) -> str | None:
    for role in app.roles:
        if role.name == "api":
            return str(role.health()["url"])
    return None


def _print_banner(s: Settings, rt: Runtime, http_port: int | None, api_url: str | None) -> None:
    lines = [
        "streamserve is up",
        f"  bootstrap servers : {s.kafka.bootstrap_servers}",
        f"  redis url         : {s.redis.url}",
        f"  events topic      : {rt.topics['events']}",
        f"  feedback topic    : {rt.topics['feedback']}",
        f"  predictions topic : {rt.topics['predictions']}",
        f"  models            : {', '.join(m.name for m in s.models)}",
    ]
    if api_url is not None:
        lines.append(f"  http api          : {api_url}  (/v1/models/<model>:predict, /v2, ...)")
        lines.append(f"  console           : {api_url}/  (live page; actions need an admin token)")
    if http_port is not None:
        lines.append(f"  metrics           : http://{s.http.host}:{http_port}/metrics")
    lines.append("  stop with Ctrl-C")
    print("\n".join(lines), flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    s = _settings(args)
    _configure_logging(s.log_level)
    roles = ("scorer", "joiner", "learner", *(("api",) if s.api.enabled else ()))
    with embedded_defaults(s) as stack:
        return _run_roles(
            stack.settings,
            roles,
            ephemeral_key_ok=stack.ephemeral_redis,
            banner=True,
        )


def cmd_demo(args: argparse.Namespace) -> int:
    s = _settings(args)
    if not args.log_level:
        s = dataclasses.replace(s, log_level="WARNING")  # log lines would scroll the view
    _configure_logging(s.log_level)
    opts = DemoOptions(
        events=args.events,
        label_delay=parse_label_delay(args.label_delay),
        rate=args.rate,
        out=Path(args.out),
        seed=args.seed,
        live=sys.stdout.isatty(),
    )
    stop = threading.Event()
    _stop_on_signals(stop)
    run_id = new_run_id()
    with embedded_defaults(
        demo_settings(s, run_id, http_port_given=args.http_port is not None)
    ) as stack:
        code = run_demo(
            stack.settings,
            opts,
            sys.stdout,
            stop,
            run_id=run_id,
            ephemeral_key_ok=stack.ephemeral_redis,
        )
        gc.collect()  # close the Kafka clients before their embedded broker stops
        return code


def cmd_role(args: argparse.Namespace) -> int:
    s = _settings(args)
    _configure_logging(s.log_level)
    role = {"score": "scorer", "join": "joiner", "learn": "learner", "api": "api"}[args.command]
    return _run_roles(s, (role,), models=getattr(args, "model", None))


def cmd_topics(args: argparse.Namespace) -> int:
    s = _settings(args)
    _configure_logging(s.log_level)
    report = Runtime(s).create_topics()  # a broker only: no Redis, no signing key
    for line in report.lines():
        print(line)
    return 1 if report.mismatches else 0


def cmd_models(args: argparse.Namespace) -> int:
    s = _settings(args)
    if not args.log_level:
        s = dataclasses.replace(s, log_level="WARNING")  # what a command prints says it all
    _configure_logging(s.log_level)
    # Redis only: no broker; export and import also the signing key (they verify and sign)
    return run_models(Runtime(s), args)


def cmd_score_file(args: argparse.Namespace) -> int:
    s = _settings(args)
    if not args.log_level:
        s = dataclasses.replace(s, log_level="WARNING")  # the bar and the summary say it all
    _configure_logging(s.log_level)
    rt = Runtime(s)  # Redis and the signing key; no broker
    try:
        return run_score_file(rt, args)
    finally:
        rt.close()


def cmd_backfill(args: argparse.Namespace) -> int:
    s = _settings(args)
    if not args.log_level:
        s = dataclasses.replace(s, log_level="WARNING")
    _configure_logging(s.log_level)
    rt = Runtime(s)  # Redis and the signing key; the broker only to read the topic
    try:
        return run_backfill(rt, args)
    finally:
        rt.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "up": cmd_up,
        "score": cmd_role,
        "join": cmd_role,
        "learn": cmd_role,
        "api": cmd_role,
        "topics": cmd_topics,
        "models": cmd_models,
        "snapshots": cmd_models,
        "demo": cmd_demo,
        "score-file": cmd_score_file,
        "backfill": cmd_backfill,
    }
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"streamserve: config error at '{exc.key}': {exc.reason}", file=sys.stderr)
        return 2
    except (EmbeddedError, StreamserveError) as exc:
        print(f"streamserve: {exc}", file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        print(f"streamserve: Redis: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
