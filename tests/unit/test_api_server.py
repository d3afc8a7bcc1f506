"""The API's settings (validated, naming the key), TLS passed through to the server, and
the request time limit (408 while the body is read, 503 while it is answered)."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamserve.api import server
from streamserve.api.http import Limits
from streamserve.cli import build_parser
from streamserve.errors import ConfigError
from streamserve.records import Event, Label
from streamserve.settings import ApiSettings, load_settings, settings_from_dict
from tests.tls_certs import make_pki, openssl_available
from tests.unit.api_app import make_app


@pytest.mark.parametrize(
    ("api", "key"),
    [
        ({"port": 70000}, "api.port"),
        ({"workers": 0}, "api.workers"),
        ({"max_batch_size": 0}, "api.max_batch_size"),
        ({"max_batch_wait_ms": -1}, "api.max_batch_wait_ms"),
        ({"max_body_bytes": 0}, "api.max_body_bytes"),
        ({"max_instances": -5}, "api.max_instances"),
        ({"request_timeout_ms": 0}, "api.request_timeout_ms"),
        ({"predict_tokens": ["short"]}, "api.predict_tokens[0]"),
        ({"admin_tokens": "x" * 20 + ",tiny"}, "api.admin_tokens[1]"),
        ({"admin_tokens": 5}, "api.admin_tokens"),
        ({"tls_certfile": "/no/such/file"}, "api.tls_certfile"),
        ({"host": ""}, "api.host"),
        ({"colour": "red"}, "api.colour"),
        ({"write_events": "yes"}, "api.write_events"),
    ],
)
def test_bad_api_settings_name_the_key(api: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"api": api})
    assert info.value.key == key


def test_api_settings_from_the_environment_and_flags() -> None:
    s = load_settings(
        env={
            "STREAMSERVE_API_PORT": "9000",
            "STREAMSERVE__API__WORKERS": "3",
            "STREAMSERVE__API__PREDICT_TOKENS": "a" * 16 + ", " + "b" * 16,
        }
    )
    assert (s.api.port, s.api.workers, len(s.api.predict_tokens)) == (9000, 3, 2)
    assert s.api.host == "127.0.0.1" and ApiSettings().port == 8080
    assert load_settings(env={}, overrides={"api": {"port": 0}}).api.port == 0
    args = build_parser().parse_args(["api", "--api-port", "0"])
    assert args.api_port == 0
    args = build_parser().parse_args(["up", "--api-port", "7"])
    assert args.api_port == 7


@pytest.mark.skipif(not openssl_available(), reason="needs the openssl CLI")
def test_tls_files_pass_through_to_the_server(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    api = settings_from_dict(
        {
            "api": {
                "port": 0,
                "tls_certfile": str(pki.server_cert),
                "tls_keyfile": str(pki.server_key),
            }
        }
    ).api
    app, _, _ = make_app()
    sock = server.bind("127.0.0.1", 0)
    url = server.url(sock, api)
    assert url.startswith("https://127.0.0.1:")
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_until, args=(app, sock, api, stop))
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(
                    f"{url}/v2/health/live",
                    verify=ssl.create_default_context(cafile=str(pki.ca_cert)),
                    timeout=5,
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the TLS server did not answer"
                time.sleep(0.1)
        assert r.status_code == 200
        with pytest.raises(httpx.ConnectError):  # a client that trusts another CA refuses it
            httpx.get(
                f"{url}/v2/health/live",
                verify=ssl.create_default_context(cafile=str(pki.other_ca_cert)),
                timeout=5,
            )
    finally:
        stop.set()
        thread.join(15)
        sock.close()
    assert not thread.is_alive()


async def _call(app: Any, path: str, receive: Any) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    await app(scope, receive, send)
    return sent[0]["status"], sent[1]["body"]


def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    app, _, _ = make_app(limits=Limits(1 << 20, 100, timeout_s=0.2))

    async def slow() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"type": "http.request", "body": b"", "more_body": False}

    status, body = asyncio.run(_call(app, "/v1/models/default:predict", slow))
    assert status == 408 and b"api.request_timeout_ms" in body


class _StuckWriter:
    async def write_events(self, events: Sequence[Event]) -> None:
        await asyncio.sleep(30)

    async def write_labels(self, labels: Sequence[Label]) -> None:
        await asyncio.sleep(30)


def test_an_answer_that_takes_too_long_is_a_503() -> None:
    app, _, _ = make_app(
        limits=Limits(1 << 20, 100, timeout_s=0.2), writer=_StuckWriter(), write_events=True
    )
    body = b'{"instances": [{"event_id": "e", "features": {"x0": 1.0}}]}'
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    status, answer = asyncio.run(_call(app, "/v1/models/default:predict", receive))
    assert status == 503 and b"not answered within" in answer


def test_the_compose_file_runs_the_api_on_every_interface(tmp_path: Path) -> None:
    import yaml

    root = Path(__file__).resolve().parents[2]
    api = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]["api"]
    assert build_parser().parse_args(api["command"]).command == "api"
    key = tmp_path / "key"
    key.write_text("a-long-enough-signing-key-for-tests\n")
    env = {k: str(v) for k, v in api["environment"].items()}
    env["STREAMSERVE_SNAPSHOT_KEY_FILE"] = str(key)
    s = load_settings(None, env=env)
    assert (s.api.host, s.api.port, s.api.workers) == ("0.0.0.0", 8080, 2)
    assert "8080:8080" in api["ports"]
