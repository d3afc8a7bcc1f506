"""What compiling trees to arrays saves, in process (no broker).

The Hoeffding tree and the adaptive random forest (10 trees) of the "model size cost"
table (binary task, the bench's ten Gaussian features, trained prequentially on
``--examples`` records as ``learner_bench.model_cost`` trains them), scored three ways
in each round, one after the other:

- River record by record (``predict_one``: what the scorer did for trees before);
- the learner's ``predict_many`` on batches of 1,000 (the frame built from the dicts, the
  compiled arrays, a ``Scored`` per record);
- the compiled ``score_frame`` on frames of 1,000 (what the scorer calls on a decoded
  batch; decoding and encoding are not counted).

Rounds alternate the ways, so every figure has its peer from the same moment; the
report is the median per way and the median of the per-round ratios.

    python -m bench.tree_cost [--examples 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.learner_bench import MODELS, examples, river_rate
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.records import FeatureFrame

TREES = ("Hoeffding tree", "adaptive random forest (10 trees)")
BATCH = 1000
SCORED = 20_000  # records scored per round by the compiled ways
RIVER_SCORED = {TREES[0]: 5_000, TREES[1]: 1_000}  # per record: fewer, it is slow


@dataclass
class TreeCost:
    model: str
    river_us: float  # median µs per record, River predict_one
    predict_many_us: float  # median µs per record, compiled predict_many
    score_frame_us: float  # median µs per record, compiled score_frame
    predict_many_ratio: float  # median per-round River / predict_many
    score_frame_ratio: float  # median per-round River / score_frame
    compile_ms: float  # median time to compile the trained model


def _each(fn: Callable[[Any], Any], items: Sequence[Any]) -> Callable[[], list[Any]]:
    return lambda: [fn(item) for item in items]


def _us(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * 1e6


def tree_cost(name: str, n_examples: int, rounds: int) -> TreeCost:
    learner_name, params = MODELS[name]
    learner = build_learner(ModelSpec("bench", Task.BINARY, learner_name, params))
    river_rate(learner.estimator, examples(n_examples))  # type: ignore[attr-defined]
    xs = [x for x, _ in examples(SCORED, seed=9)]
    batches = [xs[i : i + BATCH] for i in range(0, len(xs), BATCH)]
    frames = [f for f in (FeatureFrame.of_rows(b)[0] for b in batches) if f is not None]
    few = xs[: RIVER_SCORED[name]]
    compile_ms: list[float] = []
    river: list[float] = []
    many: list[float] = []
    frame: list[float] = []
    for _ in range(rounds):
        learner.learn_one(*examples(1, seed=11)[0])  # drops the compiled copy
        compile_ms.append(_us(learner.matrix_scorer, 1) / 1e3)
        scorer = learner.matrix_scorer()
        if scorer is None:
            raise RuntimeError(f"{name} did not compile")
        river.append(_us(_each(learner.predict_one, few), len(few)))
        many.append(_us(_each(learner.predict_many, batches), len(xs)))
        frame.append(_us(_each(scorer.score_frame, frames), len(xs)))
    return TreeCost(
        model=name,
        river_us=statistics.median(river),
        predict_many_us=statistics.median(many),
        score_frame_us=statistics.median(frame),
        predict_many_ratio=statistics.median(r / m for r, m in zip(river, many, strict=True)),
        score_frame_ratio=statistics.median(r / f for r, f in zip(river, frame, strict=True)),
        compile_ms=statistics.median(compile_ms),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=20_000, help="training records")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)
    print(f"trained on {a.examples} records; medians of {a.rounds} paired rounds")
    print("| model | River µs/record | predict_many µs (x) | score_frame µs (x) | compile ms |")
    print("|---|---:|---:|---:|---:|")
    for name in TREES:
        c = tree_cost(name, a.examples, a.rounds)
        print(
            f"| {c.model} | {c.river_us:.1f} | {c.predict_many_us:.2f} "
            f"({c.predict_many_ratio:.0f}x) | {c.score_frame_us:.2f} "
            f"({c.score_frame_ratio:.0f}x) | {c.compile_ms:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
