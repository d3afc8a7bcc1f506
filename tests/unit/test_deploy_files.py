"""docker-compose.yml and deploy/ are validated statically (no Docker engine here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streamserve.cli import build_parser
from streamserve.settings import load_settings, settings_from_dict

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_runs_kafka_in_kraft_mode_redis_and_every_role() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "topics", "scorer", "joiner", "learner"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["redis"]["image"].startswith("redis:")


def test_compose_commands_and_environment_are_ones_streamserve_accepts(tmp_path: Path) -> None:
    services = _compose()["services"]
    parser = build_parser()
    for name in ("topics", "scorer", "joiner", "learner"):
        svc = services[name]
        parser.parse_args(svc["command"])
        env = {k: str(v) for k, v in svc["environment"].items()}
        key = tmp_path / "key"
        key.write_text("a-long-enough-signing-key-for-tests\n")
        env["STREAMSERVE_SNAPSHOT_KEY_FILE"] = str(key)
        s = load_settings(None, env=env)
        assert s.kafka.bootstrap_servers == "kafka:9092"
        assert s.redis.url == "redis://redis:6379/0"
        assert s.http.host == "0.0.0.0"
    secret = _compose()["secrets"]["snapshot_key"]["file"]
    assert (ROOT / secret).is_file()


def test_kubernetes_manifests_parse_and_their_config_validates() -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/streamserve.yaml").read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Deployment") == 3 and "ConfigMap" in kinds
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"]
    data = yaml.safe_load(config)
    data["snapshots"] = {"signing_key": "k" * 32}
    settings_from_dict(data)
    parser = build_parser()
    for d in docs:
        if d["kind"] == "Deployment":
            (container,) = d["spec"]["template"]["spec"]["containers"]
            parser.parse_args(container["args"])
            assert (
                d["spec"]["selector"]["matchLabels"] == d["spec"]["template"]["metadata"]["labels"]
            )


def test_example_config_validates() -> None:
    data = yaml.safe_load((ROOT / "deploy/config.example.yaml").read_text())
    data["snapshots"].pop("signing_key_file")
    settings_from_dict(data)
