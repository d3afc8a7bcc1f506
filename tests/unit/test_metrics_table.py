"""The README's metrics table lists every metric streamserve exports, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from streamserve.metrics import Metrics

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_metrics_table_is_true() -> None:
    exported: set[str] = set()
    for value in vars(Metrics(CollectorRegistry())).values():
        if isinstance(value, Counter):
            exported.add(f"{value._name}_total")
        elif hasattr(value, "_name"):
            exported.add(value._name)
    text = README.read_text(encoding="utf-8")
    table = text[text.index("### Metrics") :]
    listed = set(re.findall(r"^\| `(streamserve_[a-z_]+)` \|", table, flags=re.MULTILINE))
    assert listed == exported
