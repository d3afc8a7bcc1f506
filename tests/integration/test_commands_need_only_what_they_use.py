"""Each command builds only what it uses: ``topics create`` needs a broker and nothing
else (no Redis URL, no signing key), ``snapshots list/pin/unpin`` (aliases of ``models
list/pin/unpin``) need Redis and nothing else (no bootstrap servers, no signing key),
``score-file`` Redis and the signing key (no bootstrap servers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from streamserve.cli import main
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.store import SnapshotStore
from streamserve.topics import REQUIRED_TOPICS

MODEL = "default"


def _bare_env(**extra: str) -> dict[str, str]:
    """This process's environment without any streamserve setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVE")}
    env.update(extra)
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamserve.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_topics_create_needs_only_a_broker(bootstrap: str, uid: str) -> None:
    prefix = f"t{uid}."
    done = _cli(
        ["topics", "create", "--bootstrap-servers", bootstrap, "--topic-prefix", prefix],
        _bare_env(),
    )
    assert done.returncode == 0, done.stderr
    for name in REQUIRED_TOPICS:
        assert f"created  {prefix}{name}" in done.stdout
    existing = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    assert {prefix + name for name in REQUIRED_TOPICS} <= set(existing)


def _publish(store: SnapshotStore, versions: int) -> None:
    codec = SnapshotCodec([b"a-key-the-command-never-sees-0123"])
    for v in range(1, versions + 1):
        meta = SnapshotMeta(
            model=MODEL,
            version=v,
            parent=v - 1 or None,
            created_at=time.time(),
            examples_seen=100 * v,
            offsets={0: 100 * v},
            metrics={"accuracy": 0.5},
            format="river-pickle/1",
            learner="logistic_regression",
        )
        store.publish(meta, codec.encode(meta, b"payload"))


def test_snapshots_list_pin_unpin_need_only_redis(
    redis_url: str,
    uid: str,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"t{uid}"
    _publish(SnapshotStore(redis_client, prefix=prefix, keep=10), 3)
    env = _bare_env(STREAMSERVE__REDIS__KEY_PREFIX=prefix)

    listed = _cli(["snapshots", "list", "--redis-url", redis_url], env)
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)["models"][0]  # JSON: stdout is not a terminal
    assert [v["version"] for v in report["versions"]] == [3, 2, 1]
    assert (report["serving"], report["pinned"]) == (3, False)

    # in-process, as the command line runs it: no broker and no key in these settings
    for key in [k for k in os.environ if k.startswith("STREAMSERVE")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STREAMSERVE__REDIS__KEY_PREFIX", prefix)
    assert main(["snapshots", "pin", "--version", "1", "--redis-url", redis_url]) == 0
    pinned = json.loads(capsys.readouterr().out)["models"][0]
    assert (pinned["serving"], pinned["pinned"]) == (1, True)
    assert main(["snapshots", "unpin", "--redis-url", redis_url]) == 0
    unpinned = json.loads(capsys.readouterr().out)["models"][0]
    assert (unpinned["serving"], unpinned["pinned"]) == (3, False)


def test_score_file_needs_redis_and_the_signing_key_only(
    redis_url: str, uid: str, tmp_path: Path
) -> None:
    """No bootstrap servers: a file is scored from Redis with the signing key; without the
    key the command stops at start naming it (exit 2)."""
    key = "score-file-only-key-0123456789abcd"
    learner = build_learner(ModelSpec(MODEL, Task.BINARY, "logistic_regression"))
    learner.learn_one({"x": 1.0}, True)
    meta = SnapshotMeta(
        model=MODEL,
        version=1,
        parent=None,
        created_at=time.time(),
        examples_seen=1,
        offsets={},
        metrics={},
        format=learner.format,
        learner="logistic_regression",
    )
    client = redis.Redis.from_url(redis_url)
    SnapshotStore(client, prefix=f"t{uid}").publish(
        meta, SnapshotCodec([key.encode()]).encode(meta, learner.dumps())
    )
    client.close()
    d = tmp_path
    (d / "in.jsonl").write_text('{"x": 0.5}\n')
    args = ["score-file", str(d / "in.jsonl"), str(d / "out.jsonl"), "--redis-url", redis_url]
    env = _bare_env(STREAMSERVE__REDIS__KEY_PREFIX=f"t{uid}")
    done = _cli(args, env)
    assert done.returncode == 2, done.stderr
    assert "snapshots.signing_key" in done.stderr
    done = _cli(args, {**env, "STREAMSERVE_SNAPSHOT_KEY": key})
    assert done.returncode == 0, done.stderr
    assert json.loads((d / "out.jsonl").read_text())["model_version"] == 1
