"""Bearer tokens: optional for the model routes, required for feedback; never logged."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from starlette.testclient import TestClient

from streamserve.api import server
from streamserve.settings import settings_from_dict
from tests.unit.api_app import ADMIN_TOKEN, PREDICT_TOKEN, MemoryWriter, make_app

PREDICT = ("POST", "/v1/models/default:predict", {"instances": [{"x0": 1.0}]})
INFER = (
    "POST",
    "/v2/models/default/infer",
    {"inputs": [{"name": "x0", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
)
FEEDBACK = ("POST", "/v1/models/default:feedback", {"labels": [{"event_id": "e", "label": True}]})
STATUS = ("GET", "/v1/models/default", None)
LIVE = ("GET", "/v2/health/live", None)
DOC = ("GET", "/openapi.json", None)


def _call(client: TestClient, route: tuple[str, str, object], token: str | None) -> int:
    method, path, body = route
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=body, headers=headers).status_code


@pytest.mark.parametrize(
    ("route", "none", "bad", "predict", "admin"),
    [
        (PREDICT, 401, 401, 200, 200),
        (INFER, 401, 401, 200, 200),
        (STATUS, 401, 401, 200, 200),
        (FEEDBACK, 401, 401, 403, 200),
        (LIVE, 200, 200, 200, 200),
        (DOC, 200, 200, 200, 200),
    ],
)
def test_tokens_guard_the_routes(
    route: tuple[str, str, object], none: int, bad: int, predict: int, admin: int
) -> None:
    app, _, _ = make_app(
        predict_tokens=[PREDICT_TOKEN], admin_tokens=[ADMIN_TOKEN], writer=MemoryWriter()
    )
    client = TestClient(app)
    assert _call(client, route, None) == none
    assert _call(client, route, "wrong-token-0123456789") == bad
    assert _call(client, route, PREDICT_TOKEN) == predict
    assert _call(client, route, ADMIN_TOKEN) == admin


def test_without_predict_tokens_reads_are_open_and_feedback_still_needs_a_token() -> None:
    writer = MemoryWriter()
    app, _, _ = make_app(admin_tokens=[ADMIN_TOKEN], writer=writer)
    client = TestClient(app)
    assert _call(client, PREDICT, None) == 200
    assert _call(client, FEEDBACK, None) == 401
    assert _call(client, FEEDBACK, ADMIN_TOKEN) == 200
    assert [x.event_id for x in writer.labels] == ["e"]


def test_without_admin_tokens_feedback_is_off() -> None:
    app, _, _ = make_app(writer=MemoryWriter())
    client = TestClient(app)
    r = client.post(FEEDBACK[1], json=FEEDBACK[2], headers={"Authorization": "Bearer x" * 3})
    assert r.status_code == 403 and "api.admin_tokens" in r.json()["error"]


def test_a_401_says_bearer() -> None:
    app, _, _ = make_app(predict_tokens=[PREDICT_TOKEN])
    r = TestClient(app).post(PREDICT[1], json=PREDICT[2])
    assert r.headers["www-authenticate"] == "Bearer"
    r = TestClient(app).post(PREDICT[1], json=PREDICT[2], headers={"Authorization": PREDICT_TOKEN})
    assert r.status_code == 401  # no "Bearer " scheme


def test_tokens_never_appear_in_logs_answers_or_settings(caplog: pytest.LogCaptureFixture) -> None:
    """A real server (uvicorn) at DEBUG: tokens sent right and wrong leave no trace."""
    wrong = "wrong-token-abcdefghijkl"
    s = settings_from_dict(
        {"api": {"port": 0, "predict_tokens": [PREDICT_TOKEN], "admin_tokens": [ADMIN_TOKEN]}}
    )
    assert PREDICT_TOKEN not in repr(s) and ADMIN_TOKEN not in str(s.api)
    app, _, _ = make_app(
        predict_tokens=[PREDICT_TOKEN], admin_tokens=[ADMIN_TOKEN], writer=MemoryWriter()
    )
    caplog.set_level(logging.DEBUG)
    sock = server.bind("127.0.0.1", 0)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_until, args=(app, sock, s.api, stop))
    thread.start()
    bodies: list[str] = []
    try:
        base = server.url(sock, s.api)
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.get("/v2/health/live")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.05)
            for token in (PREDICT_TOKEN, ADMIN_TOKEN, wrong):
                headers = {"Authorization": f"Bearer {token}"}
                for method, path, body in (PREDICT, FEEDBACK, STATUS):
                    r = client.request(method, path, json=body, headers=headers)
                    bodies.append(r.text + str(r.headers))
                r = client.post(PREDICT[1], content=b"{", headers=headers)
                bodies.append(r.text)
    finally:
        stop.set()
        thread.join(15)
        sock.close()
    assert not thread.is_alive()
    assert caplog.records  # the server did log at DEBUG
    for token in (PREDICT_TOKEN, ADMIN_TOKEN, wrong):
        assert token not in caplog.text
        assert not any(token in b for b in bodies)
