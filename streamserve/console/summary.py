"""The live figures over every process that published a status recently (:mod:`.status`):
rates and lags summed, latency histograms merged before their percentiles are taken,
each figure with the processes it came from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

QUANTILES = (0.5, 0.95, 0.99)


def quantile(q: float, buckets: Sequence[Sequence[float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram (``[[upper bound, count], ...]``, +Inf
    last), interpolated within its bucket as Prometheus' ``histogram_quantile`` does;
    None when it holds no observation."""
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # past the last finite bound: that bound, as Prometheus
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def merge_buckets(histograms: Sequence[Sequence[Sequence[str | float]]]) -> list[list[float]]:
    """Cumulative histograms with the same bounds (numbers, or strings such as ``+Inf``),
    added bucket by bucket."""
    merged: dict[float, float] = {}
    for buckets in histograms:
        for bound, count in buckets:
            merged[float(bound)] = merged.get(float(bound), 0.0) + float(count)
    return [[b, merged[b]] for b in sorted(merged)]


def _source(status: dict[str, Any]) -> str:
    return f"{status.get('id')} ({', '.join(status.get('roles', [])) or 'no roles'})"


def _paused(entries: list[dict[str, Any]]) -> bool | None:
    """Learning paused, as the model's learner reports (None: no learner reports it)."""
    found = [e["learning_paused"] for e in entries if e.get("learning_paused") is not None]
    return any(found) if found else None


def model_live(model: str, statuses: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One model's live figures, summed over the processes that report it."""
    entries = [(s, s["models"][model]) for s in statuses if model in s.get("models", {})]
    scorers = [(s, m) for s, m in entries if m.get("scored_per_s") is not None]
    learners = [(s, m) for s, m in entries if m.get("learned_per_s") is not None]
    buckets = merge_buckets([m["latency"] for _, m in scorers if m.get("latency")])
    latency: dict[str, Any] = {f"p{round(q * 100)}": quantile(q, buckets) for q in QUANTILES}
    latency["count"] = buckets[-1][1] if buckets else 0.0
    latency["window_s"] = max((s.get("window_s") or 0.0 for s, _ in scorers), default=0.0)
    # The leader's metrics: the learner that learned most recently holds the lease.
    leader = max(learners, key=lambda e: e[1].get("learned_total") or 0.0, default=None)
    serving = {
        s["id"]: s.get("health", {}).get("scorer", {}).get("serving", {}).get(model)
        for s, _ in entries
        if "scorer" in s.get("roles", [])
    }
    return {
        "scored_per_s": sum(m["scored_per_s"] for _, m in scorers) if scorers else None,
        "scored_total": sum(m.get("scored_total") or 0.0 for _, m in scorers) if scorers else None,
        "learned_per_s": sum(m["learned_per_s"] for _, m in learners) if learners else None,
        "latency": latency,
        "prequential": leader[1].get("prequential") if leader else None,
        "learning_paused": _paused([m for _, m in entries]),
        "scorer_serving": serving,
        "sources": {
            "scoring": [_source(s) for s, _ in scorers],
            "learning": [_source(s) for s, _ in learners],
        },
    }


def deployment_live(statuses: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Consumer lag per role and topic, dead letters per stage, and who reported."""
    lag: dict[str, float] = {}
    dead: dict[str, float] = {}
    for s in statuses:
        for key, value in (s.get("lag") or {}).items():
            lag[key] = lag.get(key, 0.0) + float(value)
        for stage, value in (s.get("dead_letters") or {}).items():
            dead[stage] = dead.get(stage, 0.0) + float(value)
    return {
        "lag": dict(sorted(lag.items())),
        "dead_letters": {
            "total": sum(dead.values()),
            "per_s": sum(float(s.get("dead_letters_per_s") or 0.0) for s in statuses),
            "by_stage": dict(sorted(dead.items())),
        },
        "processes": [
            {
                "id": s.get("id"),
                "roles": s.get("roles", []),
                "age_s": s.get("age_s"),
                "interval_s": s.get("interval_s"),
            }
            for s in statuses
        ],
    }
