"""Reading one run's results (the JSON `python -m bench` writes): the figures the report's
tables, its targets and its notes are computed from."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from typing import Any

Results = dict[str, Any]
Medians = dict[str, tuple[float, list[float]]]

PIPE_TUNED = "raw pipe, fetch.queue.backoff.ms 20"
PIPE_LOOP = "pipe on streamserve's consumer loop"
PIPE_LOOP_BATCH = "pipe on streamserve's consumer loop, produce_batch"
SCORER = "streamserve scorer"
HAND_LOOP = "hand-written loop"
NUMPY_LOOP = "numpy batch loop"

# The scorer's goals against its peers, as issue 14 sets them: (peer, factor) per workload.
PIPE_GOAL = 0.6  # x either raw pipe, Avro doubles
AVRO_GOALS = ((NUMPY_LOOP, 0.9),)
JSON_GOALS = ((HAND_LOOP, 3.0), (NUMPY_LOOP, 0.8))


def medians(runs: list[dict[str, Any]], field: str = "rate") -> Medians:
    """Each variant's median ``field`` and its runs' values, in the order first run."""
    by: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        by[r["variant"]].append(r.get(field) or 0.0)
    return {name: (statistics.median(rates), rates) for name, rates in by.items()}


def throughput_medians(results: Results) -> Medians:
    """Each throughput variant's median rate and its runs' rates ({} without the section)."""
    return medians(results.get("throughput", []))


def json_medians(results: Results) -> Medians:
    """The JSON workload's variants' median rates and their runs' rates."""
    return medians(results.get("json_throughput", []))


def stage_rows(results: Results, fmt: str) -> list[list[float | str]]:
    """The in-process split of a record's time for workload ``fmt`` ("avro", "json"):
    (stage, scorer, numpy batch loop, per-record loop) rows, [] when not measured."""
    return list((results.get("stages") or {}).get(fmt, []))


def stage_totals(results: Results, fmt: str) -> list[float]:
    """Decode + score + encode + produce, µs per record, per column of ``stage_rows``."""
    rows = stage_rows(results, fmt)
    return [sum(float(r[k]) for r in rows) for k in (1, 2, 3)] if rows else []


def latency_by_variant(results: Results) -> dict[str, list[dict[str, Any]]]:
    """The latency rows of each variant (one per round), in the order they were run."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for r in results.get("latency", []):
        grouped.setdefault(r["variant"], []).append(r)
    return grouped


def added_latency(results: Results, at: str = "", field: str = "p99_ms") -> list[float]:
    """Per round, the scorer's ``field`` minus the raw pipe's (ms), at the offered rate
    named by ``at`` (the rows' suffix: "" for the main rate, " at 1,000/s" for the other)."""
    by_variant = latency_by_variant(results)
    pipes = {r.get("round", 0): r for r in by_variant.get("raw pipe (two hops)" + at, [])}
    scorers = {r.get("round", 0): r for r in by_variant.get(SCORER + at, [])}
    return [scorers[k][field] - pipes[k][field] for k in scorers if k in pipes]


def learner_ratio(ln: dict[str, Any]) -> float:
    """``streamserve learn``'s rate over River's (median of the rounds where recorded)."""
    return float(
        ln.get("ratio")
        or (ln["streamserve"] / ln["river_same_model"] if ln["river_same_model"] else 0.0)
    )


def learner_rounds(ln: dict[str, Any]) -> list[float]:
    """Each round's ratio of ``streamserve learn`` to River."""
    return [r["streamserve"] / r["river_same_model"] for r in ln.get("rounds", [])]


def rss_growth(m: dict[str, Any]) -> tuple[float, float]:
    """The scorer's RSS (MiB) after 10 % of the events and at the end."""
    return _rss_at(m["samples"], m["scored"], 0.1), _rss_at(m["samples"], m["scored"], 1.0)


def _rss_at(samples: list[list[float]], scored: int, fraction: float) -> float:
    for count, rss in samples:
        if count >= fraction * scored:
            return rss
    return samples[-1][1] if samples else float("nan")


def micro_row(results: Results, step: str) -> tuple[float, float | None] | None:
    """(streamserve, plain way) of the per-record table's row whose step starts with
    ``step``, or None."""
    for name, ours, plain in results.get("micro") or []:
        if name.startswith(step):
            return ours, plain
    return None


def cores(results: Results) -> int | None:
    """How many cores the run's machine had, as its machine lines say."""
    for line in results.get("machine") or []:
        found = re.search(r"(\d+) cores", line)
        if found:
            return int(found.group(1))
    return None
