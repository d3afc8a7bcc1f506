"""A learning pause on the real broker and Redis: ``models pause`` stops the learner within
its polling interval (examples read and passed over, no new versions, the gauge at 1,
serving unchanged), an alert on drift-alerts says it paused and why; the API's
``:resume`` (admin token) lets it learn again from the next example, and an alert says so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from streamserve.app import App
from streamserve.cli import main
from streamserve.drift import alerts as actions
from tests.integration.harness import make_settings, read_topic, running, wait_for
from tests.integration.test_api import _client
from tests.integration.test_learner_resume import _examples, _produce_to_partition_zero
from tests.unit.api_app import ADMIN_TOKEN

MODEL = "default"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _learner(app: App) -> dict[str, Any]:
    roles: dict[str, Any] = app.health()[1]["roles"]
    return dict(roles[f"learner-{MODEL}"])


def _sample(app: App, name: str) -> float:
    return app.rt.registry.get_sample_value(name, {"model": MODEL}) or 0.0


def _alerts(app: App, bootstrap: str, actions_wanted: list[str]) -> list[dict[str, Any]]:
    decode = app.rt.serde.alert_decoder().decode

    def done(rs: list[dict[str, Any]]) -> bool:
        return [r["action"] for r in rs if r["signal"] == "learning"] == actions_wanted

    records = read_topic(
        bootstrap,
        app.rt.topics["drift-alerts"],
        until=done,
        decode=lambda m: decode(m.value(), None),
        timeout_s=30,
    )
    assert done(records), [r["action"] for r in records]
    return [r for r in records if r["signal"] == "learning"]


def _cli_pause(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    rc = main(["models", "pause", MODEL, "--reason", "label audit", "--json",
               "--config", str(config)])  # fmt: skip
    assert rc == 0
    view: dict[str, Any] = json.loads(capsys.readouterr().out)["models"][0]
    assert view["learning"]["paused"] is True
    assert view["learning"]["reason"] == "label audit"
    assert view["learning"]["by"].startswith("cli")
    return view


def _api_pause_answers(client: Any) -> None:
    """A pause through the API with a reason or none; a bad body is a 400 naming the field,
    an unknown model a 404."""
    url = f"/v1/registry/models/{MODEL}:pause"
    bad = client.post(url, json={"why": 1}, headers=ADMIN)
    assert bad.status_code == 400 and "why" in bad.text
    ok = client.post(url, json={"reason": "again"}, headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["learning"]["reason"] == "again"
    bare = client.post(url, headers=ADMIN)
    assert bare.status_code == 200 and bare.json()["learning"]["paused"] is True
    assert client.post("/v1/registry/models/nope:pause", headers=ADMIN).status_code == 404


def test_a_paused_model_serves_on_learns_nothing_and_resumes_by_command(
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
        snapshots={"checkpoint_every_examples": 100, "checkpoint_every_seconds": 0.5},
        api={"port": 0, "admin_tokens": [ADMIN_TOKEN]},
    )
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"redis": {"url": redis_url, "key_prefix": f"t{uid}"}}))
    poll = s.snapshots.poll_interval_seconds
    with running(s, roles=("scorer", "learner", "api")) as app, _client(app) as client:
        store, topic = app.rt.store, app.rt.topics["examples"]
        _produce_to_partition_zero(bootstrap, topic, _examples(uid, 0, 300))
        wait_for(lambda: _learner(app)["examples_seen"] == 300, 60, "300 examples learned")
        wait_for(lambda: store.latest_version(MODEL) is not None, 20, "a first version")
        wait_for(lambda: _learner(app)["version"] == store.latest_version(MODEL), 20, "v")
        before = store.latest_version(MODEL)
        meta = store.get_meta(MODEL, before or 0)
        assert meta is not None and meta.examples_seen == 300

        capsys.readouterr()
        started = time.monotonic()
        view = _cli_pause(config, capsys)
        wait_for(lambda: _learner(app)["learning_paused"], poll + 5, "the learner to pause", 0.02)
        assert time.monotonic() - started <= poll + 1.0
        assert _sample(app, "streamserve_learning_paused") == 1

        _produce_to_partition_zero(bootstrap, topic, _examples(uid, 300, 400))
        wait_for(
            lambda: _sample(app, "streamserve_examples_paused_total") == 400,
            30,
            "400 examples passed over",
        )
        time.sleep(1.5)  # three checkpoint intervals: none may come
        assert store.latest_version(MODEL) == before
        assert _learner(app)["examples_seen"] == 300
        assert int(app.health()[1]["roles"]["scorer"]["serving"][MODEL]) == before
        listing = client.get(f"/v1/registry/models/{MODEL}").json()
        assert listing["learning"] == view["learning"]

        # the API's resume: an admin token, then learning from the next example on
        assert client.post(f"/v1/registry/models/{MODEL}:resume").status_code == 401
        done = client.post(f"/v1/registry/models/{MODEL}:resume", headers=ADMIN)
        assert done.status_code == 200, done.text
        assert done.json()["learning"]["paused"] is False
        assert done.json()["learning"]["by"] == "api"
        wait_for(lambda: not _learner(app)["learning_paused"], poll + 5, "the learner to resume")
        assert _sample(app, "streamserve_learning_paused") == 0
        _produce_to_partition_zero(bootstrap, topic, _examples(uid, 700, 200))

        def learned_after() -> bool:
            latest = store.latest_version(MODEL)
            m = store.get_meta(MODEL, latest) if latest else None
            return m is not None and m.examples_seen == 500

        wait_for(learned_after, 60, "the 200 examples after the resume learned")
        latest = store.latest_version(MODEL)
        newest = store.get_meta(MODEL, latest or 0)
        assert newest is not None and newest.offsets == {0: 900}  # past the paused ones

        paused, resumed = _alerts(
            app, bootstrap, [actions.ACTION_LEARNING_PAUSED, actions.ACTION_LEARNING_RESUMED]
        )
        assert paused["detector"] == "manual" and paused["details"]["reason"] == "label audit"
        assert paused["model_version"] == before
        assert resumed["details"]["by"] == "api"

        _api_pause_answers(client)
    assert main(["models", "resume", MODEL, "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["learning"]["paused"] is False
