"""The demo report: rolling accuracy of the served predictions and of both baselines, the
true drifts, the alerts and the version changes, as a JSON summary and a PNG plot."""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamserve.demo.exceptions import DemoError
from streamserve.demo.stream import DriftPoint

logger = logging.getLogger(__name__)

SERIES_LABELS = {
    "served": "served by streamserve",
    "no_retrain": "learns, never retrains (in-process)",
    "frozen": "never learns (in-process)",
}


def rolling_window(n: int) -> int:
    """The rolling-accuracy window for a stream of ``n`` events."""
    return max(50, min(500, n // 20))


def rolling_accuracy(
    hits: Sequence[bool | None], window: int, step: int
) -> tuple[list[int], list[float | None]]:
    """Accuracy over the last ``window`` events, at every ``step``-th event index.

    Events without a prediction (``None``) are left out; a point whose window holds
    none is ``None``.
    """
    known = np.array([h is not None for h in hits], dtype=np.float64)
    right = np.array([bool(h) for h in hits], dtype=np.float64)
    ck = np.concatenate(([0.0], np.cumsum(known)))
    cr = np.concatenate(([0.0], np.cumsum(right)))
    xs: list[int] = []
    ys: list[float | None] = []
    for end in range(min(window, len(hits)), len(hits) + 1, step):
        start = max(0, end - window)
        count = ck[end] - ck[start]
        xs.append(end - 1)
        ys.append(round(float((cr[end] - cr[start]) / count), 4) if count else None)
    return xs, ys


def overall(hits: Sequence[bool | None], start: int = 0, end: int | None = None) -> float | None:
    part = [h for h in hits[start:end] if h is not None]
    return round(sum(part) / len(part), 4) if part else None


RECOVERY_FRACTION = 0.95


def recovery(
    xs: Sequence[int], ys: Sequence[float | None], drifts: Sequence[DriftPoint], end: int
) -> list[dict[str, Any]]:
    """Per drift: rolling accuracy just before it, the lowest point before the next one,
    and how many events after the drift's position the rolling accuracy took to get back
    to 95 % of its level before (``None`` if it never did; 0 if it never fell below)."""
    out: list[dict[str, Any]] = []
    for i, d in enumerate(drifts):
        start = d.position - d.width // 2
        stop = drifts[i + 1].position - drifts[i + 1].width // 2 if i + 1 < len(drifts) else end
        before = [y for x, y in zip(xs, ys, strict=True) if x < start and y is not None]
        after = [(x, y) for x, y in zip(xs, ys, strict=True) if start <= x < stop and y is not None]
        row: dict[str, Any] = {"drift": d.position, "before": None, "lowest": None}
        row["recovered_after_events"] = None
        if before and after:
            level = before[-1]
            low_at = min(range(len(after)), key=lambda k: after[k][1])
            row["before"], row["lowest"] = level, after[low_at][1]
            if after[low_at][1] >= RECOVERY_FRACTION * level:
                row["recovered_after_events"] = 0
            else:
                for x, y in after[low_at:]:
                    if y >= RECOVERY_FRACTION * level:
                        row["recovered_after_events"] = max(0, x - d.position)
                        break
        out.append(row)
    return out


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the runner knows beside the per-event hits."""

    model: str
    learner: str
    events: int
    published: int
    received: int
    rate: float
    label_delay: str
    seed: int
    duration_s: float
    completed: bool
    metrics_url: str | None


def alert_position(alert: Mapping[str, Any], published_at: Sequence[int]) -> int | None:
    """The index of the last event published at or before the alert's time."""
    ts = alert.get("ts")
    if not isinstance(ts, int) or not published_at:
        return None
    return max(0, bisect.bisect_right(published_at, ts) - 1)


def summary(
    facts: RunFacts,
    drifts: Sequence[DriftPoint],
    hits: Mapping[str, Sequence[bool | None]],
    first_of_version: Mapping[int, int],
    alerts: Sequence[Mapping[str, Any]],
    published_at: Sequence[int],
) -> dict[str, Any]:
    """The JSON summary: every figure the plot shows."""
    n = facts.events
    window = rolling_window(n)
    step = max(1, window // 5)
    bounds = [0, *(d.position for d in drifts), n]
    segments = [{"from": a, "to": b} for a, b in itertools.pairwise(bounds) if b > a]
    series: dict[str, Any] = {}
    for name, h in hits.items():
        xs, ys = rolling_accuracy(h, window, step)
        series[name] = {
            "label": SERIES_LABELS.get(name, name),
            "accuracy": overall(h),
            "segments": [overall(h, s["from"], s["to"]) for s in segments],
            "recovery": recovery(xs, ys, drifts, n),
            "rolling": {"event": xs, "accuracy": ys},
        }
    alert_rows = []
    for a in alerts:
        row = {k: v for k, v in a.items() if k != "details"}
        row["details"] = dict(a.get("details") or {})
        row["event"] = alert_position(a, published_at)
        alert_rows.append(row)
    return {
        "run": asdict(facts),
        "rolling_window": window,
        "drifts": [asdict(d) for d in drifts],
        "segments": segments,
        "series": series,
        "versions": [
            {"version": v, "first_event": first_of_version[v]} for v in sorted(first_of_version)
        ],
        "alerts": alert_rows,
    }


def write_json(report: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def _nan(ys: Sequence[float | None]) -> list[float]:
    return [math.nan if y is None else y for y in ys]


def write_plot(report: Mapping[str, Any], path: Path) -> None:
    """Rolling accuracy of the three series; drifts, alerts and versions marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DemoError(
            "the demo's plot needs matplotlib: pip install 'streamserve[demo]'"
        ) from exc
    run = report["run"]
    fig, ax = plt.subplots(figsize=(12, 6), dpi=100)
    styles: dict[str, dict[str, Any]] = {
        "served": {"color": "tab:blue", "linewidth": 2.0},
        "no_retrain": {"color": "tab:orange", "linewidth": 1.3, "linestyle": "--"},
        "frozen": {"color": "tab:gray", "linewidth": 1.3, "linestyle": ":"},
    }
    for name, s in report["series"].items():
        acc = s["accuracy"]
        label = f"{s['label']} (overall {acc:.3f})" if acc is not None else s["label"]
        ax.plot(s["rolling"]["event"], _nan(s["rolling"]["accuracy"]), label=label, **styles[name])
    for i, d in enumerate(report["drifts"]):
        text = f"{d['kind']} drift"
        if d["width"] > 50:
            half = d["width"] / 2
            ax.axvspan(
                d["position"] - half,
                d["position"] + half,
                color="tab:red",
                alpha=0.08,
                label="true drift" if i == 0 else None,
            )
        ax.axvline(
            d["position"],
            color="tab:red",
            linestyle="-",
            linewidth=1.0,
            label="true drift" if i == 0 else None,
        )
        ax.annotate(
            text, (d["position"], 1.0), xytext=(4, -12), textcoords="offset points",
            color="tab:red", fontsize=9,
        )  # fmt: skip
    marks = [a for a in report["alerts"] if a.get("event") is not None]
    for sev, marker, color in (("warning", "v", "goldenrod"), ("drift", "v", "crimson")):
        xs = [a["event"] for a in marks if a.get("severity") == sev]
        if xs:
            ax.scatter(
                xs, [0.04] * len(xs), marker=marker, s=70, color=color, zorder=5,
                label=f"drift alert: {sev} ({len(xs)})",
            )  # fmt: skip
    for a in marks:
        if a.get("severity") == "drift":
            ax.axvline(a["event"], color="crimson", linestyle=":", linewidth=0.8, alpha=0.6)
    other = [a["event"] for a in marks if a.get("severity") not in ("warning", "drift")]
    if other:
        ax.scatter(other, [0.04] * len(other), marker="v", s=70, color="purple", label="alert")
    versions = [v for v in report["versions"] if v["version"] > 0]
    if versions:
        ax.vlines(
            [v["first_event"] for v in versions], 0.0, 0.025, color="tab:green",
            linewidth=1.0, label=f"new serving version ({len(versions)})",
        )  # fmt: skip
    ax.set_ylim(0.0, 1.05)
    ax.set_xlim(0, run["events"])
    ax.set_xlabel("event (stream position)")
    ax.set_ylabel(f"rolling accuracy (last {report['rolling_window']} events)")
    alerts_note = f"{len(report['alerts'])} drift alerts" if report["alerts"] else "no drift alerts"
    ax.set_title(
        f"streamserve demo: model {run['model']} ({run['learner']}), {run['events']} events, "
        f"labels after {run['label_delay']}, {alerts_note}"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot create the report directory {out}: {exc}") from exc
    json_path, png_path = out / "summary.json", out / "accuracy.png"
    write_json(report, json_path)
    write_plot(report, png_path)
    return json_path, png_path
