"""The README's PyTorch example is true to the code: its module file and its config, as
printed, build learners that learn, snapshot and restore."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("torch")

from streamserve.learners.catalogue import build_learner, load_learner
from streamserve.learners.torch_module import TorchModuleLearner
from streamserve.settings import settings_from_dict

ROOT = Path(__file__).resolve().parents[2]


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## PyTorch modules")
    return text[start : text.index("\n## ", start + 1)]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.S)


@pytest.fixture
def mypkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (module,) = _blocks("python")
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("mypkg", "mypkg.models"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_the_readme_example_learns_snapshots_and_restores(mypkg: None) -> None:
    (config,) = _blocks("yaml")
    settings = settings_from_dict(yaml.safe_load(config))  # validated: every model built
    examples: dict[str, list[tuple[dict[str, Any], Any]]] = {
        "churn": [
            ({"amount": float(i), "age": 30 + i % 7, "country": "FR", "device": "ios"}, i % 2)
            for i in range(70)
        ],
        "ctr": [
            (
                {"price": float(i), "site": f"s{i % 5}", "user": f"u{i % 11}"},
                ["buy", "click"][i % 2],
            )
            for i in range(70)
        ],
    }
    for spec in settings.models:
        learner = build_learner(spec)
        assert isinstance(learner, TorchModuleLearner)
        rows = examples[spec.name]
        scored = learner.prequential_many([x for x, _ in rows], [y for _, y in rows])
        assert len(scored) == len(rows)
        restored = load_learner(spec, learner.format, learner.dumps())
        probes = [x for x, _ in rows[:5]]
        assert restored.predict_many(probes) == learner.predict_many(probes)
