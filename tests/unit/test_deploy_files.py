"""docker-compose.yml and deploy/ are validated statically (no Docker engine here)."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamserve.cli import build_parser
from streamserve.settings import load_settings, settings_from_dict

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _commands() -> set[str]:
    """The subcommands this build of the CLI knows."""
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_compose_runs_every_service_an_operator_needs() -> None:
    services = _compose()["services"]
    assert {
        "kafka",
        "schema-registry",
        "redis",
        "topics",
        "scorer",
        "joiner",
        "learner",
        "api",
        "prometheus",
        "grafana",
    } <= set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["redis"]["image"].startswith("redis:")
    assert "--appendonly" in services["redis"]["command"]
    assert services["scorer"]["deploy"]["replicas"] == 2
    prometheus = services["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in prometheus
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana


def test_compose_commands_and_environment_are_ones_streamserve_accepts(tmp_path: Path) -> None:
    services = _compose()["services"]
    parser = build_parser()
    key = tmp_path / "key"
    key.write_text("a-long-enough-signing-key-for-tests\n")
    # The API's service runs once the CLI has the api command (and its settings).
    roles = ["topics", "scorer", "joiner", "learner"] + (["api"] if "api" in _commands() else [])
    for name in roles:
        svc = services[name]
        parser.parse_args(svc["command"])
        env = {k: str(v) for k, v in svc["environment"].items()}
        env["STREAMSERVE_SNAPSHOT_KEY_FILE"] = str(key)
        s = load_settings(None, env=env)
        assert s.kafka.bootstrap_servers == "kafka:9092"
        assert s.redis.url == "redis://redis:6379/0"
        assert s.serde.schema_registry_url == "http://schema-registry:8081"
        assert s.http.host == "0.0.0.0"
    secret = _compose()["secrets"]["snapshot_key"]["file"]
    assert (ROOT / secret).is_file()


def _k8s_docs(*parts: str) -> list[dict[str, Any]]:
    path = K8S.joinpath(*parts)
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_kubernetes_configs_validate_in_base_and_overlays() -> None:
    for where in ("base", "overlays/dev", "overlays/prod"):
        data = yaml.safe_load((K8S / where / "config.yaml").read_text())
        assert data["snapshots"].pop("signing_key_file") == "/run/secrets/streamserve/snapshot_key"
        data["snapshots"]["signing_key"] = "k" * 32
        settings_from_dict(data)


def test_kubernetes_deployments_run_commands_streamserve_accepts() -> None:
    parser = build_parser()
    commands = _commands()
    deployments = [
        d
        for name in ("scorer", "joiner", "learner", "api", "topics-job")
        for d in _k8s_docs("base", f"{name}.yaml")
        if d["kind"] in ("Deployment", "Job")
    ]
    assert len(deployments) == 5
    for d in deployments:
        (container,) = d["spec"]["template"]["spec"]["containers"]
        assert container["name"] == "streamserve"  # what base/pod-common.yaml patches
        if container["args"][0] in commands:
            parser.parse_args(container["args"])
        if d["kind"] == "Deployment":
            template = d["spec"]["template"]
            assert d["spec"]["selector"]["matchLabels"] == template["metadata"]["labels"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
            probes = {"readinessProbe", "livenessProbe"}
            assert probes <= set(container), d["metadata"]["name"]
    learner = next(d for d in deployments if d["metadata"]["name"] == "streamserve-learner")
    assert learner["spec"]["replicas"] == 2  # a leader and a standby


def test_kubernetes_secret_is_referenced_and_only_an_example_is_in_the_repository() -> None:
    (secret,) = _k8s_docs("secret.example.yaml")
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "streamserve-secrets"
    assert all(v.startswith("REPLACE") for v in secret["stringData"].values())
    common = (K8S / "base" / "pod-common.yaml").read_text()
    assert "secretName: streamserve-secrets" in common
    for path in K8S.rglob("*.yaml"):
        if path.name != "secret.example.yaml":
            assert "kind: Secret\n" not in path.read_text(), path


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
    assert 'pip install --no-cache-dir ".[torch,files]"' in text
    assert 'pip install --no-cache-dir ".[files]"' in text  # Parquet in both images


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
