"""Run every benchmark variant side by side on one embedded broker; write the report.

python -m bench                      # full size (200,000 records, 3 runs each)
python -m bench --records 20000 --repeats 1 --memory-events 100000 --swaps 20
python -m bench --only throughput latency --no-peers --compare-old   # new and old method
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import redis

from bench import (
    file_scoring,
    hotswap,
    http_api,
    latency,
    learner_bench,
    memory,
    micro,
    peers,
    producing,
    report,
    stages,
    streamserve_setup,
)
from bench.kafka_io import EventFactory, JsonEventFactory
from bench.procs import CpuShare
from bench.profiling import Profile, py_spy, sampled, table
from bench.results import HAND_LOOP, NUMPY_LOOP, PIPE_LOOP_BATCH
from bench.throughput import Env, Method, RunResult, run_job, run_streamserve_scorer
from streamserve.embedded import EmbeddedBroker, EmbeddedRedis
from streamserve.serde.schemas import SchemaCatalog
from streamserve.topics import default_topics_dir

ROOT = Path(__file__).resolve().parents[1]
SCALING_PROCESSES = (1, 2, 3)
SECTIONS = (
    "micro",
    "throughput",
    "json",
    "producing",
    "settings",
    "latency",
    "learner",
    "models",
    "scaling",
    "memory",
    "swap",
    "torch",
    "http",
    "files",
)

# The raw pipe with the prefetch setting streamserve's consumers use (librdkafka's default
# pauses a partition's fetching for 1 s once 100,000 records are queued: bench/NOTES.md).
PIPE_TUNED, PIPE_LOOP = report.PIPE_TUNED, report.PIPE_LOOP
PIPE_TUNED_ARGS = ("--fetch-queue-backoff-ms", "20")

# streamserve scorer settings compared for the latency/throughput trade-off.
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "low latency": {
        "scorer": {"batch_size": 200, "batch_timeout_ms": 5},
        "consumer": {"fetch.wait.max.ms": 5},
        "producer": {"linger.ms": 0},
    },
    "high throughput": {
        "scorer": {"batch_size": 5000, "batch_timeout_ms": 100},
        "consumer": {"fetch.wait.max.ms": 100},
        "producer": {"linger.ms": 20},
    },
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=200_000, help="input records per run")
    p.add_argument("--repeats", type=int, default=3, help="runs per throughput variant")
    p.add_argument("--latency-rate", type=int, default=10_000, help="offered events/s")
    p.add_argument("--latency-seconds", type=float, default=10.0, help="per measurement")
    p.add_argument(
        "--latency-repeats",
        type=int,
        default=3,
        help="rounds of one hop, raw pipe and scorer, one after another, per offered rate",
    )
    p.add_argument("--learner-examples", type=int, default=100_000)
    p.add_argument("--model-records", type=int, default=50_000, help="scorer run per model size")
    p.add_argument("--memory-events", type=int, default=1_000_000)
    p.add_argument("--swaps", type=int, default=100)
    p.add_argument("--torch-examples", type=int, default=20_000, help="per torch round")
    p.add_argument("--torch-rounds", type=int, default=5, help="paired rounds per module")
    p.add_argument("--swap-every", type=float, default=0.2, help="seconds between swaps")
    p.add_argument("--swap-rate", type=int, default=10_000, help="offered events/s during swaps")
    p.add_argument("--http-rounds", type=int, default=3, help="HTTP API: rounds of every load")
    p.add_argument("--http-seconds", type=float, default=8.0, help="HTTP API: seconds per load")
    p.add_argument(
        "--file-rows",
        type=int,
        default=file_scoring.rows_from_env(),
        help=f"files: rows per file (default ${file_scoring.ROWS_ENV}, else 1,000,000)",
    )
    p.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    p.add_argument("--no-peers", action="store_true", help="skip Quix Streams and Bytewax")
    p.add_argument(
        "--compare-old",
        action="store_true",
        help="also run each throughput variant and the one-hop latency the old way "
        "(a consumer timing the output in this process while the variant runs)",
    )
    p.add_argument("--redis-url", default="", help="default: 127.0.0.1:6379 if up, else embedded")
    p.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report from the results (.json beside --out) of an earlier run",
    )
    return p.parse_args(argv)


def _redis_url(given: str) -> tuple[str, EmbeddedRedis | None]:
    if given:
        return given, None
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
        return "redis://127.0.0.1:6379/0", None
    except redis.RedisError:
        server = EmbeddedRedis().start()
        return server.url, server


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    out = Path(a.out)
    if a.report_only:
        report.write(json.loads(out.with_suffix(".json").read_text()), out)
        _log(f"rewrote {out}")
        return 0
    started_at = time.time()
    results = _run(a, argv)
    results["elapsed_s"] = time.time() - started_at
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["machine"] = report.machine()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    report.write(results, out)
    _log(f"wrote {out} in {results['elapsed_s']:.0f} s")
    return 0


def _run(a: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    """Every section asked for, in order; the results as the report reads them."""
    sections = set(a.only or SECTIONS)
    topics_dir = default_topics_dir()
    factory = EventFactory(SchemaCatalog.from_dir(topics_dir))
    peers_python = None if a.no_peers else peers.ensure_venv()
    redis_url, own_redis = _redis_url(a.redis_url)
    results: dict[str, Any] = {
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": vars(a),
        "defaults": streamserve_setup.scorer_defaults(),
    }
    if peers_python:
        results["peer_versions"] = {
            m: peers.version(peers_python, m) for m in ("quixstreams", "bytewax")
        }
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    if "micro" in sections:
        results["micro"] = micro.costs()
        _log("per-record costs: " + ", ".join(f"{c[1]:.1f} µs" for c in results["micro"]))
        results["stages"] = {fmt: stages.split(fmt) for fmt in ("avro", "json")}
        results["queue_batched"] = stages.queue_batched()
        _log(f"stages: {results['stages']}; queueing (batch, each): {results['queue_batched']}")
    try:
        if "http" in sections:  # HTTP servers and Redis only, no broker
            _log("HTTP API against the FastAPI peer")
            results["http"] = http_api.run(redis_url, workdir, a.http_rounds, a.http_seconds)
        if "files" in sections:  # files and Redis only, no broker
            _log(f"score-file against River over pandas, {a.file_rows:,} rows")
            results["files"] = file_scoring.run(
                redis_url, workdir, a.file_rows, a.repeats, log=_log
            )
        broker = EmbeddedBroker().start()
        with broker:
            _log(f"broker {broker.bootstrap_servers}, redis {redis_url}")
            env = Env(
                broker.bootstrap_servers,
                redis_url,
                str(topics_dir),
                workdir,
                peers_python,
                [],
                broker_pid=broker.pid,
                redis_pid=own_redis.pid if own_redis is not None else None,
            )
            if sections & {"throughput", "settings", "models", "scaling", "producing", "torch"}:
                _log(f"generating {a.records} events")
                env.records = factory.batch(a.records)
            for name, section in ON_BROKER.items():
                if name in sections:
                    results.update(section(env, factory, a))
    finally:
        if own_redis is not None:
            own_redis.stop()
    return results


# A section that runs on the broker: its results, under the keys the report reads.
Section = Callable[[Env, EventFactory, argparse.Namespace], dict[str, Any]]


def _throughput(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    repeats, compare_old = a.repeats, a.compare_old
    runs: list[RunResult] = []
    py = sys.executable
    spy = py_spy(env.peers_python)
    profile = Profile()
    methods: list[Method] = ["timestamps", "observer"] if compare_old else ["timestamps"]
    for i in range(repeats):
        first = len(runs)
        if spy and i == 0:
            with_profile = lambda pid: sampled(spy, pid, env.workdir / "profile.txt", profile)  # noqa: E731
            runs.append(
                run_streamserve_scorer(env, "streamserve scorer (profiled)", profile=with_profile)
            )
        for method in methods:
            runs.append(run_job(env, "raw pipe", "raw_pipe.py", py, method))
            runs.append(run_job(env, PIPE_TUNED, "raw_pipe.py", py, method, PIPE_TUNED_ARGS))
            runs.append(run_job(env, PIPE_LOOP, "loop_pipe.py", py, method))
            runs.append(run_job(env, HAND_LOOP, "hand_loop.py", py, method))
            runs.append(run_job(env, NUMPY_LOOP, "numpy_loop.py", py, method))
            runs.append(run_streamserve_scorer(env, method=method))
            if env.peers_python:
                peers_py = env.peers_python
                runs.append(run_job(env, "Quix Streams", "quix_job.py", peers_py, method))
                runs.append(run_job(env, "Bytewax", "bytewax_job.py", peers_py, method))
        summary = ", ".join(
            f"{r.variant} {r.rate:,.0f}/s" + (f" ({r.note})" if r.note else "")
            for r in runs[first:]
        )
        _log(f"throughput run {i + 1}: {summary}")
    return {
        "throughput": [asdict(r) for r in runs],
        "profile": table(profile, 18) if profile.total else [],
    }


def _json(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    """The JSON workload (10 numbers, 2 strings): the scorer, the per-record hand-written
    loop, the numpy batch loop and the peers on the same events, in rounds."""
    _log(f"generating {a.records} JSON events")
    env = replace(env, records=JsonEventFactory().batch(a.records))
    py, fmt = sys.executable, ("--format", "json")
    runs: list[RunResult] = []
    spy, profile = py_spy(env.peers_python), Profile()
    if spy:
        with_profile = lambda pid: sampled(spy, pid, env.workdir / "profile-json.txt", profile)  # noqa: E731
        run_streamserve_scorer(
            env, "streamserve scorer (profiled)", profile=with_profile, fmt="json"
        )
    for i in range(a.repeats):
        first = len(runs)
        runs.append(run_job(env, HAND_LOOP, "hand_loop.py", py, extra=fmt))
        runs.append(run_job(env, NUMPY_LOOP, "numpy_loop.py", py, extra=fmt))
        runs.append(run_streamserve_scorer(env, fmt="json"))
        if env.peers_python:
            runs.append(run_job(env, "Quix Streams", "quix_job.py", env.peers_python, extra=fmt))
            runs.append(run_job(env, "Bytewax", "bytewax_job.py", env.peers_python, extra=fmt))
        _log(
            f"JSON run {i + 1}: " + ", ".join(f"{r.variant} {r.rate:,.0f}/s" for r in runs[first:])
        )
    return {
        "json_throughput": [asdict(r) for r in runs],
        "json_profile": table(profile, 18) if profile.total else [],
    }


def _producing(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    """produce_batch against produce per record: alone, and as the consumer loop's."""
    ways = list(producing.WAYS)
    runs: list[producing.ProduceRun] = []
    pipes: list[RunResult] = []
    loop_pipes: tuple[tuple[str, tuple[str, ...]], ...] = (
        (PIPE_LOOP, ()),
        (PIPE_LOOP_BATCH, ("--produce", "batch")),
    )
    for k in range(a.repeats):  # each round in another order: no way always goes first
        for way in ways[k % len(ways) :] + ways[: k % len(ways)]:
            runs.append(producing.produce_run(env.bootstrap, way, env.records))
            r = runs[-1]
            _log(f"producing {way}: {r.rate:,.0f}/s acknowledged, {r.cpu_us:.2f} µs CPU/record")
        for name, extra in loop_pipes[::-1] if k % 2 else loop_pipes:
            pipes.append(run_job(env, name, "loop_pipe.py", sys.executable, extra=extra))
    _log("producing, loop pipe: " + ", ".join(f"{r.variant} {r.rate:,.0f}/s" for r in pipes))
    checks = {
        "partitioner": producing.partitioner_check(env.bootstrap),
        "transactions": producing.transactions_check(env.bootstrap),
    }
    _log(f"producing checks: {checks}")
    return {
        "producing": {
            "runs": [asdict(r) for r in runs],
            "pipes": [asdict(r) for r in pipes],
            **checks,
        }
    }


def _settings(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for name, settings in SETTINGS.items():
        thr = run_streamserve_scorer(env, name, settings=settings)
        lat = latency.scorer(env, a.latency_rate, a.latency_seconds / 2, name, settings)
        rows.append({**asdict(lat), "name": name, "settings": settings, "rate": thr.rate})
        _log(
            f"settings {name}: {thr.rate:,.0f}/s, p50 {lat.p50_ms:.0f} ms, p99 {lat.p99_ms:.0f} ms"
        )
    return {"settings": rows}


def _latency(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    seconds = a.latency_seconds
    rows = []
    for rate in dict.fromkeys((a.latency_rate, 1000)):
        at = "" if rate == a.latency_rate else f" at {rate:,}/s"
        # Rounds of the three, so each round's rows are side by side and a noisy moment
        # hits one round, not one variant.
        for k in range(a.latency_repeats):
            trio = [
                latency.one_hop(env, rate, seconds, "broker, one hop" + at),
                latency.raw_pipe(
                    env, rate, seconds, sys.executable, label="raw pipe (two hops)" + at
                ),
                latency.scorer(env, rate, seconds, "streamserve scorer" + at),
            ]
            for r in trio:
                r.round = k
            rows += trio
        if a.compare_old:
            label = "broker, one hop" + at + " [old harness]"
            rows.append(latency.one_hop(env, rate, seconds, label, old_harness=True))
            label = "raw pipe (two hops)" + at + " [its throughput default: 100 ms batch wait]"
            rows.append(latency.raw_pipe(env, rate, seconds, sys.executable, (), label))
    for r in rows:
        created = (
            f"; CreateTime out - in p50 {r.created_p50_ms:.0f}, p99 {r.created_p99_ms:.0f} ms"
            if r.created_p50_ms is not None
            else ""
        )
        _log(
            f"latency {r.variant}: p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms "
            f"({r.received}/{r.offered}){created}; producer behind by up to "
            f"{r.producer_behind_ms:.0f} ms"
        )
    return {"latency": [asdict(r) for r in rows]}


def _learner(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    return {
        "learner": learner_bench.learner_against_river(env, a.learner_examples, a.repeats, _log)
    }


def _models(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    n = a.model_records
    rows = []
    records = env.records
    env.records = records[:n]
    try:
        for name, (learner_name, params) in learner_bench.MODELS.items():
            cost = learner_bench.model_cost(name, learner_name, params, min(n, 20000))
            run = run_streamserve_scorer(env, name, learner=learner_name, params=params)
            rows.append({**asdict(cost), "scorer_rate": run.rate})
            _log(f"model {name}: scorer {run.rate:,.0f}/s, predict {cost.predict_us:.1f} µs")
    finally:
        env.records = records
    return {"models": rows}


def _scaling(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    """1, 2 and 3 scorer processes over the same input, with the CPU the scorers and the
    broker used while it was scored (what bounds the rate on a small machine)."""
    runs = []
    for _ in range(a.repeats):
        for n in SCALING_PROCESSES:
            share = CpuShare(env.broker_pid, exclude=[p for p in (env.redis_pid,) if p])
            run = run_streamserve_scorer(
                env, f"{n} scorer process(es)", processes=n, profile=lambda _pid, s=share: s
            )
            # CPU over the span the rate is timed on (first output to last), not start-up
            cpu = share.window(run.first_ms / 1000.0, run.end_ms / 1000.0)
            runs.append({**asdict(run), "processes": n, **cpu})
            _log(
                f"scaling: {n} process(es) {run.rate:,.0f}/s; CPU s: scorers "
                f"{cpu['scorer_cpu_s']:.2f}, broker {cpu['broker_cpu_s']:.2f} "
                f"in {cpu['wall_s']:.2f} s"
            )
    return {"scaling": runs}


def _memory(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    _log(f"memory over {a.memory_events} events")
    return {"memory": asdict(memory.scorer_memory(env, factory, a.memory_events))}


def _torch(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    """A torch module learner against the same module in a plain PyTorch loop."""
    from bench import torch_bench  # imports torch: only when the section runs

    out = torch_bench.run(a.torch_examples, a.torch_rounds)
    for line in torch_bench.summary(out):
        _log(f"torch: {line}")
    params = torch_bench.MODULES["MLP 64-32"]
    out["roles"] = torch_bench.roles(env, a.torch_examples, params, 32)
    _log(f"torch roles through Kafka: {out['roles']}")
    return {"torch": out}


def _swap(env: Env, factory: EventFactory, a: argparse.Namespace) -> dict[str, Any]:
    _log(f"hot swap: {a.swaps} swaps at {a.swap_rate}/s")
    swap = hotswap.hot_swap(env, factory, a.swap_rate, a.swaps, a.swap_every)
    return {"swap": asdict(swap)}


# The sections that run on the broker, in the order they run (and the results keep).
ON_BROKER: dict[str, Section] = {
    "throughput": _throughput,
    "json": _json,
    "producing": _producing,
    "settings": _settings,
    "latency": _latency,
    "learner": _learner,
    "models": _models,
    "scaling": _scaling,
    "memory": _memory,
    "swap": _swap,
    "torch": _torch,
}
