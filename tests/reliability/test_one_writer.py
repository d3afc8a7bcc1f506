"""Promise 4: one writer per model.

Two learner processes for one model: only the lease holder writes. When it is killed -9
the other takes over within the lease time (plus its polling), and a stale leader's late
write is refused (lease and version fencing in the publish script).
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import redis

from streamserve.embedded import free_port
from streamserve.learners.catalogue import build_learner
from streamserve.records import Example
from streamserve.settings import DEFAULT_MODEL
from streamserve.snapshots.codec import SnapshotMeta
from streamserve.snapshots.exceptions import FencedError
from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, producer, wait_for
from tests.integration.procs import role_env
from tests.reliability.faults import RoleProcess, role_processes
from tests.reliability.tally import Tally

MODEL = DEFAULT_MODEL.name
LEASE_TTL_MS = 3000


def _leader(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            body = json.loads(r.read())
    except (OSError, ValueError):
        return False
    return any(role.get("leader") is True for role in body.get("roles", {}).values())


def test_only_the_lease_holder_writes_and_a_standby_takes_over(
    bootstrap: str, redis_url: str, uid: str, redis_client: redis.Redis, tally: Tally
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    rt = Runtime.build(s)
    rt.create_topics()
    encode = rt.serde.example_encoder().encode
    examples = [Example(f"{uid}-{i}", {"x": float(i % 5)}, i % 2 == 0, i, i) for i in range(300)]
    p0 = producer(bootstrap)
    for ex in examples:
        p0.produce(rt.topics["examples"], encode(ex), ex.event_id.encode())
    assert p0.flush(30) == 0
    ports = [free_port(), free_port()]
    procs = [
        RoleProcess(
            ["learn"],
            role_env(
                bootstrap,
                redis_url,
                uid,
                STREAMSERVE_HTTP_PORT=str(port),
                STREAMSERVE__SNAPSHOTS__LEASE_TTL_MS=str(LEASE_TTL_MS),
                STREAMSERVE_LOG_LEVEL="WARNING",
            ),
        )
        for port in ports
    ]
    refused = 0
    with role_processes(*procs):
        for p in procs:
            p.start()
        wait_for(lambda: any(_leader(p) for p in ports), 60, "a leader")
        wait_for(lambda: (rt.store.latest_version(MODEL) or 0) >= 1, 60, "a checkpoint")
        time.sleep(2 * LEASE_TTL_MS / 1000)  # both up; still exactly one leader
        leaders = [i for i, port in enumerate(ports) if _leader(port)]
        assert len(leaders) == 1, leaders
        old = leaders[0]
        standby = 1 - old
        stale_token = redis_client.get(rt.store.lease_key(MODEL))
        assert stale_token is not None

        procs[old].kill9()
        t0 = time.monotonic()
        wait_for(lambda: _leader(ports[standby]), 60, "the standby to take over")
        takeover_s = time.monotonic() - t0

        # The dead leader's late write: its token no longer holds the lease.
        learner = build_learner(s.model(MODEL))
        latest = rt.store.latest_version(MODEL) or 0
        for version, token in ((latest + 100, stale_token.decode()), (max(latest, 1), None)):
            meta = SnapshotMeta(
                model=MODEL,
                version=version,
                parent=None,
                created_at=time.time(),
                examples_seen=0,
                offsets={},
                metrics={},
                format=learner.format,
                learner=learner.spec.learner,
            )
            blob = rt.codec.encode(meta, learner.dumps())
            with pytest.raises(FencedError):
                rt.store.publish(meta, blob, lease_token=token)
            refused += 1
        for p in procs:
            p.check_alive()
        crashes = sum(p.crashes for p in procs)
    rt.redis.close()
    tally.fault = "learner leader kill -9 with a standby; stale writes"
    tally.injected = 1 + refused
    tally.crashes = crashes
    tally.notes = (
        f"standby took over in {takeover_s:.1f}s (lease {LEASE_TTL_MS / 1000:.0f}s); "
        f"{refused} stale writes refused"
    )
    assert takeover_s < LEASE_TTL_MS / 1000 + 5
    assert crashes == 0
