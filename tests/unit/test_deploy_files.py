"""docker-compose.yml and deploy/ are validated statically (no Docker engine here)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
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


def test_dockerfile_has_a_torch_cpu_target_and_the_plain_image_last() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = [line.split()[-1] for line in text.splitlines() if line.startswith("FROM ")]
    assert stages == ["base", "torch", "default"]  # a plain `docker build` is River only
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    pinned = next(
        d
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]["dev"]
        if d.startswith("torch==")
    )
    assert f"ARG TORCH_VERSION={pinned.removeprefix('torch==')}" in text
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in text
    assert 'pip install --no-cache-dir ".[torch]"' in text


def test_compose_torch_profile_serves_and_trains_its_config(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    services = _compose()["services"]
    parser = build_parser()
    for name, command in (("scorer-torch", "score"), ("learner-torch", "learn")):
        svc = services[name]
        assert svc["profiles"] == ["torch"]
        assert svc["build"] == {"context": ".", "target": "torch"}
        assert svc["command"] == [command]
        parser.parse_args(svc["command"])
        source, target, _ = svc["volumes"][0].split(":")
        env = {k: str(v) for k, v in svc["environment"].items()}
        assert env["STREAMSERVE_CONFIG"] == target
        key = tmp_path / "key"
        key.write_text("a-long-enough-signing-key-for-tests\n")
        env["STREAMSERVE_SNAPSHOT_KEY_FILE"] = str(key)
        env["STREAMSERVE_CONFIG"] = str(ROOT / source)
        s = load_settings(None, env=env)  # builds the model: a torch config error fails here
        assert [m.learner for m in s.models] == ["wide_deep"]
        assert s.kafka.group_prefix == "streamserve-torch"  # not the River scorers' group
