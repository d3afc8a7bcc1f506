"""Promise 6: unsigned snapshots are never loaded, auth failures are fatal and clear,
Redis ACL users work, and secrets never reach logs, errors or /metrics."""

from __future__ import annotations

import pickle
import time
import urllib.request
from pathlib import Path

import redis
import yaml

from streamserve.embedded import free_port
from streamserve.settings import DEFAULT_MODEL
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
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


def test_kafka_authentication_failure_is_fatal_clear_and_secret_free(
    bootstrap: str, redis_url: str, uid: str, tmp_path: Path, tally: Tally
) -> None:
    sasl_secret = f"sasl-pw-{uid}-do-not-log"
    config = tmp_path / "streamserve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "client": {
                        "security.protocol": "SASL_PLAINTEXT",
                        "sasl.mechanism": "SCRAM-SHA-256",
                        "sasl.username": "mallory",
                        "sasl.password": sasl_secret,
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
        deadline = t0 + 90
        while scorer.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        code = scorer.proc.poll()
        took = time.monotonic() - t0
        out = scorer.output()
    tally.fault = "Kafka authentication failure (SASL against a listener without it)"
    tally.injected = 1
    tally.notes = f"exit code {code} after {took:.1f}s"
    assert code is not None, "the scorer kept retrying a failed authentication"
    assert code != 0
    assert "check kafka.client security settings" in out, out[-2000:]
    assert "SASL" in out or "uthentication" in out
    assert sasl_secret not in out, "the SASL password appears in the output"


def test_redis_acl_and_secrets_absent_from_logs_and_metrics(
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
