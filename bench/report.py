"""docs/BENCHMARKS.md and its plot, from the results of one run.

Each section of the report is written by a function of its own from the results; the
targets table is judged by another set, one per section that has targets."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bounds, workloads_report
from bench.results import (
    AVRO_GOALS,
    PIPE_GOAL,
    PIPE_LOOP,
    PIPE_TUNED,
    Medians,
    Results,
    added_latency,
    cores,
    latency_by_variant,
    learner_ratio,
    learner_rounds,
    medians,
    rss_growth,
    throughput_medians,
)
from bench.streamserve_setup import scorer_defaults
from bench.workloads_report import rate_table, ratio_targets

Target = tuple[str, str, bool | None]  # what, measured, met (None: cannot tell)


def machine() -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    versions = []
    for package in ("confluent-kafka", "river", "fastavro", "numpy", "prometheus-client"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{package} {importlib.metadata.version(package)}")
    try:
        import confluent_kafka

        versions.append(f"librdkafka {confluent_kafka.libversion()[0]}")
    except ImportError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {mem}",
        f"- {platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- {', '.join(versions)}",
        "- broker: the embedded tansu (memory only), one per run; Redis 127.0.0.1:6379 or embedded",
        f"- load average when the report was written: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}",
    ]


def write(results: Results, out: Path) -> None:
    lines = [line for section in SECTIONS for line in section(results)]
    plot = out.with_name("benchmarks.png")
    if _plot(results, throughput_medians(results), plot):
        lines += ["", f"![benchmarks]({plot.name})"]
    lines += _targets_table([target for judge in JUDGES for target in judge(results)])
    lines += [line for section in bounds.SECTIONS for line in section(results)]
    notes = Path(__file__).with_name("NOTES.md")
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    out.write_text("\n".join(lines) + "\n")


# -- helpers ----------------------------------------------------------------------------


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{r:,.0f}" for r in rates)


# -- sections ---------------------------------------------------------------------------


def _intro(results: Results) -> list[str]:
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench` (see `bench/`); do not edit by hand. Each throughput",
        "variant reads the same input (Avro events: an id and 10 doubles, 4 partitions) from",
        "fresh topics on one embedded broker, one after another in the same run. The input is",
        "produced before the variant starts and nothing reads its output while it runs; the",
        "output is read once afterwards, every input id checked, and the rate is input records",
        "from the first output record's CreateTime (set by the variant's producer) to the",
        "moment the last output batch was in the broker (watermarks polled every 20 ms),",
        'medians of the runs; "central 90 %" is by CreateTime over the 5th to 95th',
        "percentile record, which leaves out a stall at the very start or end (see",
        "bench/NOTES.md). Variants marked [concurrent observer] are timed the old way, by a",
        "consumer in the bench process reading the output while it is written.",
        "",
        f"Command: `{results['command'].strip()}` — {results.get('elapsed_s', 0):.0f} s"
        + (f", finished {results['date']}." if results.get("date") else "."),
        "",
        "## Machine",
        "",
        *(results.get("machine") or machine()),  # as when the run ended
    ]
    if "peer_versions" in results:
        v = results["peer_versions"]
        lines.append(
            f"- peers (own virtualenv): quixstreams {v['quixstreams']}, bytewax {v['bytewax']}"
        )
    return lines


def _throughput(results: Results) -> list[str]:
    if "throughput" not in results:
        return []
    lines = ["", "## Scoring throughput", "", *rate_table(results["throughput"])]
    return lines + _gap_to_pipe(throughput_medians(results))


def _gap_to_pipe(med: Medians) -> list[str]:
    """The scorer's time per record against the pipes', split into what the delivery
    guarantees cost (the pipe on the scorer's consumer loop) and what its own work costs."""
    rates = [med.get(n, (0.0, []))[0] for n in (PIPE_TUNED, PIPE_LOOP, "streamserve scorer")]
    if min(rates) <= 0:
        return []
    raw, loop, scorer = (1e6 / r for r in rates)
    goal = 1e6 / (PIPE_GOAL * rates[0])
    return [
        "",
        "Time per record, from the medians above (one process each, so this is the",
        "process's whole cost per record; librdkafka's threads run on the other core):",
        "",
        f"- {PIPE_TUNED}: {raw:.2f} µs",
        f"- {PIPE_LOOP} (the scorer's consume, produce, per-record delivery callbacks, "
        f"offsets stored after acknowledgement; idempotent producer, acks all): {loop:.2f} µs, "
        f"+{loop - raw:.2f} µs for the delivery guarantees",
        f"- streamserve scorer: {scorer:.2f} µs, +{scorer - loop:.2f} µs for decoding, "
        "scoring, encoding and the input drift monitor",
        f"- {PIPE_GOAL} x the raw pipe would need {goal:.2f} µs per record: "
        + (
            f"{loop / goal:.2f} x what the consumer loop alone takes before any work"
            if loop > goal
            else f"{goal - loop:.2f} µs left for the scorer's own work"
        ),
    ]


def _micro(results: Results) -> list[str]:
    if not results.get("micro"):
        return []
    lines = [
        "",
        "## Per-record CPU cost of the hot-path steps",
        "",
        "In process, no broker: best of 5 timings over 5,000 records (µs per record).",
        "",
        "| step | streamserve | plain way |",
        "|---|---:|---:|",
    ]
    for step, ours, plain in results["micro"]:
        lines.append(_row(step, f"{ours:.2f}", "" if plain is None else f"{plain:.2f}"))
    return lines


def _profile(results: Results) -> list[str]:
    return profile_section(results.get("profile"), "")


def _json_profile(results: Results) -> list[str]:
    return profile_section(results.get("json_profile"), ", JSON events with strings")


def profile_section(rows: list[list[Any]] | None, workload: str) -> list[str]:
    """py-spy's table of the scorer's functions for one workload."""
    if not rows:
        return []
    lines = [
        "",
        f"## Where the scorer's time goes{workload}",
        "",
        "py-spy samples of the scoring thread of `streamserve score` during one throughput",
        "run (percent of the thread's samples; the rest is librdkafka's `consume`/`poll`, C",
        "code under `ConsumerLoop.run`).",
        "",
        "| function | inclusive % | self % |",
        "|---|---:|---:|",
    ]
    return lines + [f"| `{name}` | {inclusive:.1f} | {own:.1f} |" for name, inclusive, own in rows]


def _settings(results: Results) -> list[str]:
    if "settings" not in results:
        return []
    lines = [
        "",
        "## Latency against throughput: scorer settings",
        "",
        "| settings | values | records/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|",
    ]
    varied = {k for r in results["settings"] for part in r["settings"].values() for k in part}
    defaults = ", ".join(
        f"{k} {v}"
        for part in (results.get("defaults") or scorer_defaults()).values()
        for k, v in part.items()
        if k in varied
    )
    for r in results["settings"]:
        values = (
            "; ".join(f"{k}: {v}" for part in r["settings"].values() for k, v in part.items())
            or defaults
        )
        lines.append(
            _row(r["name"], values, f"{r['rate']:,.0f}", f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}")
        )
    return lines


def _latency(results: Results) -> list[str]:
    if "latency" not in results:
        return []
    by_variant = latency_by_variant(results)
    rounds = max(len(rs) for rs in by_variant.values())
    lines = [
        "",
        f"## End-to-end latency at {results['args']['latency_rate']:,} events/s offered",
        "",
        "Event produced → output received: the observer's receive wall time minus the",
        "event's send time (its CreateTime, in µs in its key), same host clock. A paced",
        "producer (5 ms ticks, linger.ms 5) and the observer (fetch.wait.max.ms 5,",
        "fetch.min.bytes 1, stamping records as consume hands them over) run in processes",
        "of their own. CreateTime out - in is the output record's CreateTime minus the",
        "event's: the variant's consume, work and produce, without the output's broker hop",
        "or any observer. Rows marked [old harness] use the old observer (threads in the",
        "bench process, consume(5000, 0.2)) for comparison, with events built as cheaply",
        "as the new harness builds them (see bench/NOTES.md).",
        f"One hop, raw pipe and scorer run one after another, {rounds} rounds per rate;",
        "the table gives the medians over the rounds and each round's p99.",
        "",
        "| path | received/offered | p50 ms | p99 ms | p99 per round | "
        "CreateTime out - in p50 / p99 ms |",
        "|---|---:|---:|---:|---|---:|",
    ]
    return lines + [_latency_row(name, rs) for name, rs in by_variant.items()]


def _latency_row(name: str, rs: list[dict[str, Any]]) -> str:
    """One variant's row: medians over its rounds, and each round's p99."""
    created = (
        f"{statistics.median([r['created_p50_ms'] for r in rs]):.0f} / "
        f"{statistics.median([r['created_p99_ms'] for r in rs]):.0f}"
        if rs[0].get("created_p50_ms") is not None
        else "—"
    )
    return _row(
        name,
        f"{sum(r['received'] for r in rs):,}/{sum(r['offered'] for r in rs):,}",
        f"{statistics.median([r['p50_ms'] for r in rs]):.1f}",
        f"{statistics.median([r['p99_ms'] for r in rs]):.1f}",
        ", ".join(f"{r['p99_ms']:.0f}" for r in rs),
        created,
    )


def _learner(results: Results) -> list[str]:
    if "learner" not in results:
        return []
    ln = results["learner"]
    per_round = _learner_rounds(ln)
    return [
        "",
        f"## Learner ({ln['examples']:,} examples)",
        "",
        "Each round measures River in memory, then `streamserve learn` reading the",
        "examples from Kafka; medians of the rounds"
        + (f" (ratio per round: {per_round})." if per_round else "."),
        *_learner_method(ln),
        "",
        "| variant | examples/s |",
        "|---|---:|",
        _row(
            "`streamserve learn` (Kafka → predict, metrics, learn → snapshots)",
            f"{ln['streamserve']:,.0f}",
        ),
        *_river_rows(ln),
        _row(
            "River in memory, StandardScaler \\| LogisticRegression"
            + (": predict_proba_one + learn_one" if "river_ways" in ln else ""),
            f"{ln['river_scaled_lr']:,.0f}",
        ),
    ]


def _learner_method(ln: dict[str, Any]) -> list[str]:
    """The learner's settings and River's baseline, as the run recorded them."""
    if "river_ways" not in ln:
        return [
            "",
            "These results do not record the learner's settings or River's other ways of",
            "running the pipeline (a run from before the bench recorded them; rerun",
            "`python -m bench --only learner`).",
        ]
    settings, defaults = ln["settings"], ln["default_settings"]
    changed = [
        f"{k} {v} (default {defaults.get(k)})" for k, v in settings.items() if v != defaults.get(k)
    ]
    used = ", ".join(f"{k} {v}" for k, v in settings.items())
    lines = [
        "",
        (
            f"`streamserve learn` ran with the product's default settings ({used})"
            if not changed
            else "`streamserve learn` ran with settings that are not the product's defaults: "
            + "; ".join(changed)
            + f" (all it ran with: {used})"
        )
        + f" and wrote {ln['checkpoints']:.0f} snapshots per round (median) while it learned",
        "the examples. River's baseline is the same pipeline"
        f" ({ln['pipeline']}) in memory, run the way",
        f"that was fastest in this run (highest median) of those below: {ln['river_baseline']}.",
    ]
    if ln.get("no_mini_batches"):
        lines.append(
            "Mini-batches (`learn_many`) are not open to this pipeline: "
            + ", ".join(ln["no_mini_batches"])
            + " has no `learn_many`."
        )
    return lines


def _river_rows(ln: dict[str, Any]) -> list[str]:
    if "river_ways" not in ln:
        return [
            _row(
                "River in memory, same model (Preprocess \\| LogisticRegression): "
                "predict_proba_one + learn_one",
                f"{ln['river_same_model']:,.0f}",
            )
        ]
    pipeline = ln["pipeline"].replace("|", "\\|")
    return [
        _row(
            f"River in memory, same model ({pipeline}): {way}"
            + (" (baseline)" if way == ln["river_baseline"] else ""),
            f"{statistics.median(rates):,.0f}",
        )
        for way, rates in ln["river_ways"].items()
    ]


def _learner_rounds(ln: dict[str, Any]) -> str:
    return ", ".join(f"{ratio:.2f}" for ratio in learner_rounds(ln))


def _models(results: Results) -> list[str]:
    if "models" not in results:
        return []
    lines = [
        "",
        "## Model size cost",
        "",
        _row(
            "model",
            "scorer records/s",
            "batch predict µs/record",
            "predict+learn µs/record (River)",
            "snapshot KiB",
        ),
        "|---|---:|---:|---:|---:|",
    ]
    for r in results["models"]:
        lines.append(
            _row(
                r["model"],
                f"{r['scorer_rate']:,.0f}",
                f"{r['predict_us']:.1f}",
                f"{r['learn_us']:.1f}",
                f"{r['snapshot_kb']:.0f}",
            )
        )
    return lines


def _scaling(results: Results) -> list[str]:
    if "scaling" not in results:
        return []
    runs = results["scaling"]
    sc = medians(runs)
    n_cores = cores(results)
    with_cpu = "machine_busy_s" in runs[0]
    lines = [
        "",
        "## Scaling: scorer processes",
        "",
        "The same input (4 partitions) scored by one consumer group of `streamserve score`",
        "processes"
        + (
            ". CPU time is sampled from /proc every 50 ms and taken over the timed span"
            " (first output record to last): the scorer processes', the broker's, and the"
            " whole machine's (every process on it, the bench's own reading included)."
            if with_cpu
            else " (this run recorded no CPU time; rerun `python -m bench --only scaling`)."
        ),
        "",
    ]
    if with_cpu:
        lines += [
            "| processes | median records/s | runs | scorers (cores) | broker (cores) "
            "| machine busy (cores) |",
            "|---|---:|---|---:|---:|---:|",
        ]
    else:
        lines += ["| processes | median records/s | runs |", "|---|---:|---|"]
    machine: list[float] = []
    ours: list[float] = []
    for name, (m, rates) in sc.items():
        row = f"| {name} | {m:,.0f} | {_rates(rates)} |"
        mine = [r for r in runs if r["variant"] == name and r.get("wall_s")]
        if with_cpu and mine:
            scorers = statistics.median([r["scorer_cpu_s"] / r["wall_s"] for r in mine])
            broker = statistics.median([r["broker_cpu_s"] / r["wall_s"] for r in mine])
            busy = statistics.median([r["machine_busy_s"] / r["wall_s"] for r in mine])
            machine.append(busy)
            ours.append(scorers + broker)
            row += f" {scorers:.2f} | {broker:.2f} | {busy:.2f} |"
        lines.append(row)
    one = sc.get("1 scorer process(es)")
    ratios = [
        f"{n} processes {sc[f'{n} scorer process(es)'][0] / one[0]:.2f} x one"
        for n in (2, 3)
        if one and one[0] and f"{n} scorer process(es)" in sc
    ]
    if ratios:
        lines += ["", ", ".join(ratios) + f" ({n_cores or 'the'} cores shared with the broker)."]
    if machine and n_cores:
        low = min(machine)
        others = max(b - o for b, o in zip(machine, ours, strict=True))
        lines.append(
            f"The machine's {n_cores} cores were at least {low / n_cores:.0%} busy while the"
            " output was written"
            + (
                f" (other processes on the machine took up to {others:.2f} cores of it)"
                if others >= 0.1
                else ""
            )
            + ": "
            + (
                "the cores bound the rate. A scorer process is one Python process using up "
                "to a core, and the broker spends CPU on every record fetched and produced; "
                "on a machine this size a second or third process divides the same cores "
                "(adding its own fetching and batching) instead of adding one. Scorer "
                "processes add throughput where each gets a core of its own, up to the "
                "events topic's partition count."
                if low >= 0.85 * n_cores
                else "the cores were not saturated in every run; where they were not, the "
                "wait was elsewhere (fetch and produce round trips to the broker, or too "
                "few partitions per process)."
            )
        )
    return lines


def _memory(results: Results) -> list[str]:
    if "memory" not in results:
        return []
    m = results["memory"]
    early, end = rss_growth(m)
    return [
        "",
        f"## Scorer memory over {m['events']:,} events",
        "",
        f"RSS {early:.0f} MiB after 10 % of the events, "
        f"{end:.0f} MiB after {m['scored']:,} scored "
        f"({end - early:+.1f} MiB).",
    ]


def _torch(results: Results) -> list[str]:
    if "torch" not in results:
        return []
    from bench import torch_bench  # imports torch: only when the section ran

    return torch_bench.report(results["torch"])[0]


def _torch_targets(results: Results) -> list[Target]:
    if "torch" not in results:
        return []
    from bench import torch_bench

    return torch_bench.report(results["torch"])[1]


def _swap(results: Results) -> list[str]:
    if "swap" not in results:
        return []
    s = results["swap"]
    steady = s.get("steady_p99_ms")
    metric = s["metric_p99_le_s"]
    return [
        "",
        f"## Hot swap under load ({s['swaps']} swaps)",
        "",
        "Blocks of swaps (one every `--swap-every` s) alternate with blocks of the same",
        "length without swaps, under the same offered load, timed by the same reader (a",
        "thread of the bench decoding every prediction); events are assigned to a block by",
        "their send time.",
        "",
        f"- events offered {s['offered']:,}, predicted {s['predicted']:,}, "
        f"unscored predictions {s['unscored']}, dead letters {s['dead_letters']}",
        f"- latency of events sent during swaps: p50 {s['p50_ms']:.1f} ms, "
        f"p99 {s['p99_ms']:.1f} ms"
        + (
            f"; between swaps (steady state): p50 {s['steady_p50_ms']:.1f} ms, p99 {steady:.1f} ms"
            if steady
            else ""
        ),
        "- snapshot written → scorer serving it "
        f"(`streamserve_snapshot_swap_delay_seconds`): p99 ≤ {metric} s"
        if metric is not None
        else "- swap delay metric: no samples",
        "- snapshot written → first prediction carrying it received "
        "(includes the pipeline latency): "
        f"p50 {s['first_seen_p50_ms']:.0f} ms, p99 {s['first_seen_p99_ms']:.0f} ms",
    ]


def _files(results: Results) -> list[str]:
    if not results.get("files"):
        return []
    from bench.file_scoring import report_lines

    return report_lines(results["files"])


def _files_targets(results: Results) -> list[Target]:
    if not results.get("files"):
        return []
    from bench.file_scoring import targets

    return targets(results["files"])


def _http(results: Results) -> list[str]:
    if not results.get("http"):
        return []
    from bench.http_api import report_lines

    return report_lines(results["http"])


SECTIONS: tuple[Callable[[Results], list[str]], ...] = (
    _intro,
    _throughput,
    workloads_report.json_throughput,
    _micro,
    workloads_report.stages,
    _profile,
    _json_profile,
    workloads_report.producing,
    _settings,
    _latency,
    _learner,
    _models,
    workloads_report.model_baseline,
    _scaling,
    _memory,
    _swap,
    _torch,
    _http,
    _files,
)


# -- targets ----------------------------------------------------------------------------


def _throughput_targets(results: Results) -> list[Target]:
    goals = (
        ("raw pipe", PIPE_GOAL),
        (PIPE_TUNED, PIPE_GOAL),
        *AVRO_GOALS,
        ("Quix Streams", 4.0),
        ("Bytewax", 2.0),
    )
    return ratio_targets("", throughput_medians(results), goals)


def _latency_targets(results: Results) -> list[Target]:
    added = added_latency(results)
    if not added:
        return []
    m = statistics.median(added)
    return [
        (
            "scorer adds ≤ 10 ms to the pipe's p99",
            f"{m:+.1f} ms (median of rounds: " + ", ".join(f"{a:+.0f}" for a in added) + ")",
            m <= 10.0,
        )
    ]


def _learner_targets(results: Results) -> list[Target]:
    if "learner" not in results:
        return []
    ln = results["learner"]
    ratio = learner_ratio(ln)
    measured = f"{ratio:.2f} x (median of rounds)" if _learner_rounds(ln) else f"{ratio:.2f} x"
    if "river_baseline" in ln:
        measured += f"; River: {ln['river_baseline']}"
    return [("learner ≥ 0.6 x River in memory (same model)", measured, ratio >= 0.6)]


def _memory_targets(results: Results) -> list[Target]:
    if "memory" not in results:
        return []
    m = results["memory"]
    early, end = rss_growth(m)
    return [
        (
            "scorer RSS flat over the run",
            f"{end - early:+.1f} MiB from 10 % to the end",
            m["scored"] >= m["events"] and end - early < 20.0,
        )
    ]


def _swap_targets(results: Results) -> list[Target]:
    if "swap" not in results:
        return []
    s = results["swap"]
    steady = s.get("steady_p99_ms")
    metric = s["metric_p99_le_s"]
    targets: list[Target] = [
        (
            "swap delay p99 < 200 ms",
            f"p99 ≤ {metric} s (metric bucket)",
            None if metric is None else metric <= 0.2,
        ),
        (
            "0 failed or unscored events during swaps",
            f"{s['offered'] - s['predicted']} missing, {s['unscored']} unscored, "
            f"{s['dead_letters']} dead letters",
            s["predicted"] >= s["offered"] and s["unscored"] == 0 and s["dead_letters"] == 0,
        ),
    ]
    if steady:
        targets.append(
            (
                "p99 during swaps ≤ 2 x steady state",
                f"{s['p99_ms']:.0f} vs {steady:.0f} ms",
                s["p99_ms"] <= 2 * steady,
            )
        )
    return targets


JUDGES: tuple[Callable[[Results], list[Target]], ...] = (
    _throughput_targets,
    *workloads_report.JUDGES,
    _latency_targets,
    _learner_targets,
    _memory_targets,
    _swap_targets,
    _torch_targets,
    _files_targets,
)


def _targets_table(targets: list[Target]) -> list[str]:
    lines = ["", "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    return lines + [f"| {name} | {measured} | {_verdict(ok)} |" for name, measured, ok in targets]


# -- plot -------------------------------------------------------------------------------


def _plot(results: Results, med: Medians, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    if med:
        names = list(med)
        axes[0].barh(names, [med[n][0] / 1000.0 for n in names], color="tab:blue")
        axes[0].set_xlabel("thousand records/s (median)")
        axes[0].set_title("Scoring throughput")
    if "latency" in results:
        _plot_latency(axes[1], latency_by_variant(results))
    if "memory" in results:
        samples = results["memory"]["samples"]
        axes[2].plot([s[0] / 1e6 for s in samples], [s[1] for s in samples], marker=".")
        axes[2].set_xlabel("million events scored")
        axes[2].set_ylabel("scorer RSS (MiB)")
        axes[2].set_ylim(bottom=0)
        axes[2].set_title("Scorer memory")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _plot_latency(ax: Any, grouped: dict[str, list[dict[str, Any]]]) -> None:
    names = list(grouped)
    p50 = [statistics.median([r["p50_ms"] for r in grouped[n]]) for n in names]
    p99 = [statistics.median([r["p99_ms"] for r in grouped[n]]) for n in names]
    y = range(len(names))
    ax.barh([i + 0.2 for i in y], p50, height=0.4, label="p50 (median of rounds)")
    ax.barh([i - 0.2 for i in y], p99, height=0.4, label="p99 (median of rounds)")
    ax.set_yticks(list(y), names)
    ax.set_xlabel("ms")
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("End-to-end latency")
