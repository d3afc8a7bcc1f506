"""The HTTP API against the FastAPI peer: requests/s at saturation and p50/p99 at fixed
offered rates, one server process each, single and batched instances.

Load comes from Debian's ``wrk`` (saturation: closed loop, 64 connections, one thread)
and ``hey`` (a fixed offered rate: 16 workers, each rate-limited), separate processes
that share no limits with the servers. Rounds alternate the peer and streamserve so a
noisy moment hits one round, not one side; the report takes medians over rounds.

python -m bench --only http                  # 3 rounds of 8 s loads
python -m bench.http_api --rounds 1 --seconds 4   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from bench import procs
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.store import SnapshotStore
from streamserve.subprocesses import LoggedProcess

ROOT = Path(__file__).resolve().parents[1]
FEATURES = [f"x{i}" for i in range(8)]
KEY = "bench-http-signing-key-0123456789"
MODEL = "bench"
BATCH = 100  # instances per request in the batched rows
CONNECTIONS = 64  # wrk, saturation
RATE_WORKERS = 16  # hey, fixed rate
# The server on one core, its load generator on the other, so neither takes the other's
# time (other processes on the machine still may).
SERVER_CPU, LOAD_CPU = "0", "1"


def _pinned(cpu: str, argv: list[str]) -> list[str]:
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return argv
    return ["taskset", "-c", cpu, *argv]


PEER = "FastAPI peer (def)"
PEER_ASYNC = "FastAPI peer (async def)"
OURS = "streamserve api"
OURS_NO_BATCH = "streamserve api, no batching (max_batch_size 1)"
OURS_NO_FREEZE = "streamserve api, no gc.freeze"
OURS_GRANIAN = "streamserve app on granian"


@dataclass
class Load:
    """One load against one server."""

    variant: str
    kind: str  # "saturation" or "rate"
    instances: int  # per request
    offered: float  # requests/s offered (0: as fast as answered)
    rate: float  # requests/s answered
    p50_ms: float
    p99_ms: float
    errors: int
    round: int = 0


@dataclass
class Env:
    redis_url: str
    prefix: str
    workdir: Path
    seconds: float
    config: Path = field(init=False)
    peer_model: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.workdir / "http-bench.yaml"
        self.peer_model = self.workdir / "http-peer-model.pkl"


# -- the model --------------------------------------------------------------------------


def _rows(n: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [
        {name: rng.gauss(i * 0.5, 1.0 + i * 0.1) for i, name in enumerate(FEATURES)}
        for _ in range(n)
    ]


def prepare(env: Env, examples: int = 5000) -> None:
    """Train the model, publish it as the serving snapshot, pickle its River estimator
    for the peer, and write streamserve's settings."""
    spec = ModelSpec(MODEL, Task.BINARY, "logistic_regression")
    learner = build_learner(spec)
    for x in _rows(examples, seed=1):
        learner.learn_one(x, x["x0"] + x["x1"] > 0.5)
    meta = SnapshotMeta(
        model=MODEL,
        version=1,
        parent=None,
        created_at=time.time(),
        examples_seen=examples,
        offsets={},
        metrics={},
        format=learner.format,
        learner=spec.learner,
    )
    codec = SnapshotCodec([KEY.encode()])
    client = redis.Redis.from_url(env.redis_url)
    SnapshotStore(client, prefix=env.prefix).publish(meta, codec.encode(meta, learner.dumps()))
    client.close()
    with env.peer_model.open("wb") as f:
        pickle.dump(learner.estimator, f)  # type: ignore[attr-defined]
    env.config.write_text(
        "models:\n  - {name: bench, task: binary, learner: logistic_regression}\n", encoding="utf-8"
    )


# -- servers ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ours_env(env: Env, api: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVE")}
    out.update(
        {
            "STREAMSERVE_CONFIG": str(env.config),
            "STREAMSERVE_REDIS_URL": env.redis_url,
            "STREAMSERVE_SNAPSHOT_KEY": KEY,
            "STREAMSERVE__REDIS__KEY_PREFIX": env.prefix,
            "STREAMSERVE_HTTP_PORT": "0",
            "STREAMSERVE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    out.update({f"STREAMSERVE__API__{k.upper()}": v for k, v in api.items()})
    return out


def _command(env: Env, variant: str, port: int) -> tuple[list[str], dict[str, str]]:
    py = sys.executable
    if variant in (PEER, PEER_ASYNC):
        target = "bench.jobs.http_peer:" + ("app" if variant == PEER else "app_async")
        penv = {**os.environ, "HTTP_PEER_MODEL": str(env.peer_model), "PYTHONPATH": str(ROOT)}
        cmd = [
            py,
            "-m",
            "uvicorn",
            target,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        return cmd, penv
    if variant == OURS_GRANIAN:
        cmd = [
            py,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--loop",
            "uvloop",
            "--http",
            "1",
            "--no-ws",
            "--workers",
            "1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "bench.jobs.http_granian:app",
        ]
        return cmd, _ours_env(env, {})
    api = {"port": str(port)}
    if variant == OURS_NO_BATCH:
        api["max_batch_size"] = "1"
    if variant == OURS_NO_FREEZE:
        api["gc_freeze"] = "false"
    return [py, "-m", "streamserve.cli", "api"], _ours_env(env, api)


@contextmanager
def server(env: Env, variant: str) -> Iterator[str]:
    port = _free_port()
    cmd, penv = _command(env, variant, port)
    with procs.started(_pinned(SERVER_CPU, cmd), penv, ROOT) as proc:
        url = f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict"
        _wait_ready(url, proc)
        yield url


def _wait_ready(url: str, proc: LoggedProcess) -> None:
    body = {"instances": _rows(1, 3)}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {procs.tail(proc)}")
        try:
            if httpx.post(url, json=body, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready: {procs.tail(proc)}")


# -- load -------------------------------------------------------------------------------


def _body(env: Env, instances: int) -> Path:
    path = env.workdir / f"body-{instances}.json"
    if not path.exists():
        path.write_text(json.dumps({"instances": _rows(instances, seed=instances)}))
    return path


def saturation(env: Env, variant: str, url: str, instances: int) -> Load:
    body = _body(env, instances)
    script = env.workdir / f"post-{instances}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.read_text())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        _pinned(
            LOAD_CPU,
            [
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{env.seconds:g}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Load(
        variant,
        "saturation",
        instances,
        0.0,
        float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        _wrk_ms(out, "50%"),
        _wrk_ms(out, "99%"),
        errors,
    )


def _wrk_ms(out: str, pct: str) -> float:
    m = re.search(rf"^\s+{re.escape(pct)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if m is None:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def at_rate(env: Env, variant: str, url: str, instances: int, rate: float) -> Load:
    body = _body(env, instances)
    out = subprocess.run(
        _pinned(
            LOAD_CPU,
            [
                "hey",
                "-z",
                f"{env.seconds:g}s",
                "-c",
                str(RATE_WORKERS),
                "-q",
                f"{rate / RATE_WORKERS:.3f}",
                "-m",
                "POST",
                "-T",
                "application/json",
                "-D",
                str(body),
                url,
            ],
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    errors = sum(int(n) for c, n in codes.items() if c != "200")
    _, _, failures = out.partition("Error distribution:")
    errors += sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]", failures, re.M))
    return Load(
        variant,
        "rate",
        instances,
        rate,
        float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        _hey_ms(out, "50%"),
        _hey_ms(out, "99%"),
        errors,
    )


def _hey_ms(out: str, pct: str) -> float:
    m = re.search(rf"{re.escape(pct)} in ([\d.]+) secs", out)
    return float(m.group(1)) * 1000.0 if m else float("nan")


# -- the run ----------------------------------------------------------------------------


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] http: {text}", flush=True)


def _show(load: Load) -> str:
    offered = f" at {load.offered:,.0f}/s" if load.offered else ""
    return (
        f"{load.variant}, {load.instances} instance(s){offered}: {load.rate:,.0f} req/s, "
        f"p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, errors {load.errors}"
    )


def one_round(env: Env, k: int) -> list[Load]:
    loads: list[Load] = []

    def add(load: Load) -> Load:
        load.round = k
        loads.append(load)
        _log(_show(load))
        return load

    with server(env, PEER) as url:
        add(saturation(env, PEER, url, 1))
    with server(env, PEER_ASYNC) as url:
        peer = add(saturation(env, PEER_ASYNC, url, 1))
        add(saturation(env, PEER_ASYNC, url, BATCH))
        half_peer = peer.rate / 2
        add(at_rate(env, PEER_ASYNC, url, 1, half_peer))
    with server(env, OURS) as url:
        ours = add(saturation(env, OURS, url, 1))
        add(saturation(env, OURS, url, BATCH))
        add(at_rate(env, OURS, url, 1, half_peer))
        add(at_rate(env, OURS, url, 1, ours.rate / 2))
    with server(env, OURS_NO_BATCH) as url:
        add(saturation(env, OURS_NO_BATCH, url, 1))
        add(at_rate(env, OURS_NO_BATCH, url, 1, ours.rate / 2))
    with server(env, OURS_NO_FREEZE) as url:
        add(at_rate(env, OURS_NO_FREEZE, url, 1, ours.rate / 2))
    with server(env, OURS_GRANIAN) as url:
        add(saturation(env, OURS_GRANIAN, url, 1))
    return loads


def run(redis_url: str, workdir: Path, rounds: int, seconds: float) -> dict[str, Any]:
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"the HTTP benchmark needs {tool}: apt-get install -y wrk hey")
    env = Env(redis_url, f"bench-http-{os.getpid()}", workdir, seconds)
    prepare(env)
    try:
        loads = [load for k in range(rounds) for load in one_round(env, k)]
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"{env.prefix}:*", count=1000):
            client.delete(key)
        client.close()
    return {
        "rounds": rounds,
        "seconds": seconds,
        "connections": CONNECTIONS,
        "rate_workers": RATE_WORKERS,
        "batch": BATCH,
        "features": len(FEATURES),
        "pinned": _pinned(SERVER_CPU, []) != [],
        "loads": [asdict(x) for x in loads],
    }


# -- the report -------------------------------------------------------------------------


def _median(
    loads: list[dict[str, Any]],
    variant: str,
    kind: str,
    instances: int,
    field_: str,
    offered_of: str | None = None,
) -> float:
    picked = [
        x[field_]
        for x in loads
        if x["variant"] == variant
        and x["kind"] == kind
        and x["instances"] == instances
        and (offered_of is None or x.get("_of") == offered_of)
    ]
    return statistics.median(picked) if picked else float("nan")


def report_lines(results: dict[str, Any]) -> list[str]:
    loads = results["loads"]
    _label_rates(loads)
    lines = [
        "",
        "## HTTP API",
        "",
        f"One server process each, a River logistic regression over {results['features']} "
        "doubles (the same trained model: streamserve serves it as a signed snapshot, the "
        "peer unpickles its estimator and calls `predict_proba_one` per instance). "
        f"Saturation: `wrk`, {results['connections']} connections, one thread; fixed rate: "
        f"`hey`, {results['rate_workers']} rate-limited workers; {results['seconds']:g} s per "
        f"load, {results['rounds']} rounds alternating the servers, medians (per-round values "
        "in brackets). The server runs on core 0 and the load generator on core 1 "
        f"(`taskset`: {results.get('pinned', False)}); other processes on the machine may "
        "take either.",
        "",
        "| server | load | requests/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|",
    ]
    groups: dict[tuple[str, str, int, str], list[dict[str, Any]]] = {}
    for x in loads:
        groups.setdefault((x["variant"], x["kind"], x["instances"], x["_of"]), []).append(x)
    for (variant, kind, instances, of), rows in groups.items():
        what = f"{instances} instance{'s' if instances > 1 else ''}/request, " + (
            "saturation" if kind == "saturation" else f"fixed rate ({of})"
        )
        cells = [
            _cell([r[f] for r in rows], 0 if f == "rate" else 2)
            for f in ("rate", "p50_ms", "p99_ms")
        ]
        lines.append(f"| {variant} | {what} | {' | '.join(cells)} |")
    lines += _targets(loads)
    return lines


def _cell(values: list[float], digits: int) -> str:
    each = ", ".join(f"{v:,.{digits}f}" for v in values)
    return f"{statistics.median(values):,.{digits}f} [{each}]"


def _label_rates(loads: list[dict[str, Any]]) -> None:
    """Name each fixed rate by what it is half of."""
    for x in loads:
        if x["kind"] != "rate":
            x["_of"] = ""
            continue
        peer = [
            y
            for y in loads
            if y["round"] == x["round"]
            and y["variant"] == PEER_ASYNC
            and y["kind"] == "saturation"
            and y["instances"] == 1
        ]
        near_peer = peer and abs(peer[0]["rate"] / 2 - x["offered"]) < 1.0
        x["_of"] = "half the peer's saturation" if near_peer else "half streamserve's saturation"


def _targets(loads: list[dict[str, Any]]) -> list[str]:
    def med(variant: str, kind: str, instances: int, f: str, of: str = "") -> float:
        return _median(loads, variant, kind, instances, f, of if kind == "rate" else None)

    half_peer, half_own = "half the peer's saturation", "half streamserve's saturation"
    single = med(OURS, "saturation", 1, "rate") / med(PEER_ASYNC, "saturation", 1, "rate")
    single_def = med(OURS, "saturation", 1, "rate") / med(PEER, "saturation", 1, "rate")
    batched = med(OURS, "saturation", BATCH, "rate") / med(PEER_ASYNC, "saturation", BATCH, "rate")
    p99_ours = med(OURS, "rate", 1, "p99_ms", half_peer)
    p99_peer = med(PEER_ASYNC, "rate", 1, "p99_ms", half_peer)
    p99_own = med(OURS, "rate", 1, "p99_ms", half_own)
    nobatch = med(OURS_NO_BATCH, "saturation", 1, "rate")
    p99_nobatch = med(OURS_NO_BATCH, "rate", 1, "p99_ms", half_own)
    p99_nofreeze = med(OURS_NO_FREEZE, "rate", 1, "p99_ms", half_own)
    granian = med(OURS_GRANIAN, "saturation", 1, "rate")

    def mark(ok: bool) -> str:
        return "met" if ok else "not met"

    return [
        "",
        f"- throughput, 1 instance/request: {single:.2f} x the async peer, {single_def:.2f} x the "
        f"`def` peer (goal ≥ 3 x: {mark(single >= 3)} against the async peer)",
        f"- throughput, {BATCH} instances/request: {batched:.2f} x the async peer "
        f"(goal ≥ 3 x: {mark(batched >= 3)})",
        f"- p99 at half the peer's saturation: {p99_ours:.2f} ms against the peer's "
        f"{p99_peer:.2f} ms (goal: no worse: {mark(p99_ours <= p99_peer)})",
        f"- p99 at half its own saturation: {p99_own:.2f} ms (goal < 10 ms: {mark(p99_own < 10)})",
        f"- dynamic batching: {med(OURS, 'saturation', 1, 'rate'):,.0f} req/s with it, "
        f"{nobatch:,.0f} without (max_batch_size 1); p99 at half load {p99_own:.2f} ms with, "
        f"{p99_nobatch:.2f} ms without",
        f"- gc.freeze after loading: p99 at half load {p99_own:.2f} ms with, {p99_nofreeze:.2f} ms "
        "without",
        f"- server: uvicorn (uvloop, httptools) {med(OURS, 'saturation', 1, 'rate'):,.0f} req/s, "
        f"granian (ASGI, uvloop) {granian:,.0f} req/s, the same app",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.http_api", description=__doc__.splitlines()[0]
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--redis-url", default="")
    a = p.parse_args(argv)
    from bench.run import _redis_url

    url, own = _redis_url(a.redis_url)
    try:
        results = run(url, Path(tempfile.mkdtemp(prefix="bench-http-")), a.rounds, a.seconds)
    finally:
        if own is not None:
            own.stop()
    print("\n".join(report_lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
