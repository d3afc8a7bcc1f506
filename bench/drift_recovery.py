"""How many events each retraining policy needs to recover from a drift, on three streams.

River synthetic streams (``ConceptDriftStream`` over Agrawal generators): *abrupt*
(function 0, then function 4 from event ``--drift-at``, width 100), *gradual* (the same
concepts, the change spread over ``--gradual-width`` events centred on ``--drift-at``) and
*recurring* (the two concepts alternating every ``--period`` events from ``--drift-at``,
width 100). Each is learned prequentially, example by example, by the
learner's per-example path: predict, learn, feed the error monitor (``ErrorMonitor``, as
``LearnerRole`` does), and swap in the model a policy promotes. The replay policy reads
its window from the stream's history (an in-memory stand-in for the ``examples`` topic,
read by offsets like ``ExamplesReplayer``).

Recovery: the first event after the drift at which the rolling accuracy (last ``--window``
predictions) is back to 95 % of its value just before the drift. Also measures the cost of
the scorer's input monitors per batch. Prints a table and writes ``docs/DRIFT.md``.

    python -m bench.drift_recovery [--events 20000] [--drift-at 8000] [--streams abrupt ...]
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from river.datasets import synth

from streamserve.drift.error_monitor import ErrorMonitor
from streamserve.drift.input_monitor import InputConfig, InputMonitor
from streamserve.drift.replay import Labelled
from streamserve.drift.spec import DetectorSpec, ModelDrift, Policy, RetrainSpec
from streamserve.learners.base import Learner, Scored
from streamserve.learners.catalogue import build_learner
from streamserve.learners.spec import ModelSpec, Task


class HistoryReplayer:
    """The last ``count`` examples before an offset, from the stream seen so far."""

    def __init__(self, history: list[Labelled]) -> None:
        self.history = history

    def read(
        self, offsets: Mapping[int, int], count: int, since_ms: int | None = None
    ) -> list[Labelled]:
        end = offsets.get(0, 0)
        return self.history[max(0, end - count) : end]


@dataclass
class Run:
    name: str
    pre_drift: float
    recovered_after: int | None
    final: float
    overall: float
    promotions: int
    alerts: int
    seconds: float


def stream(
    n: int, drift_at: int, before: int, after: int, width: int = 100
) -> list[tuple[dict[str, Any], bool]]:
    s = synth.ConceptDriftStream(
        synth.Agrawal(classification_function=before, seed=1),
        synth.Agrawal(classification_function=after, seed=2),
        position=drift_at,
        width=width,
        seed=3,
    )
    return [(dict(x), bool(y)) for x, y in itertools.islice(s, n)]


def recurring(
    n: int, drift_at: int, before: int, after: int, period: int
) -> list[tuple[dict[str, Any], bool]]:
    """The two concepts alternating every ``period`` events from ``drift_at`` (nested
    ``ConceptDriftStream``s: River draws from every stream at each step, so each drift's
    position counts from the start)."""
    changes = list(range(drift_at, n, period))
    functions = [before if k % 2 else after for k in range(len(changes))]
    tail: Any = synth.Agrawal(classification_function=functions[-1], seed=10 + len(changes))
    for k in range(len(changes) - 1, 0, -1):
        tail = synth.ConceptDriftStream(
            synth.Agrawal(classification_function=functions[k - 1], seed=10 + k),
            tail,
            position=changes[k],
            width=100,
            seed=20 + k,
        )
    s = synth.ConceptDriftStream(
        synth.Agrawal(classification_function=before, seed=1),
        tail,
        position=changes[0],
        width=100,
        seed=3,
    )
    return [(dict(x), bool(y)) for x, y in itertools.islice(s, n)]


def run(
    name: str,
    model: str,
    data: list[tuple[dict[str, Any], bool]],
    drift: ModelDrift | None,
    args: Any,
    pre_at: int,
    start: int,
) -> Run:
    """One policy on one stream: the pre-drift accuracy is the rolling one just before
    event ``pre_at``, recovery counts from event ``start``."""
    history: list[Labelled] = []
    monitor = None
    if drift is not None:
        monitor = ErrorMonitor(Task.BINARY, drift, HistoryReplayer(history))
    learner: Learner = build_learner(ModelSpec(name="bench", task=Task.BINARY, learner=model))
    window: deque[int] = deque(maxlen=args.window)
    pre = 0.0
    hits = 0
    recovered: int | None = None
    promotions = alerts = 0
    started = time.perf_counter()
    for i, (x, y) in enumerate(data):
        scored: Scored = learner.predict_one(x)
        window.append(1 if scored.prediction == y else 0)
        hits += window[-1]
        learner.learn_one(x, y)
        history.append((x, y))
        if monitor is not None:
            out = monitor.observe(learner, x, y, scored, version=0, offset=i, offsets={0: i + 1})
            if out is not None:
                alerts += 1
                if out.promote is not None:
                    learner = out.promote
                    promotions += 1
        rolling = sum(window) / len(window)
        if i == pre_at - 1:
            pre = rolling
        elif (
            recovered is None
            and i - start >= args.window  # the window holds post-drift events only
            and rolling >= 0.95 * pre
        ):
            recovered = i - start
    return Run(
        name,
        pre,
        recovered,
        sum(window) / len(window),
        hits / len(data),
        promotions,
        alerts,
        time.perf_counter() - started,
    )


def input_monitor_cost(batches: int = 200, batch: int = 1000) -> dict[str, float]:
    """Microseconds per batch of ``batch`` events (10 numeric, 2 categorical features)."""
    rng = random.Random(0)
    xs = [
        {
            **{f"n{k}": rng.gauss(0, 1) for k in range(10)},
            "country": rng.choice(["FR", "DE", "US"]),
            "vip": rng.random() < 0.1,
        }
        for _ in range(batch)
    ]
    scores: dict[str, list[Scored | Exception]] = {
        "m": [Scored(True, {}, rng.random()) for _ in range(batch)]
    }
    out: dict[str, float] = {}
    model = build_learner(ModelSpec(name="m", task=Task.BINARY, learner="logistic_regression"))
    for x in xs[:200]:
        model.learn_one(x, x["n0"] > 0)
    started = time.perf_counter()
    for _ in range(20):
        model.predict_many(xs)
    out["for scale: scoring the batch (logistic_regression.predict_many)"] = (
        (time.perf_counter() - started) / 20 * 1e6
    )
    for sample in (50, 200):
        monitor = InputMonitor(InputConfig(DetectorSpec("adwin"), sample, 100, 500, 0.3, 50), ["m"])
        offsets: list[int | None] = list(range(batch))
        started = time.perf_counter()
        for _ in range(batches):
            # as the scorer does: the strided sample's rows, then the monitors
            rows = monitor.sample(batch)
            monitor.observe(
                [xs[i] for i in rows],
                [offsets[i] for i in rows],
                {m: [s[i] for i in rows] for m, s in scores.items()},
            )
        out[f"sample_per_batch={sample}"] = (time.perf_counter() - started) / batches * 1e6
    return out


STREAMS = ("abrupt", "gradual", "recurring")


def describe(name: str, args: Any) -> str:
    concepts = f"Agrawal classification function {args.before}, then function {args.after}"
    if name == "abrupt":
        return f"{concepts} from event {args.drift_at} (width 100)"
    if name == "gradual":
        return (
            f"{concepts}, the change spread over {args.gradual_width} events centred on "
            f"event {args.drift_at}; *pre-drift* is the accuracy where the change begins "
            f"(event {args.drift_at - args.gradual_width // 2}), *recovered after* counts "
            f"from its centre"
        )
    return (
        f"{concepts} from event {args.drift_at}, the two alternating every {args.period} "
        "events after that (width 100 each); *recovered after* counts from the first drift"
    )


def reading(tables: Mapping[str, Mapping[str, list[Run]]]) -> list[str]:
    """Sentences computed from this run's figures."""
    out = []
    for name, by_model in tables.items():
        for model, runs in by_model.items():
            base = runs[0]
            worst = min(runs[1:], key=lambda r: r.final)
            fastest = min(
                (r for r in runs[1:] if r.recovered_after is not None),
                key=lambda r: r.recovered_after or 0,
                default=None,
            )
            gap = (base.final - worst.final) * 100
            sentence = (
                f"- {name}, `{model}`: the lowest final accuracy of a policy is "
                f"{worst.final:.3f} ({worst.name}), "
                + (
                    f"{gap:.1f} points below no retraining ({base.final:.3f})"
                    if gap > 0
                    else f"not below no retraining ({base.final:.3f})"
                )
                + "; "
            )
            if fastest is None:
                sentence += "no policy gets back to 95 % of the pre-drift accuracy."
            else:
                sentence += (
                    f"the fastest back to 95 % is {fastest.name}, after "
                    f"{fastest.recovered_after} events"
                    + (
                        "."
                        if base.recovered_after is None
                        else f" (no retraining: {base.recovered_after})."
                    )
                )
            out.append(sentence)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--drift-at", type=int, default=8_000)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--learner", nargs="+", default=["naive_bayes", "hoeffding_tree"])
    parser.add_argument("--before", type=int, default=0, help="Agrawal function before")
    parser.add_argument("--after", type=int, default=4, help="Agrawal function after")
    parser.add_argument("--streams", nargs="+", choices=STREAMS, default=list(STREAMS))
    parser.add_argument("--gradual-width", type=int, default=4_000)
    parser.add_argument("--period", type=int, default=4_000, help="recurring: events per concept")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"))
    args = parser.parse_args()
    data = {
        "abrupt": lambda: stream(args.events, args.drift_at, args.before, args.after),
        "gradual": lambda: stream(
            args.events, args.drift_at, args.before, args.after, args.gradual_width
        ),
        "recurring": lambda: recurring(
            args.events, args.drift_at, args.before, args.after, args.period
        ),
    }

    def policy(p: Policy, detector: str = "adwin", **kw: int) -> ModelDrift:
        return ModelDrift(
            model="bench", detector=DetectorSpec(detector), retrain=RetrainSpec(policy=p, **kw)
        )

    configs: list[tuple[str, ModelDrift | None]] = [
        ("no retraining", None),
        ("alert only (ADWIN)", policy(Policy.ALERT)),
        ("challenger (ADWIN, trial 500)", policy(Policy.CHALLENGER)),
        ("challenger (HDDM_W, warning zone)", policy(Policy.CHALLENGER, "hddm_w")),
        ("replay (ADWIN, window 2000)", policy(Policy.REPLAY)),
        ("replay (ADWIN, window 500)", policy(Policy.REPLAY, replay_window=500)),
    ]
    pre_at = {"gradual": args.drift_at - args.gradual_width // 2}
    tables = {
        name: {
            m: [
                run(label, m, rows, d, args, pre_at.get(name, args.drift_at), args.drift_at)
                for label, d in configs
            ]
            for m in args.learner
        }
        for name in args.streams
        for rows in [data[name]()]
    }
    cost = input_monitor_cost()
    lines = [
        "# Drift recovery",
        "",
        f"Generated on {time.strftime('%Y-%m-%d', time.gmtime())} by "
        "`python -m bench.drift_recovery "
        f"--events {args.events} --drift-at {args.drift_at} --window {args.window} "
        f"--learner {' '.join(args.learner)} --before {args.before} --after {args.after} "
        f"--streams {' '.join(args.streams)} --gradual-width {args.gradual_width} "
        f"--period {args.period}`.",
        "",
        f"Streams of {args.events} events from River's `ConceptDriftStream`. Every example "
        "is predicted, then learned (prequential), through the learner's per-example path "
        "with the error monitor (default settings unless named: ADWIN, cooldown 1000 "
        "examples, trial 500 examples, a challenger promoted only when McNemar's test on the "
        "paired errors says it is better at level 0.05, the replaced champion kept as a "
        "former challenger). "
        f"Rolling accuracy over the last {args.window} predictions. *Recovered after* is "
        "the number of events after the drift until the rolling accuracy, over post-drift "
        "predictions only, is back to 95 % of its value just before the drift (at least "
        f"{args.window} by construction); '-' means never within the stream. *Final* is the "
        "rolling accuracy at the end, *overall* the prequential accuracy over the whole "
        "stream.",
    ]
    for name, by_model in tables.items():
        lines += ["", f"## {name.capitalize()} drift", "", describe(name, args) + "."]
        for model, runs in by_model.items():
            lines += [
                "",
                f"### `{model}` (with the default preprocessing)",
                "",
                "| policy | pre-drift accuracy | recovered after (events) | final accuracy | "
                "overall accuracy | promotions | alerts | seconds |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in runs:
                lines.append(
                    f"| {r.name} | {r.pre_drift:.3f} | "
                    f"{'-' if r.recovered_after is None else r.recovered_after} | "
                    f"{r.final:.3f} | {r.overall:.3f} | {r.promotions} | {r.alerts} | "
                    f"{r.seconds:.1f} |"
                )
    lines += ["", "## Reading", "", *reading(tables)]
    lines += [
        "",
        "## Input monitor cost in the scorer",
        "",
        "Per batch of 1000 events with 10 numeric and 2 categorical features and one model's "
        "score (ADWIN per numeric stream, frequency distance per categorical feature):",
        "",
        "| setting | microseconds per batch |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in cost.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "DRIFT.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
