"""A PyTorch module learner against the same module in a plain PyTorch loop, in memory.

Both sides get the same records (the bench's events: 10 doubles, and a label), the same
module (a factory below, same seed), the same optimizer (Adam, fused) and the same
mini-batch size, in the same process with the same torch threads:

- **learning**: streamserve's ``TorchModuleLearner.prequential_many`` over chunks of 500
  examples (what the learner role hands it per Kafka batch: feature index, running
  standardization, each example scored before it is learned, mini-batch steps) against a
  loop that, per mini-batch, builds a tensor from the dicts, scores it (inference mode)
  and takes one optimizer step;
- **scoring**: ``predict_many`` on batches of 1000 records (the scorer's records path)
  and the matrix scorer on the same batches as columns (its column path) against a
  loop that builds a tensor from the dicts (or the matrix) and runs a forward pass.

Within a round the two sides alternate chunk by chunk (500 examples, or one scoring
batch), each keeping its own model, so both see the machine as it is at that moment;
rounds alternate which side goes first. The figures are medians of the rounds and the
ratios medians of the per-round ratios. Rates are per second of the bench thread's CPU
time (torch with one intra-op thread runs in it), which on a shared machine leaves out
the time spent waiting for a core. ``python -m bench --only torch`` runs it with
the rest of the report; ``python -m bench.torch_bench`` prints it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task
from streamserve.learners.torch_builtins import mlp
from streamserve.learners.torch_module import TorchModuleLearner
from streamserve.learners.torch_settings import torch_settings
from streamserve.records import FeatureFrame

sys.path.insert(0, str(Path(__file__).resolve().parent / "jobs"))
from _shared import FEATURES

from bench.learner_bench import examples

Data = list[tuple[dict[str, float], bool]]
CHUNK = 500  # examples per prequential_many call: the learner role's default batch
SCORE_BATCH = 1000  # events per scoring call: the scorer's default batch
SEED = 5
# CPU time of this thread: torch runs in it (one intra-op thread), and on a shared
# machine it leaves out the time the process waits for a core, which wall time does not.
CLOCK = time.thread_time


FACTORY = "streamserve.learners.torch_builtins:mlp"
MODULES: dict[str, dict[str, Any]] = {
    "one linear layer": {"hidden": []},
    "MLP 64-32": {"hidden": [64, 32]},
    "MLP 256-128": {"hidden": [256, 128]},
}


def training(batch_size: int) -> dict[str, Any]:
    """The model's ``torch:`` key: the 10 numbers named, nothing else in the index."""
    return {
        "optimizer": "adam",
        "lr": 0.01,
        "batch_size": batch_size,
        "seed": SEED,
        "features": {"numeric": list(FEATURES), "categorical": 0, "spare_slots": 0},
    }


def streamserve_learner(params: dict[str, Any], batch_size: int) -> TorchModuleLearner:
    spec = ModelSpec(
        "bench",
        Task.BINARY,
        FACTORY,
        params,
        torch=torch_settings(training(batch_size)),
    )
    learner = build_learner(spec)
    if not isinstance(learner, TorchModuleLearner):
        raise TypeError(f"expected a TorchModuleLearner, got {type(learner).__name__}")
    return learner


def _plain_module(params: dict[str, Any]) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(SEED)
    module = mlp(len(FEATURES), 1, **params)  # the factory the learner is configured with
    return module, torch.optim.Adam(module.parameters(), lr=0.01, fused=True)


def _matrix(rows: Sequence[dict[str, float]]) -> torch.Tensor:
    return torch.tensor([[x[k] for k in FEATURES] for x in rows], dtype=torch.float32)


class PlainLoop:
    """The same module trained by a plain loop: per mini-batch, tensors from the dicts,
    a prequential forward pass (inference mode), one optimizer step."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.module, self.optimizer = _plain_module(params)
        self.loss = nn.BCEWithLogitsLoss()

    def learn(self, batch: Data) -> None:
        x = _matrix([row for row, _ in batch])
        y = torch.tensor([[1.0 if t else 0.0] for _, t in batch])
        self.module.eval()
        with torch.inference_mode():
            torch.sigmoid(self.module(x)[:, 0]).tolist()
        self.module.train()
        loss = self.loss(self.module(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()


def learn_rates(
    params: dict[str, Any], data: Data, batch_size: int, first: int
) -> dict[str, float]:
    """Examples/s of ``prequential_many`` over chunks of 500 (as the learner role calls
    it) and of the plain loop over the same chunks' mini-batches, the two alternating
    chunk by chunk (``first`` says which starts), each keeping its own model."""
    learner = streamserve_learner(params, batch_size)
    plain = PlainLoop(params)

    def ours(chunk: Data) -> None:
        learner.prequential_many([x for x, _ in chunk], [y for _, y in chunk])

    def theirs(chunk: Data) -> None:
        for i in range(0, len(chunk), batch_size):
            plain.learn(chunk[i : i + batch_size])

    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    spent = _alternating(chunks, [ours, theirs] if first == 0 else [theirs, ours])
    if first:
        spent.reverse()
    return {"learn": len(data) / spent[0], "plain_learn": len(data) / spent[1]}


def _alternating(items: Sequence[Any], sides: Sequence[Callable[[Any], Any]]) -> list[float]:
    """CPU seconds each side spent, running them one after the other on every item."""
    spent = [0.0] * len(sides)
    for item in items:
        for k, side in enumerate(sides):
            start = CLOCK()
            side(item)
            spent[k] += CLOCK() - start
    return spent


def _trained(params: dict[str, Any], batch_size: int) -> tuple[TorchModuleLearner, nn.Module]:
    learner = streamserve_learner(params, batch_size)
    data = examples(5000, seed=1)
    learner.learn_many([x for x, _ in data], [y for _, y in data])
    module, _ = _plain_module(params)
    module.load_state_dict(learner.module.state_dict())
    return learner, module.eval()


def score_rates(learner: TorchModuleLearner, module: nn.Module, data: Data) -> dict[str, float]:
    """Events/s of each scoring path, ours and plain, alternating batch by batch."""
    rows = [x for x, _ in data]
    batches = [rows[i : i + SCORE_BATCH] for i in range(0, len(rows), SCORE_BATCH)]
    frames = [
        FeatureFrame(tuple(FEATURES), np.array([[x[k] for k in FEATURES] for x in b]))
        for b in batches
    ]
    scorer = learner.matrix_scorer()
    if scorer is None:
        raise TypeError("a binary torch learner has a matrix scorer")

    def plain_records(batch: list[dict[str, float]]) -> None:
        with torch.inference_mode():
            torch.sigmoid(module(_matrix(batch))[:, 0]).tolist()

    def plain_matrix(frame: FeatureFrame) -> None:
        with torch.inference_mode():
            x = torch.from_numpy(frame.values.astype(np.float32))
            torch.sigmoid(module(x)[:, 0]).double().numpy()

    n = len(rows)
    records = _alternating(batches, [learner.predict_many, plain_records])
    columns = _alternating(frames, [scorer.score_frame, plain_matrix])
    return {
        "records": n / records[0],
        "plain_records": n / records[1],
        "columns": n / columns[0],
        "plain_columns": n / columns[1],
    }


@dataclass
class ModuleResult:
    module: str
    params: dict[str, Any]
    batch_size: int
    rounds: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.rounds)

    def ratio(self, ours: str, plain: str) -> float:
        return statistics.median(r[ours] / r[plain] for r in self.rounds)


def run(
    examples_n: int = 20_000, rounds: int = 5, batch_size: int = 32, threads: int = 1
) -> dict[str, Any]:
    """Every module, ``rounds`` paired rounds each; JSON-able results for the report."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = examples(examples_n, seed=3)
        results = []
        for name, params in MODULES.items():
            result = ModuleResult(name, params, batch_size)
            learner, module = _trained(params, batch_size)
            for r in range(rounds):
                round_ = learn_rates(params, data, batch_size, first=r % 2)
                round_.update(score_rates(learner, module, data))
                result.rounds.append(round_)
            results.append(result)
    finally:
        torch.set_num_threads(previous)
    return {
        "examples": examples_n,
        "rounds": rounds,
        "threads": threads,
        "torch": torch.__version__,
        "modules": [asdict(r) for r in results],
    }


def roles(env: Any, n: int, params: dict[str, Any], batch_size: int) -> dict[str, float]:
    """``streamserve learn`` and ``streamserve score`` with the module, through Kafka
    (processes with one torch thread): examples learned/s and events scored/s."""
    import os

    from bench import learner_bench
    from bench.throughput import run_streamserve_scorer

    learner = FACTORY
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        learned = learner_bench.streamserve_learner_run(
            env, n, learner=learner, params=params, torch=training(batch_size)
        ).rate
        scored = run_streamserve_scorer(
            env,
            "streamserve scorer, torch module",
            learner=learner,
            params=params,
            settings={"torch": training(batch_size)},
        )
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    return {"learn": learned, "score": scored.rate}


def summary(results: dict[str, Any]) -> list[str]:
    """One line per module: medians and ratios."""
    lines = []
    for m in results["modules"]:
        r = ModuleResult(m["module"], m["params"], m["batch_size"], m["rounds"])
        lines.append(
            f"{r.module} (mini-batch {r.batch_size}): learn {r.median('learn'):,.0f}/s vs "
            f"plain {r.median('plain_learn'):,.0f}/s = {r.ratio('learn', 'plain_learn'):.2f} x; "
            f"score records {r.median('records'):,.0f}/s vs {r.median('plain_records'):,.0f}/s "
            f"= {r.ratio('records', 'plain_records'):.2f} x; columns "
            f"{r.median('columns'):,.0f}/s vs {r.median('plain_columns'):,.0f}/s = "
            f"{r.ratio('columns', 'plain_columns'):.2f} x"
        )
    return lines


GOAL = 0.8  # streamserve's rate at least this share of the plain loop's


def report(results: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, bool | None]]]:
    """The report's section (Markdown lines) and its target rows."""
    lines = [
        "",
        "## PyTorch module learner against a plain PyTorch loop",
        "",
        f"{results['examples']:,} examples (10 doubles, a label) per round, "
        f"{results['rounds']} paired rounds per module, torch {results['torch']} with "
        f"{results['threads']} intra-op thread;",
        "Adam (fused), BCE with logits, the same seed and mini-batch on both sides.",
        "streamserve: `TorchModuleLearner.prequential_many` on chunks of 500 (the learner",
        "role's call: feature index, statistics taken in at each step, each example scored",
        "before it is learned, `Scored` per example) and `predict_many` / the matrix scorer",
        "on batches of 1000. Plain loop: tensors from the same dicts (or the same matrix), a",
        "prequential forward pass and one optimizer step per mini-batch; a forward pass per",
        "scoring batch. The sides alternate chunk by chunk; rates are per second of the bench",
        "thread's CPU time (`bench/torch_bench.py`).",
        "",
        "| module | mini-batch | learn /s | plain /s | ratio | score records /s | plain /s "
        "| ratio | score columns /s | plain /s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    gaps = []
    for m in results["modules"]:
        r = ModuleResult(m["module"], m["params"], m["batch_size"], m["rounds"])
        gaps.append(1e6 / r.median("learn") - 1e6 / r.median("plain_learn"))
    gap_lines = [
        "",
        f"Learning costs streamserve {min(gaps):.1f}-{max(gaps):.1f} µs of CPU more per",
        "example than the plain loop, whatever the module: the feature index (running",
        "statistics taken in at each step and applied to every scored and learned row), a",
        "forward pass per pending window to score each example before it is learned, a",
        "`Scored` per example, and the training random state kept apart; so the ratio rises",
        "with the module's own cost.",
    ]
    targets: list[tuple[str, str, bool | None]] = []
    for m in results["modules"]:
        r = ModuleResult(m["module"], m["params"], m["batch_size"], m["rounds"])
        learn, records = r.ratio("learn", "plain_learn"), r.ratio("records", "plain_records")
        columns = r.ratio("columns", "plain_columns")
        lines.append(
            f"| {r.module} | {r.batch_size} | {r.median('learn'):,.0f} | "
            f"{r.median('plain_learn'):,.0f} | {learn:.2f} x | {r.median('records'):,.0f} | "
            f"{r.median('plain_records'):,.0f} | {records:.2f} x | {r.median('columns'):,.0f} | "
            f"{r.median('plain_columns'):,.0f} | {columns:.2f} x |"
        )
        per_round = ", ".join(f"{x['learn'] / x['plain_learn']:.2f}" for x in r.rounds)
        targets.append(
            (
                f"torch learning ≥ {GOAL} x plain loop ({r.module})",
                f"{learn:.2f} x (rounds: {per_round})",
                learn >= GOAL,
            )
        )
        targets.append(
            (
                f"torch scoring ≥ {GOAL} x plain loop ({r.module}, records)",
                f"{records:.2f} x",
                records >= GOAL,
            )
        )
    lines += gap_lines
    if "roles" in results:
        roles = results["roles"]
        lines += [
            "",
            "Through Kafka with the MLP 64-32 (one process each, `OMP_NUM_THREADS=1`, wall",
            f"time): `streamserve learn` {roles['learn']:,.0f} examples/s, `streamserve score`",
            f"{roles['score']:,.0f} events/s.",
        ]
    return lines, targets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.torch_bench", description=__doc__.split("\n")[0]
    )
    p.add_argument("--examples", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    a = p.parse_args(argv)
    results = run(a.examples, a.rounds, a.batch_size, a.threads)
    for line in summary(results):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
