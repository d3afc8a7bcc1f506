"""The alert rules and the Grafana dashboard use only metrics streamserve exports, parse as
PromQL, and every rule is tested with promtool; the Kubernetes PrometheusRule holds the
same rules; compose's Prometheus and Grafana find the files where they are mounted."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from streamserve.metrics import Metrics
from tests.tools import tool

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "streamserve.rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamserve.json"
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "base" / "prometheusrule.yaml"

# Metrics a rule or panel uses that another part of the project exports once it lands.
PENDING = {
    "streamserve_api_requests_total": "the HTTP API role (streamserve/api/) exports it",
}

_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''  # strings
    r"|\{[^}]*\}|\[[^\]]*\]"  # label matchers, ranges
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"  # label lists
    r"|(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-z]*)"  # numbers and durations
    # a name, and whether it is called: sum by (x) (...) is an aggregation, not a metric
    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*(?:(?:by|without)\s*\([^)]*\)\s*)?\()?"
)
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords or labels)."""
    names = set()
    for m in _TOKEN.finditer(expr.replace("$__rate_interval", "1m")):
        name = m.group("name")
        if name and not m.group("call") and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def exported_names() -> set[str]:
    """Every sample name streamserve/metrics.py exports, with the type's suffixes."""
    names: set[str] = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every panel target and annotation query."""
    dash = _dashboard()
    exprs = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"])
        for p in dash["panels"]
        for t in p.get("targets", [])
    ]
    exprs += [
        (f"annotation {a['name']!r}", a["expr"])
        for a in dash["annotations"]["list"]
        if "expr" in a
    ]
    return exprs


def test_metric_names_are_found_in_expressions() -> None:
    expr = (
        'sum by (le, role) (rate(a_bucket{x="y(z)"}[5m] offset 1h)) / on (m) group_left ()'
        " clamp_min(b_total, 1e3) > bool 0.5 unless c or vector(1)"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_every_metric_used_by_a_rule_or_panel_is_exported() -> None:
    exported = exported_names()
    assert "streamserve_consumer_lag" in exported
    assert "streamserve_batch_seconds_bucket" in exported
    used: dict[str, str] = {}
    for rule in _rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, f"rule {rule['alert']}")
    for where, expr in _dashboard_exprs():
        for name in metric_names(expr):
            used.setdefault(name, where)
    missing = {n: w for n, w in used.items() if n not in exported and n not in PENDING}
    assert not missing, f"not exported by streamserve/metrics.py: {missing}"
    assert len(used) >= 20


def test_the_dashboard_shows_what_operators_look_at() -> None:
    dash = _dashboard()
    titles = {p["title"] for p in dash["panels"]}
    for title in ("Events scored / s", "End-to-end latency (event time to prediction)",
                  "Consumer lag", "Serving version", "Prequential metrics",
                  "Dead letters / s"):
        assert title in titles
    exprs = " ".join(e for _, e in _dashboard_exprs())
    assert "histogram_quantile(0.99" in exprs
    drift = [a for a in dash["annotations"]["list"] if a["name"] == "Drift detections"]
    assert drift and drift[0]["enable"] and "streamserve_drift_alerts_total" in drift[0]["expr"]
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_the_kubernetes_prometheusrule_holds_the_same_rules() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"], (
        "copy the groups of deploy/prometheus/rules/streamserve.rules.yml into "
        "deploy/k8s/base/prometheusrule.yaml (under spec:)"
    )


def _promtool_tests() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(PROMETHEUS.glob("tests/*.test.yml"))]


def test_every_rule_has_promtool_tests_that_fire_it_and_keep_it_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for doc in _promtool_tests():
        assert doc["rule_files"] == ["../rules/streamserve.rules.yml"]
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules()}
    assert len(alerts) == 8
    assert alerts <= fired, alerts - fired
    assert alerts <= quiet, alerts - quiet


def _promtool() -> str:
    return tool("promtool", "promtool (Debian package prometheus)")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, cwd=PROMETHEUS
    )


def test_promtool_checks_and_tests_the_rules() -> None:
    promtool = _promtool()
    checked = _run([promtool, "check", "rules", str(RULES)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = sorted(str(p.relative_to(PROMETHEUS)) for p in PROMETHEUS.glob("tests/*.test.yml"))
    tested = _run([promtool, "test", "rules", *tests])
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(tests)


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """promtool parses each panel's and annotation's query (as a recording rule)."""
    promtool = _promtool()
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, (_, expr) in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = _run([promtool, "check", "rules", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_prometheus_and_grafana_find_their_files() -> None:
    promtool = _promtool()
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]  # rules/ is mounted there
    checked = _run([promtool, "check", "config", "prometheus.yml"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    grafana = ROOT / "deploy" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((grafana / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((grafana / "dashboards" / "streamserve.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    variable = _dashboard()["templating"]["list"][0]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
