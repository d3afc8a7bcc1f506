"""The management routes on the real broker and Redis: the same operations as
``streamserve models`` (one listing for both), admin tokens for every change, a rollback
served over HTTP and Kafka within the polling interval; and a schemathesis fuzz of every
management route over a real Redis (no 5xx, every answer JSON)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from streamserve.app import App
from streamserve.cli import main
from streamserve.lifecycle import Registry
from streamserve.snapshots import SnapshotStore
from tests.integration.harness import make_settings, running, wait_for
from tests.integration.test_api import _client, _publish, _served_version, _trained
from tests.unit.api_app import ADMIN_TOKEN, PREDICT_TOKEN, SPECS, make_app

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PREDICT = {"Authorization": f"Bearer {PREDICT_TOKEN}"}
BASE = "/v1/registry/models"


def _scorer_serves(app: App) -> int:
    return int(app.health()[1]["roles"]["scorer"]["serving"]["default"])


def test_management_routes_change_what_serves_with_an_admin_token(
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
    )
    with running(s, roles=("scorer", "api")) as app, _client(app) as client:
        client.headers.update(PREDICT)
        for v in (1, 2, 3):
            _publish(app.rt, _trained(s, 100 * v, seed=v), v)
        wait_for(lambda: _served_version(client) == 3, 20, "the API to serve v3")

        anonymous = httpx.post(f"{client.base_url}{BASE}/default:rollback", json={"to": 1})
        assert anonymous.status_code == 401
        assert client.post(f"{BASE}/default:rollback", json={"to": 1}).status_code == 403
        started = time.monotonic()
        done = client.post(f"{BASE}/default:rollback", json={"to": 1}, headers=ADMIN)
        assert done.status_code == 200, done.text
        assert (done.json()["serving"], done.json()["resume"]) == (1, 1)
        poll = s.snapshots.poll_interval_seconds
        wait_for(lambda: _served_version(client) == 1, poll + 10, "the API to serve v1", 0.02)
        wait_for(lambda: _scorer_serves(app) == 1, poll + 10, "the scorer to serve v1", 0.02)
        assert time.monotonic() - started <= poll + 1.0

        _changes(client)
        listing = client.get(f"{BASE}/default").json()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"redis": {"url": redis_url, "key_prefix": f"t{uid}"}}))
    assert main(["models", "list", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == [listing]  # the same operations


def _changes(client: httpx.Client) -> None:
    """Aliases, pins, decisions and promotion through the API, each answered as the CLI
    prints it; refusals and bad bodies answered 4xx naming the problem."""

    def call(method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = client.request(method, f"{BASE}/{path}", headers=ADMIN, **kw)
        assert r.status_code == status, (method, path, r.text)
        return r.json() if status == 200 else r.json()["error"]

    assert call("PUT", "default/aliases/champion", json={"version": 3})["aliases"] == {
        "champion": 3
    }
    assert call("GET", "default/versions/champion")["version"] == 3
    assert call("POST", "default:pin", json={"version": "champion"})["pinned"]
    assert call("POST", "default:unpin")["serving"] == 3
    assert call("PUT", "default/decision", json={"threshold": 0.8})["decision"] == {
        "threshold": 0.8,
        "version": 1,
    }
    assert call("DELETE", "default/decision")["decision"] == {"version": 2}
    assert "decision.threshold" in call("PUT", "default/decision", 400, json={"threshold": 2})
    assert "give threshold or costs" in call("PUT", "default/decision", 400, json={})
    assert call("POST", "default:promote")["experiment"]["champion"] == "default"
    assert "cannot be an alias" in call("PUT", "default/aliases/latest", 409, json={"version": 1})
    assert "no alias named 'nope'" in call("DELETE", "default/aliases/nope", 404)
    assert "no version 9 (versions: 1, 2, 3)" in call(
        "POST", "default:rollback", 404, json={"to": 9}
    )
    assert "no model named 'ghost'" in call("POST", "ghost:promote", 404)
    assert "'to' must be a version" in call("POST", "default:rollback", 400, json={"to": True})
    call("POST", "default:rollback", json={"to": 1})  # what serves when the test ends


# -- the fuzz -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def management_app(redis_url: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    store = SnapshotStore(client, prefix=prefix, keep=5)
    app, _, memory = make_app(
        predict_tokens=[PREDICT_TOKEN],
        admin_tokens=[ADMIN_TOKEN],
        lifecycle=Registry(store, SPECS),
    )
    for (model, version), blob in memory.blobs.items():  # the snapshots the API serves
        meta = memory.metas[(model, version)]
        store.publish(meta, blob)
    yield app
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(tag="management")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_management_routes_answer_json_and_no_5xx(management_app: Any, mode: Any) -> None:
    operations = _operations(management_app)
    assert len(operations) == 13
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=60, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy(generation_mode=mode))
        for headers in ({}, PREDICT, ADMIN):
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            assert response.status_code < 500, (case.method, case.path, response.text)
            assert response.headers["content-type"][0].startswith("application/json")
            if response.status_code >= 400:
                assert isinstance(response.json()["error"], str)

    fuzz()
    print(f"\n{mode.value}: answers by status {dict(sorted(statuses.items()))}")
    assert statuses[200] and statuses[401] and statuses[403], statuses
