"""`streamserve api` with two worker processes: each holds the snapshots through its own
holder and watcher, and the parent's /metrics sums their request counts."""

from __future__ import annotations

import re
import time

import httpx

from streamserve.wiring import Runtime
from tests.integration.harness import make_settings, wait_for
from tests.integration.procs import role_env, streamserve
from tests.integration.test_api import _publish, _trained


def _version(url: str) -> int:
    # a new connection per request, so the kernel spreads them over the workers
    r = httpx.post(
        f"{url}/v1/models/default:predict",
        json={"instances": [{"x0": 0.2, "x1": 0.3}]},
        headers={"Connection": "close"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["predictions"][0]["model_version"])


def test_workers_share_the_port_and_follow_new_versions(
    bootstrap: str, redis_url: str, uid: str
) -> None:
    s = make_settings(bootstrap, redis_url, uid)
    rt = Runtime.build(s)
    _publish(rt, _trained(s, 200, seed=1), 1)
    env = role_env(
        bootstrap,
        redis_url,
        uid,
        STREAMSERVE_API_PORT="0",
        STREAMSERVE__API__WORKERS="2",
        STREAMSERVE__SNAPSHOTS__POLL_INTERVAL_SECONDS="0.5",
    )
    with streamserve(["api"], env) as proc:
        wait_for(
            lambda: "metrics on" in proc.output() or proc.poll() is not None, 60, "the API to start"
        )
        log = proc.output()
        assert proc.poll() is None, log
        url = re.search(r"api on (http://\S+) ", log).group(1)  # type: ignore[union-attr]
        metrics = re.search(r"metrics on (http://\S+)", log).group(1)  # type: ignore[union-attr]

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 60, "the workers to be ready")
        # both workers up: their logs say so
        wait_for(lambda: proc.output().count("serving") >= 2, 30, "two workers serving")
        assert {_version(url) for _ in range(20)} == {1}
        _publish(rt, _trained(s, 400, seed=2), 2)
        started = time.monotonic()
        wait_for(lambda: all(_version(url) == 2 for _ in range(10)), 15, "every worker on v2")
        print(f"both workers served v2 {time.monotonic() - started:.2f} s after it was written")

        def counted() -> float:
            text = httpx.get(metrics, timeout=5).text
            found = re.findall(
                r'streamserve_api_requests_total\{route="tf_predict",status="200"\} (\S+)', text
            )
            return float(found[0]) if found else 0.0

        wait_for(lambda: counted() >= 30, 10, "the workers' requests in the parent's /metrics")
    assert proc.returncode == 0, proc.output()
