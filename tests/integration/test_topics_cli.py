from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streamserve.cli import main


def test_topics_create_is_idempotent_and_reports_mismatches(
    bootstrap: str, redis_url: str, uid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"t{uid}."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(f"{prefix}predictions", 2, 1)])[f"{prefix}predictions"].result(10)
    args = [
        "topics",
        "create",
        "--bootstrap-servers",
        bootstrap,
        "--redis-url",
        redis_url,
        "--topic-prefix",
        prefix,
    ]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"created  {prefix}events" in out
    assert f"MISMATCH {prefix}predictions: 2 partitions, topics.yaml says 4" in out
    assert main(args) == 1
    again = capsys.readouterr().out
    assert "created" not in again
    assert f"exists   {prefix}events" in again
