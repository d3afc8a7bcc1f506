"""The listing as a table for a terminal (``models list``; JSON elsewhere)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

_FIXED = ("VERSION", "PARENT", "CREATED (UTC)", "EXAMPLES")
_NO_VERSIONS = "no versions yet: the model serves its untrained state as version 0"
_NO_VERSIONS_ENSEMBLE = "an ensemble has no versions of its own: its members' serve"


def render_listing(listing: Mapping[str, Any]) -> str:
    """Every model of a listing: a header line, then one row per version (``*`` serving)."""
    blocks = [render_model(view) for view in listing.get("models", [])]
    return "\n\n".join(blocks) + "\n"


def render_model(view: Mapping[str, Any]) -> str:
    """One model: its header line and its versions, newest first."""
    rows: Sequence[Mapping[str, Any]] = view["versions"]
    metrics = _metric_names(rows)
    header = [" ", *_FIXED, *(m.upper() for m in metrics), "ALIASES"]
    lines = [header] + [_row(r, metrics) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    body = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    if not rows:
        body = [f"  ({_NO_VERSIONS_ENSEMBLE if view.get('members') else _NO_VERSIONS})"]
    return "\n".join([_title(view), *body])


def _title(view: Mapping[str, Any]) -> str:
    members = view.get("members")
    if members:
        parts = [f"{view['task']}, ensemble of {', '.join(members)}"]
    else:
        serving = view.get("serving")
        parts = [f"{view['task']}, {view['learner']}", f"serving v{serving or 0}"]
    if view.get("pinned"):
        parts.append("pinned")
    if view.get("resume") is not None:
        parts.append(f"learner continues from v{view['resume']}")
    if view.get("role"):
        weight = view.get("weight")
        parts.append(view["role"] + (f" (weight {weight:g})" if weight is not None else ""))
    learning = view.get("learning") or {}
    if learning.get("paused"):
        parts.append(_paused(learning))
    decision = view.get("decision")
    if decision:
        parts.append(f"decision v{decision.get('version')}: {_rule(decision)}")
    return f"{view['model']}: " + " · ".join(parts)


def _paused(learning: Mapping[str, Any]) -> str:
    since = learning.get("since")
    when = "" if since is None else time.strftime(" since %H:%M:%S UTC", time.gmtime(since))
    by = f" by {learning['by']}" if learning.get("by") else ""
    reason = f" ({learning['reason']})" if learning.get("reason") else ""
    return f"learning paused{when}{by}{reason}"


def _rule(decision: Mapping[str, Any]) -> str:
    if decision.get("threshold") is not None:
        return f"threshold {decision['threshold']:g}"
    return "expected costs" if decision.get("costs") else "none (the prediction decides)"


def _metric_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for name in row.get("metrics") or {}:
            if name != "n" and name not in names:
                names.append(name)
    return names


def _row(row: Mapping[str, Any], metrics: list[str]) -> list[str]:
    values = row.get("metrics") or {}
    created = row.get("created_at")
    return [
        "*" if row.get("serving") else "",
        str(row["version"]),
        _parent(row),
        "-" if created is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(created)),
        "-" if row.get("examples_seen") is None else str(row["examples_seen"]),
        *(f"{values[m]:.4f}" if m in values else "-" for m in metrics),
        ",".join(row.get("aliases") or []) or "-",
    ]


def _parent(row: Mapping[str, Any]) -> str:
    source = row.get("imported_from")
    if source:
        return f"imported ({source.get('model')} v{source.get('version')})"
    return "-" if row.get("parent") is None else str(row["parent"])
