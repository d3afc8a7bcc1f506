"""The demo's two in-process baselines, scored prequentially on the published stream.

- ``frozen``: the model as built, never learning (what a scorer serves as version 0);
- ``no_retrain``: the same model learning every label in the order it was published,
  with the same delay, and never retrained or replaced.

Each event is predicted before any label published after it is learned, exactly as the
publisher interleaved them, so the delay the service sees is the delay they see.
"""

from __future__ import annotations

from streamserve.demo.publisher import PublishLog
from streamserve.demo.stream import Sample
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec


def baseline_hits(
    spec: ModelSpec, samples: list[Sample], log: PublishLog
) -> dict[str, list[bool | None]]:
    """Per published event, whether each baseline predicted its label."""
    frozen = build_learner(spec)
    learning = build_learner(spec)
    hits: dict[str, list[bool | None]] = {"frozen": [], "no_retrain": []}
    learned = 0
    for index, before in enumerate(log.labels_before):
        while learned < before:
            j = log.label_order[learned]
            learning.learn_one(samples[j].features, samples[j].label)
            learned += 1
        x, y = samples[index].features, samples[index].label
        hits["frozen"].append(frozen.predict_one(x).prediction == y)
        hits["no_retrain"].append(learning.predict_one(x).prediction == y)
    return hits
