"""The live terminal view: plain ANSI, redrawn in place about once a second."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from streamserve.demo.stream import DriftPoint

CLEAR = "\x1b[H\x1b[2J"
BOLD, DIM, RED, GREEN, YELLOW, RESET = (
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[31m",
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[0m",
)
ALERTS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Frame:
    """One refresh worth of figures."""

    elapsed_s: float
    events: int
    published: int
    publish_rate: float
    labels: int
    received: int
    scored_rate: float
    accuracy: float | None
    window: int
    version: int | None
    versions_seen: int
    alerts: Sequence[Mapping[str, Any]]
    drifts: Sequence[DriftPoint]
    header: str


def _alert_line(a: Mapping[str, Any]) -> str:
    ts = a.get("ts")
    when = (
        dt.datetime.fromtimestamp(ts / 1000, dt.UTC).strftime("%H:%M:%S")
        if isinstance(ts, int)
        else "?"
    )
    stat = a.get("statistic")
    stat_text = f" stat={stat:.4g}" if isinstance(stat, float) else ""
    version = a.get("action_version")
    action = f"{a.get('action')}" + (f" -> v{version}" if version is not None else "")
    return (
        f"{when} {a.get('model')} v{a.get('model_version')} {a.get('severity')} "
        f"{a.get('detector')} on {a.get('signal')}{stat_text}; action {action}"
    )


def render(f: Frame, *, color: bool) -> str:
    def c(code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if color else text

    lag = f.published - f.received
    acc = "—" if f.accuracy is None else f"{f.accuracy:.3f}"
    acc_color = GREEN if f.accuracy is not None and f.accuracy >= 0.9 else YELLOW
    drifts = []
    for d in f.drifts:
        state = "passed" if f.published > d.position else "ahead"
        drifts.append(f"{d.kind} at {d.position} ({state})")
    lines = [
        c(BOLD, f.header),
        f"  elapsed        {f.elapsed_s:6.1f} s",
        f"  published      {f.published:>7} / {f.events} events   {f.publish_rate:7.1f} ev/s"
        f"   labels {f.labels}",
        f"  scored         {f.received:>7} predictions    {f.scored_rate:7.1f} ev/s",
        f"  lag            {lag:>7} (events published - predictions received)",
        f"  accuracy       {c(acc_color, f'{acc:>7}')} rolling, last {f.window} served predictions",
        f"  serving        {'v' + str(f.version) if f.version is not None else '—':>7}"
        f" (versions seen in predictions: {f.versions_seen})",
        f"  true drifts    {'; '.join(drifts)}",
        c(BOLD, f"  drift alerts   {len(f.alerts)}"),
    ]
    if f.alerts:
        for a in list(f.alerts)[-ALERTS_SHOWN:]:
            sev = str(a.get("severity"))
            lines.append("    " + c(RED if sev == "drift" else YELLOW, _alert_line(a)))
    else:
        lines.append(c(DIM, "    none yet (drift-alerts topic is empty)"))
    lines.append(c(DIM, "  Ctrl-C stops and writes the report of what was seen"))
    return "\n".join(lines)


def status_line(f: Frame) -> str:
    """A one-line form for output that is not a terminal."""
    acc = "-" if f.accuracy is None else f"{f.accuracy:.3f}"
    return (
        f"demo t={f.elapsed_s:.0f}s published={f.published}/{f.events} "
        f"scored={f.received} lag={f.published - f.received} accuracy={acc} "
        f"version={f.version} alerts={len(f.alerts)}"
    )


def draw(out: TextIO, f: Frame, *, live: bool) -> None:
    if live:
        out.write(CLEAR + render(f, color=True) + "\n")
    else:
        out.write(status_line(f) + "\n")
    out.flush()
