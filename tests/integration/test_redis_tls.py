"""Redis over TLS (server and client certificates) with an ACL user: snapshots publish
and load through it; a wrong password or an untrusted server certificate is a fatal,
named error at start that never shows the password.

Starts its own ``/usr/bin/redis-server`` (``--port 0 --tls-port N``); skips, saying why,
when that binary was built without TLS or ``openssl`` is missing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from streamserve.embedded import free_port
from streamserve.errors import ConfigError
from streamserve.redis.client import RedisAuthError
from streamserve.settings import DEFAULT_MODEL
from streamserve.snapshots.codec import SnapshotMeta
from streamserve.subprocesses import ProcessStartError, started, wait_for_port
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings
from tests.integration.procs import role_env
from tests.tls_certs import Pki, make_pki, openssl_available

REDIS_SERVER = "/usr/bin/redis-server"
USER = "ss-tls"
NO_KAFKA = "127.0.0.1:1"  # Runtime.build never connects to Kafka; nothing here needs it


def _missing_tool() -> str | None:
    if not Path(REDIS_SERVER).exists():
        return f"{REDIS_SERVER} is not installed"
    if not openssl_available():
        return "the openssl CLI is not installed (needed to make test certificates)"
    return None


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Pki, str]]:
    """(TLS port, certificates, the ACL user's password) of a private redis-server."""
    why = _missing_tool()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("redis-tls")
    pki = make_pki(d)
    port = free_port()
    argv = [
        REDIS_SERVER,
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--tls-cert-file",
        str(pki.server_cert),
        "--tls-key-file",
        str(pki.server_key),
        "--tls-ca-cert-file",
        str(pki.ca_cert),
        "--tls-auth-clients",
        "yes",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(d),
    ]
    password = f"tls-pw-{time.time_ns()}-do-not-log"
    with started(argv, stop_timeout_s=10.0) as proc:
        try:
            wait_for_port(port, proc, "the TLS redis-server", 15.0)
        except ProcessStartError as exc:
            text = proc.output()
            if "tls" in text.lower():  # e.g. "Bad directive or wrong number of args"
                pytest.skip(f"{REDIS_SERVER} cannot serve TLS: {text.strip()[-300:]}")
            raise RuntimeError(f"{exc}: {text[-2000:]}") from None
        admin = redis.Redis(
            host="127.0.0.1",
            port=port,
            ssl=True,
            ssl_ca_certs=str(pki.ca_cert),
            ssl_certfile=str(pki.client_cert),
            ssl_keyfile=str(pki.client_key),
        )
        admin.acl_setuser(
            USER,
            enabled=True,
            passwords=[f"+{password}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        admin.acl_setuser("default", enabled=False)
        admin.close()
        yield port, pki, password


def _redis_section(port: int, pki: Pki, password: str, **extra: object) -> dict[str, object]:
    section: dict[str, object] = {
        "url": f"rediss://127.0.0.1:{port}/0",
        "username": USER,
        "password": password,
        "ssl_ca_certs": str(pki.ca_cert),
        "ssl_certfile": str(pki.client_cert),
        "ssl_keyfile": str(pki.client_key),
    }
    section.update(extra)
    return section


def test_snapshots_publish_and_load_over_tls_with_an_acl_user(
    tls_redis: tuple[int, Pki, str], uid: str
) -> None:
    port, pki, password = tls_redis
    s = make_settings(NO_KAFKA, "", uid, redis=_redis_section(port, pki, password))
    assert s.redis.url is not None and s.redis.url.startswith("rediss://")
    rt = Runtime.build(s)
    try:
        # the server has no plain port (--port 0): any answer came over TLS
        assert rt.redis.connection_pool.connection_class is redis.SSLConnection
        assert rt.redis.acl_whoami() == USER
        model = DEFAULT_MODEL.name
        meta = SnapshotMeta(
            model=model,
            version=1,
            parent=None,
            created_at=time.time(),
            examples_seen=3,
            offsets={0: 3},
            metrics={},
            format="river-pickle/1",
            learner="logistic_regression",
        )
        payload = b"payload-" + uid.encode()
        rt.store.publish(meta, rt.codec.encode(meta, payload))
        assert rt.store.latest_version(model) == 1
        assert rt.store.serving_version(model) == 1
        blob = rt.store.get_blob(model, 1)
        assert blob is not None
        got_meta, got_payload = rt.codec.decode(blob)
        assert (got_meta.version, got_meta.offsets, got_payload) == (1, {0: 3}, payload)
    finally:
        rt.redis.close()


def test_an_untrusted_server_certificate_fails_at_start_naming_the_ca_setting(
    tls_redis: tuple[int, Pki, str], uid: str
) -> None:
    port, pki, password = tls_redis
    s = make_settings(
        NO_KAFKA,
        "",
        uid,
        redis=_redis_section(port, pki, password, ssl_ca_certs=str(pki.other_ca_cert)),
    )
    with pytest.raises(ConfigError) as err:
        Runtime.build(s)
    assert err.value.key == "redis.ssl_ca_certs"
    assert password not in str(err.value)


def test_a_garbage_ca_file_fails_at_start_naming_the_setting(
    tls_redis: tuple[int, Pki, str], uid: str, tmp_path: Path
) -> None:
    port, pki, password = tls_redis
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    s = make_settings(
        NO_KAFKA, "", uid, redis=_redis_section(port, pki, password, ssl_ca_certs=str(garbage))
    )
    with pytest.raises(ConfigError) as err:
        Runtime.build(s)
    assert err.value.key == "redis.ssl_ca_certs"


def test_a_wrong_password_is_a_clear_fatal_error_without_the_password(
    tls_redis: tuple[int, Pki, str], uid: str, tmp_path: Path
) -> None:
    port, pki, password = tls_redis
    wrong = f"wrong-{password}"
    s = make_settings(NO_KAFKA, "", uid, redis=_redis_section(port, pki, wrong))
    with pytest.raises(RedisAuthError) as err:
        Runtime.build(s)
    assert USER in str(err.value)
    assert "redis.password" in str(err.value)
    assert wrong not in str(err.value) and password not in str(err.value)

    # The same through the command line: it exits (bounded), says why, and hides it.
    config = tmp_path / "streamserve.yaml"
    section = _redis_section(port, pki, "unused")
    del section["password"], section["url"]
    config.write_text(yaml.safe_dump({"redis": section}))
    env = role_env(
        NO_KAFKA,
        f"rediss://127.0.0.1:{port}/0",
        uid,
        STREAMSERVE_CONFIG=str(config),
        STREAMSERVE_REDIS_PASSWORD=wrong,
        STREAMSERVE_LOG_LEVEL="DEBUG",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "streamserve.cli", "score"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-2000:]
    assert "Redis refused" in out and USER in out, out[-2000:]
    assert wrong not in out, "the Redis password appears in the output"
