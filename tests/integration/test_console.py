"""The console's data on the real broker and Redis: the audit log of API changes (the token's
identity, never the token) and of ``models`` commands (the OS user), drift alerts recorded
beside the topic, live figures from the processes' status summaries, and the live stream
(token checked, bounded in number and length, closed when the client goes)."""

from __future__ import annotations

import getpass
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from streamserve.app import App
from streamserve.cli import main
from streamserve.console.feed import ConsoleFeed
from streamserve.console.records import AlertLog, AuditLog
from streamserve.console.status import read_statuses, status_key
from streamserve.drift.alerts import DriftAlert
from streamserve.lifecycle import Registry
from streamserve.metrics import Metrics
from streamserve.settings import DEFAULT_MODEL
from streamserve.snapshots import SnapshotStore
from tests.integration.harness import make_settings, produce_json, running, wait_for
from tests.integration.test_api import _api_url, _client, _publish, _trained
from tests.unit.api_app import ADMIN_TOKEN, PREDICT_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PREDICT = {"Authorization": f"Bearer {PREDICT_TOKEN}"}
BASE = "/v1/registry/models"
FAST = {"status_interval_seconds": 0.3, "update_seconds": 0.2}


def _state(client: httpx.Client) -> dict[str, Any]:
    r = client.get("/v1/console/state")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _model(state: dict[str, Any], name: str = "default") -> dict[str, Any]:
    (found,) = [m for m in state["models"] if m["model"] == name]
    return found


def test_changes_are_audited_with_who_made_them(
    bootstrap: str,
    redis_url: str,
    uid: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        api={"port": 0, "admin_tokens": [ADMIN_TOKEN], "predict_tokens": [PREDICT_TOKEN]},
        console=FAST,
    )
    with running(s, roles=("api",)) as app, _client(app) as client:
        client.headers.update(PREDICT)
        for v in (1, 2, 3):
            _publish(app.rt, _trained(s, 100 * v, seed=v), v)
        assert client.post(f"{BASE}/default:rollback", json={"to": 1}, headers=ADMIN).is_success
        missing = client.post(f"{BASE}/default:pin", json={"version": 99}, headers=ADMIN)
        assert missing.status_code == 404
        assert client.post(f"{BASE}/default:unpin").status_code == 403  # not audited: no admin
        bad = client.post(f"{BASE}/default:rollback", json={"to": True}, headers=ADMIN)
        assert bad.status_code == 400
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"redis": {"url": redis_url, "key_prefix": f"t{uid}"}}))
        assert main(["models", "pin", "--version", "2", "--json", "--config", str(config)]) == 0
        capsys.readouterr()
        assert main(["models", "rollback", "--to", "9", "--config", str(config)]) != 0
        audit = _state(client)["audit"]

    newest_first = [(a["via"], a["action"], a["outcome"]) for a in audit]
    assert newest_first == [
        ("cli", "rollback", "refused"),
        ("cli", "pin", "ok"),
        ("api", "rollback", "refused"),
        ("api", "pin", "refused"),
        ("api", "rollback", "ok"),
    ]
    cli_refused, cli_pin, api_bad, api_missing, api_rollback = audit
    assert api_rollback["who"].startswith("admin-token-1 (sha256 ")
    assert api_rollback["model"] == "default" and api_rollback["args"] == {"to": 1}
    assert api_rollback["result"]["serving"] == 1 and api_rollback["error"] is None
    assert "no version" in api_missing["error"] and api_missing["args"] == {"version": 99}
    assert "'to' must be a version number" in api_bad["error"]
    assert cli_pin["who"] == f"{getpass.getuser()} (os user)"
    assert cli_pin["args"] == {"version": "2"} and cli_pin["result"]["pinned"] is True
    assert cli_refused["args"] == {"to": "9"} and "no version" in cli_refused["error"]
    assert all(1e12 < a["ts"] <= time.time() * 1000 for a in audit)
    assert ADMIN_TOKEN not in json.dumps(audit)


def test_the_state_has_live_figures_alerts_and_history(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(bootstrap, redis_url, uid, api={"port": 0}, console=FAST)
    with running(s, roles=("scorer", "joiner", "learner", "api")) as app, _client(app) as client:
        rows = [
            {"event_id": f"{uid}-{i}", "features": {"x0": i % 7 / 7, "x1": i % 3 / 3}}
            for i in range(600)
        ]
        produce_json(bootstrap, app.rt.topics["events"], rows)
        labels = [{"event_id": r["event_id"], "label": i % 2 == 0} for i, r in enumerate(rows)]
        produce_json(bootstrap, app.rt.topics["feedback"], labels)

        def live() -> dict[str, Any]:
            return dict(_model(_state(client))["live"])

        wait_for(lambda: (live()["scored_total"] or 0) >= 600, 60, "600 events scored")
        wait_for(lambda: live()["prequential"] is not None, 60, "the learner's metrics")
        figures = live()
        assert figures["latency"]["count"] > 0 and figures["latency"]["p50"] > 0
        assert figures["latency"]["p50"] <= figures["latency"]["p99"]
        assert figures["learning_paused"] is False
        assert figures["prequential"]["n"] >= 1
        assert "scorer" in figures["sources"]["scoring"][0]
        state = _state(client)
        assert state["live"]["processes"][0]["roles"] == [
            "api", "joiner", "learner-default", "scorer", "status"
        ]  # fmt: skip
        wait_for(
            lambda: any(k.startswith("scorer:") for k in _state(client)["live"]["lag"]),
            30,
            "the scorer's consumer lag",
        )
        assert state["live"]["dead_letters"]["total"] == 0
        wait_for(lambda: _model(_state(client))["serving"] is not None, 30, "a version")
        assert _model(_state(client))["series"], "metrics over time"

        # a drift alert from the learner's sink: on the topic and in the console's log
        producer = app.rt.producer("test")[0]
        sink = app.rt.alert_sink(producer)
        sink.emit(DriftAlert("default", 1, "ADWIN", "error", "drift", 0.4, 10, "alert"))
        assert producer.flush(10) == 0
        del sink, producer  # closed now, not when the session's broker has gone
        wait_for(lambda: bool(_model(_state(client))["alerts"]), 10, "the alert on the page")
        (alert,) = _model(_state(client))["alerts"]
        seen = (alert["detector"], alert["severity"], alert["model_version"])
        assert seen == ("ADWIN", "drift", 1)

    # the processes' summaries go when they stop
    assert read_statuses(redis_client, f"t{uid}") == []
    assert redis_client.hlen(status_key(f"t{uid}")) == 0


def _open_stream(url: str, headers: dict[str, str], out: list[str], done: threading.Event) -> None:
    with (
        httpx.Client(timeout=10) as c,
        c.stream("GET", f"{url}/v1/console/stream", headers=headers) as r,
    ):
        out.append(str(r.status_code))
        for line in r.iter_lines():
            out.append(line)
            if done.is_set():
                return


def test_the_stream_is_guarded_bounded_and_closed_with_the_client(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis
) -> None:
    s = make_settings(
        bootstrap,
        redis_url,
        uid,
        api={"port": 0, "predict_tokens": [PREDICT_TOKEN]},
        console={**FAST, "max_streams": 1, "stream_seconds": 3},
    )
    with running(s, roles=("api",)) as app, _client(app) as client:
        url = _api_url(app)
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and "streamserve console" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(f"{url}/console/static/vendor/uplot/LICENSE").status_code == 200
        assert client.get("/v1/console/state").status_code == 401
        assert httpx.get(f"{url}/v1/console/stream", timeout=10).status_code == 401

        lines: list[str] = []
        done = threading.Event()
        reader = threading.Thread(target=_open_stream, args=(url, PREDICT, lines, done))
        reader.start()
        wait_for(lambda: "event: state" in lines, 10, "the first state")
        state = json.loads(next(x for x in lines if x.startswith("data: {"))[6:])
        assert _model(state)["model"] == "default"
        second = httpx.get(f"{url}/v1/console/stream", headers=PREDICT, timeout=10)
        assert second.status_code == 503 and "console.max_streams" in second.json()["error"]
        reader.join(15)  # the stream ends by itself after console.stream_seconds
        assert not reader.is_alive() and "event: end" in lines
        assert lines.count("event: state") >= 5  # every update_seconds for 3 s
        wait_for(lambda: _gauge(app) == 0, 5, "the stream counted closed")

        # a client that goes away mid-stream frees its place
        done.set()
        with (
            httpx.Client(timeout=10) as c,
            c.stream("GET", f"{url}/v1/console/stream", headers=PREDICT) as r,
        ):
            assert r.status_code == 200
            assert _gauge(app) == 1
        wait_for(lambda: _gauge(app) == 0, 5, "the stream closed with its client")


def _gauge(app: App) -> float:
    value = app.rt.registry.get_sample_value("streamserve_console_streams")
    return float(value or 0.0)


def test_only_recent_status_summaries_are_read_and_old_ones_are_removed(
    uid: str, redis_client: redis.Redis
) -> None:
    prefix = f"t{uid}"
    key = status_key(prefix)
    now = time.time()

    def summary(pid: int, age_s: float) -> bytes:
        return json.dumps({"id": f"h:{pid}", "at": now - age_s, "interval_s": 2.0}).encode()

    redis_client.hset(key, "h:1", summary(1, 1.0))  # fresh
    redis_client.hset(key, "h:2", summary(2, 30.0))  # stale: not shown, kept a while
    redis_client.hset(key, "h:3", summary(3, 3600.0))  # long gone: removed
    redis_client.hset(key, "h:4", b"not json")  # unreadable: removed
    statuses = read_statuses(redis_client, prefix, clock=lambda: now)
    assert [(s["id"], s["age_s"]) for s in statuses] == [("h:1", pytest.approx(1.0))]
    assert sorted(redis_client.hkeys(key)) == [b"h:1", b"h:2"]


def test_redis_away_loses_no_action_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """A record Redis does not take is counted and logged at WARNING; the state says Redis
    did not answer instead of failing."""
    gone = redis.Redis(
        host="127.0.0.1", port=_closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    metrics = Metrics(CollectorRegistry())
    audit = AuditLog(gone, prefix="tgone", maxlen=10, metrics=metrics)
    alerts = AlertLog(gone, prefix="tgone", maxlen=10, metrics=metrics)
    with caplog.at_level(logging.WARNING, logger="streamserve.console.records"):
        ok = audit.record(
            who="ann (os user)", via="cli", action="pin", model="m", args={}, outcome="ok"
        )
        alerts.record({"model": "m", "severity": "drift"})
    assert ok is False
    value = metrics.registry.get_sample_value
    assert value("streamserve_console_write_failures_total", {"kind": "audit"}) == 1
    assert value("streamserve_console_write_failures_total", {"kind": "alert"}) == 1
    assert len([r for r in caplog.records if "could not record" in r.getMessage()]) == 2

    registry = Registry(SnapshotStore(gone, prefix="tgone"), [DEFAULT_MODEL])
    feed = ConsoleFeed(
        registry, gone, prefix="tgone", audit=audit, alerts=alerts, update_s=1.0,
        status_interval_s=2.0,
    )  # fmt: skip
    state = feed.state()
    assert state["models"] == [] and "Redis did not answer" in state["error"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
