"""A real Prometheus server scrapes a running `streamserve up` and evaluates the alert rules.

Prometheus (Debian's package; `.ci/run` installs it) starts on a free port with a generated
config: one scrape target, streamserve's /metrics, and deploy/prometheus/rules loaded.
The test reads its HTTP API: the target is up, streamserve's series are there (lag, the
learner's lease, the served version, ...), every rule is evaluated with health "ok", the
rules' and the dashboard's queries run on the scraped series, and none of the rules that
a healthy stack must keep quiet is pending or firing.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from streamserve.subprocesses import started, wait_for_port
from tests.integration.harness import produce_json, wait_for
from tests.integration.procs import role_env, streamserve
from tests.tools import tool
from tests.unit.test_observability_files import RULES, _dashboard_exprs

QUIET_WHEN_HEALTHY = {
    "StreamserveModelWithoutLeader",
    "StreamserveNoCheckpoint",
    "StreamserveDeadLetterRate",
    "StreamserveLearningPaused",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class PrometheusApi:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"

    def ready(self) -> bool:
        url = self.base.removesuffix("/api/v1") + "/-/ready"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:  # refused, or 503 while starting (HTTPError is an OSError)
            return False

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def names(self) -> set[str]:
        series = self.get("series", **{"match[]": '{__name__=~"streamserve_.+"}'})
        return {s["__name__"] for s in series}


def test_prometheus_scrapes_streamserve_and_evaluates_the_rules(
    bootstrap: str, redis_url: str, uid: str, tmp_path: Path
) -> None:
    prometheus = tool("prometheus", "prometheus (Debian package prometheus)")
    env = role_env(
        bootstrap, redis_url, uid, STREAMSERVE__SNAPSHOTS__CHECKPOINT_EVERY_SECONDS="1"
    )
    with streamserve(["up"], env) as up:
        wait_for(lambda: "streamserve is up" in up.output() or up.poll() is not None, 90, "up")
        assert up.poll() is None, up.tail()
        metrics = re.search(r"metrics\s+: (http://\S+)/metrics", up.output())
        assert metrics is not None, up.output()
        target = metrics.group(1).removeprefix("http://")
        events = [{"event_id": f"e-{i}", "features": {"x": i % 7 - 3.0}} for i in range(200)]
        labels = [{"event_id": f"e-{i}", "label": i % 7 > 3} for i in range(200)]
        produce_json(bootstrap, f"t{uid}.events", events)
        produce_json(bootstrap, f"t{uid}.feedback", labels)

        port = _free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "scrape_configs": [
                        {"job_name": "streamserve", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        argv = [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with started(argv, log_prefix="prometheus-test-", stop_timeout_s=30) as server:
            wait_for_port(port, server, "prometheus", 60)
            api = PrometheusApi(port)
            # It answers 503 until its storage is open and the rules are loaded.
            wait_for(api.ready, 60, "prometheus to be ready", interval_s=0.2)
            _check(api, server.tail)


def _check(api: PrometheusApi, log: Any) -> None:
    wait_for(
        lambda: [r["value"][1] for r in api.query('up{job="streamserve"}')] == ["1"],
        60,
        "the streamserve target to be up",
    )
    # Series of every kind: counters, histograms, the lag gauge of each consumer loop.
    expected = {
        "streamserve_events_scored_total",
        "streamserve_batch_seconds_bucket",
        "streamserve_end_to_end_seconds_bucket",
        "streamserve_serving_version",
        "streamserve_learner_leader",
        "streamserve_learner_version",
        "streamserve_learning_paused",
        "streamserve_examples_learned_total",
        "streamserve_checkpoints_total",
        "streamserve_consumer_lag",
    }
    wait_for(lambda: expected <= api.names(), 90, f"series {sorted(expected - api.names())}")
    lag_roles = {"scorer", "joiner", "learner-default"}
    wait_for(
        lambda: lag_roles
        <= {r["metric"]["role"] for r in api.query("streamserve_consumer_lag")},
        60,
        "the lag of every consumer loop",
    )
    leaders = api.query("max by (model) (streamserve_learner_leader) == 1")
    assert [r["metric"]["model"] for r in leaders] == ["default"]

    # Every rule evaluated on these series, without error.
    def evaluated() -> list[dict[str, Any]]:
        groups = api.get("rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    wait_for(
        lambda: len(evaluated()) == 8
        and all(not r["lastEvaluation"].startswith("0001") for r in evaluated()),
        60,
        "every rule to be evaluated",
    )
    rules = evaluated()
    assert {r["health"] for r in rules} == {"ok"}, [(r["name"], r.get("lastError")) for r in rules]
    for rule in rules:
        api.query(rule["query"])  # runs on the scraped series
        if rule["name"] in QUIET_WHEN_HEALTHY:
            assert rule["state"] == "inactive", (rule["name"], rule["alerts"], log())
    # The dashboard's queries run on them too, and its main panels have data.
    for where, expr in _dashboard_exprs():
        result = api.query(expr.replace("$__rate_interval", "1m"))
        if where.startswith(("panel 'Consumer lag'", "panel 'Serving version'")):
            assert result, where
