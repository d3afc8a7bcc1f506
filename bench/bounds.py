"""The report's notes on what bounds each target and how the scorer's defaults trade,
written from one run's results (bench/NOTES.md holds the method and the explanations,
with dated figures from scratch runs only)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any

from bench import workloads_report
from bench.results import (
    PIPE_GOAL,
    PIPE_LOOP,
    PIPE_TUNED,
    SCORER,
    Medians,
    Results,
    added_latency,
    latency_by_variant,
    learner_ratio,
    learner_rounds,
    medians,
    micro_row,
    throughput_medians,
)
from bench.streamserve_setup import scorer_defaults

ONE_HOP = "broker, one hop"
OTHER_RATE = " at 1,000/s"  # the suffix of the latency rows at the second offered rate


# How the notes name the variants they compare.
NAMES = {
    "raw pipe": "the raw pipe with librdkafka's defaults",
    PIPE_TUNED: "the raw pipe with the scorer's fetch setting",
    "hand-written loop": "the hand-written loop",
}


def run_date(results: Results) -> str:
    """When the run finished, as its results say."""
    return f"finished {results['date']}" if results.get("date") else "its date was not recorded"


def what_bounds(results: Results) -> list[str]:
    """The section "What bounds the targets": one paragraph per target with its figures."""
    paragraphs = [
        part(results)
        for part in (
            _scorer_bound,
            *workloads_report.BOUNDS,
            _learner_bound,
            _latency_bound,
            _gc_bound,
            _swap_bound,
        )
    ]
    lines = [
        "",
        "## What bounds the targets",
        "",
        f"Computed from the results of this run ({run_date(results)}); why the figures fall",
        "where they do, with dated figures from scratch runs, is in the notes below.",
        *_load(results),
    ]
    for paragraph in paragraphs:
        lines += paragraph
    return lines


def defaults(results: Results) -> list[str]:
    """The section "Defaults": the scorer's default settings and the trade the settings
    table measured in this run."""
    recorded = results.get("defaults")
    values = recorded or scorer_defaults()
    flat = {
        (f"scorer.{k}" if part == "scorer" else k): v
        for part, settings in values.items()
        for k, v in settings.items()
    }
    lines = [
        "",
        "## Defaults",
        "",
        "The scorer's defaults in this run"
        + ("" if recorded else " (not recorded in its results: the code's defaults now)")
        + ": "
        + ", ".join(f"`{k}` {v}" for k, v in flat.items())
        + ".",
    ]
    rows = {r["name"]: r for r in results.get("settings", [])}
    if "defaults" not in rows:
        return lines
    lines += [
        "In the settings table above (one scorer run and a shorter latency run per row):",
        "",
        *(f"- {_settings_row(r)}" for r in rows.values()),
        "",
        _verdict_on_defaults(rows),
    ]
    return lines


# -- the paragraphs ---------------------------------------------------------------------


def _load(results: Results) -> list[str]:
    """How busy the machine was: the broker's one-hop p99 and the reference loops' rates."""
    hop = [r["p99_ms"] for r in latency_by_variant(results).get(ONE_HOP, [])]
    runs = {name: rates for name, (_, rates) in throughput_medians(results).items()}
    gauges = (
        [f"the broker's one-hop p99 was {_span(hop, '{:.0f}')} ms over the rounds"] if hop else []
    )
    gauges += [
        f"{NAMES.get(name, name)} ran at {_span(runs[name], '{:,.0f}')}/s"
        for name in ("hand-written loop", "Quix Streams", "Bytewax")
        if name in runs
    ]
    if not gauges:
        return []
    return ["", "How busy the machine was: " + "; ".join(gauges) + "."]


def _scorer_bound(results: Results) -> list[str]:
    med = throughput_medians(results)
    ss = med.get(SCORER, (0.0, []))[0]
    pipes = [(n, med[n][0]) for n in ("raw pipe", PIPE_TUNED) if med.get(n, (0.0, []))[0] > 0]
    if not ss or not pipes:
        return []
    ratios = [(name, ss / rate) for name, rate in pipes]
    verdicts = {_met(ratio >= PIPE_GOAL) for _, ratio in ratios}
    one_verdict = len(verdicts) == 1
    head = (
        f"- **Scorer against the raw pipe (≥ {PIPE_GOAL} x): "
        + (f"{verdicts.pop()}, " if one_verdict else "")
        + " and ".join(
            f"{ratio:.2f} x {NAMES[name]}"
            + ("" if one_verdict else f" ({_met(ratio >= PIPE_GOAL)})")
            for name, ratio in ratios
        )
        + ".**"
    )
    text = [head, _pipe_runs(results, [n for n, _ in pipes])]
    text += _per_record(results, med)
    text += _peers(results, med, ss)
    return ["", " ".join(t for t in text if t)]


def _pipe_runs(results: Results, names: list[str]) -> str:
    """Each pipe's runs, and how many were noted as stalled at an end."""
    parts = []
    for name in names:
        runs = [r for r in results["throughput"] if r["variant"] == name]
        stalled = sum("stall" in (r.get("note") or "") for r in runs)
        parts.append(
            f"{NAMES[name]} ran at {_rates(r['rate'] for r in runs)}/s"
            + (f" ({stalled} of {len(runs)} runs stalled at an end)" if stalled else "")
        )
    return "In its runs " + "; ".join(parts) + "."


def _per_record(results: Results, med: Medians) -> list[str]:
    rates = [med.get(n, (0.0, []))[0] for n in (PIPE_TUNED, PIPE_LOOP, SCORER)]
    if min(rates) <= 0:
        return []
    raw, loop, scorer = (1e6 / r for r in rates)
    goal = 1e6 / (PIPE_GOAL * rates[0])
    text = [
        "What bounds the scorer is its one Python thread: per record, the tuned pipe took",
        f"{raw:.2f} µs, the same pipe on streamserve's consumer loop {loop:.2f} µs and the",
        f"scorer {scorer:.2f} µs (the list under the throughput table).",
    ]
    batch = micro_row(results, "scorer, a batch of 1000")
    if batch is not None:
        text.append(
            f"In process, with no broker, a batch of 1,000 events took {batch[0]:.2f} µs per "
            f"record against the {scorer - loop:.2f} µs the scorer adds to the loop."
        )
    text.append(
        f"{PIPE_GOAL} x the tuned pipe leaves {goal:.2f} µs per record: "
        + (
            f"{loop - goal:.2f} µs less than the consumer loop takes with no work in it."
            if loop > goal
            else f"{goal - loop:.2f} µs for the scorer's own work beyond the loop's."
        )
    )
    return text


def _peers(results: Results, med: Medians, ss: float) -> list[str]:
    text = []
    scaling = medians(results.get("scaling", []))
    one, two = scaling.get("1 scorer process(es)"), scaling.get("2 scorer process(es)")
    if one and two and one[0]:
        text.append(f"Two scorer processes gave {two[0] / one[0]:.2f} x one.")
    peers = [(n, ss / med[n][0]) for n in ("Quix Streams", "Bytewax") if med.get(n, (0, []))[0]]
    if peers:
        text.append("The scorer was " + " and ".join(f"{r:.1f} x {n}" for n, r in peers) + ".")
    return text


def _learner_bound(results: Results) -> list[str]:
    ln = results.get("learner")
    if not ln:
        return []
    ratio = learner_ratio(ln)
    rounds = ", ".join(f"{ratio:.2f}" for ratio in learner_rounds(ln))
    river = [r["river_same_model"] for r in ln.get("rounds", [])] or [ln["river_same_model"]]
    text = [
        f"- **Learner (≥ 0.6 x River in memory): {_met(ratio >= 0.6)}, {ratio:.2f} x"
        + (f" (rounds {rounds})" if rounds else "")
        + ".**",
        f"River's rate was {_span(river, '{:,.0f}')}/s"
        + (f" ({ln['river_baseline']})" if "river_baseline" in ln else "")
        + f", the learner's {ln['streamserve']:,.0f}/s (median)",
    ]
    if "settings" in ln:
        text[-1] += f", writing {ln['checkpoints']:.0f} snapshots per round"
    return ["", " ".join(text) + "."]


def _latency_bound(results: Results) -> list[str]:
    main, other = added_latency(results), added_latency(results, OTHER_RATE)
    if not main:
        return []
    rate = results["args"]["latency_rate"]
    m = statistics.median(main)
    text = [
        f"- **Latency (≤ 10 ms over the pipe's p99 at {rate:,}/s): {_met(m <= 10.0)}, "
        f"{m:+.1f} ms (rounds {_signed(main)})"
        + (
            f"; at 1,000/s {statistics.median(other):+.1f} ms (rounds {_signed(other)})"
            if other
            else ""
        )
        + ".**"
    ]
    p50 = [d for at in ("", OTHER_RATE) for d in added_latency(results, at, "p50_ms")]
    if p50:
        text.append(
            f"At p50 the scorer added {_span(p50, '{:+.1f}')} ms over the rounds at both rates."
        )
    hop = [r["p99_ms"] for r in latency_by_variant(results).get(ONE_HOP, [])]
    if hop:
        text.append(f"The broker's own one-hop p99 was {_span(hop, '{:.0f}')} ms.")
    return ["", " ".join(text)]


def _gc_bound(results: Results) -> list[str]:
    gc = micro_row(results, "full garbage collection")
    if gc is None or gc[1] is None:
        return []
    frozen, not_frozen = gc
    return [
        "",
        f"- **Garbage collection pauses.** A full collection over a loaded scorer's objects "
        f"took {not_frozen:.1f} ms in process, {frozen:.2f} ms with the start-up objects "
        "frozen (the last row of the per-record table).",
    ]


def _swap_bound(results: Results) -> list[str]:
    s = results.get("swap")
    if not s or not s.get("steady_p99_ms"):
        return []
    return [
        "",
        f"- **Hot swap.** Events sent during swaps had p99 {s['p99_ms']:.0f} ms, between "
        f"swaps {s['steady_p99_ms']:.0f} ms ({s['p99_ms'] / s['steady_p99_ms']:.2f} x; "
        "the target is the ratio, the absolute figures are the harness's as much as the "
        "scorer's).",
    ]


# -- the defaults -----------------------------------------------------------------------


def _settings_row(r: dict[str, Any]) -> str:
    changed = "; ".join(f"{k} {v}" for part in r["settings"].values() for k, v in part.items())
    return (
        f'"{r["name"]}"' + (f" ({changed})" if changed else "") + f": {r['rate']:,.0f}/s, "
        f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms"
    )


def _verdict_on_defaults(rows: dict[str, dict[str, Any]]) -> str:
    d = rows["defaults"]
    best_p99 = min(rows.values(), key=lambda r: r["p99_ms"])
    best_p50 = min(rows.values(), key=lambda r: r["p50_ms"])
    fastest = max(rows.values(), key=lambda r: r["rate"])
    parts = [
        "the lowest p99"
        if best_p99 is d
        else f'{d["p99_ms"] - best_p99["p99_ms"]:.0f} ms more at p99 than "{best_p99["name"]}"',
        "the lowest p50"
        if best_p50 is d
        else f'{d["p50_ms"] - best_p50["p50_ms"]:.0f} ms more at p50 than "{best_p50["name"]}"',
        "the highest rate"
        if fastest is d
        else f'{d["rate"] / fastest["rate"]:.2f} x the rate of "{fastest["name"]}"',
    ]
    return "Of these rows the defaults had " + ", ".join(parts) + "."


# -- helpers ----------------------------------------------------------------------------


def _span(values: Iterable[float], fmt: str) -> str:
    """The lowest and highest of ``values`` formatted with ``fmt`` (one figure when they
    agree)."""
    ordered = sorted(values)
    low, high = fmt.format(ordered[0]), fmt.format(ordered[-1])
    return low if low == high else f"{low} to {high}"


def _rates(values: Iterable[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


def _signed(values: list[float]) -> str:
    return ", ".join(f"{v:+.0f}" for v in values)


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


SECTIONS: tuple[Callable[[Results], list[str]], ...] = (what_bounds, defaults)
