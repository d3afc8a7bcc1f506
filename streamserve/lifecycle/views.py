"""What the lifecycle shows, as plain JSON-able dicts: a model's versions (``list``), one
version in full (``show``), and a model's part in the experiment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamserve.learners.spec import ModelSpec
from streamserve.serving.ensemble import ENSEMBLE
from streamserve.snapshots.codec import SnapshotMeta
from streamserve.snapshots.store import SnapshotStore

# Snapshot extras that are the learner's working state, not something to read.
_HIDDEN_EXTRA = frozenset({"metrics_state"})


def experiment_role(experiment: Mapping[str, Any] | None, model: str) -> tuple[str | None, Any]:
    """A model's role in the experiment and its weight: ``champion``, ``shadow`` (another
    model is the champion, or the split leaves it out), ``arm`` with its weight, or None
    without an experiment (every model answers the stream)."""
    if not experiment:
        return None, None
    split = experiment.get("split") or {}
    if model in split:
        return "arm", split[model]
    champion = experiment.get("champion")
    if champion == model:
        return "champion", None
    return ("shadow", None) if champion or split else (None, None)


def _aliases_by_version(aliases: Mapping[str, int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for name, version in sorted(aliases.items()):
        out.setdefault(version, []).append(name)
    return out


def version_row(
    version: int, meta: SnapshotMeta | None, serving: int | None, aliases: list[str]
) -> dict[str, Any]:
    """One line of a model's listing."""
    return {
        "version": version,
        "serving": version == serving,
        "parent": meta.parent if meta else None,
        "created_at": meta.created_at if meta else None,
        "examples_seen": meta.examples_seen if meta else None,
        "metrics": meta.metrics if meta else None,
        "aliases": aliases,
        "imported_from": meta.extra.get("imported_from") if meta else None,
    }


def model_view(
    store: SnapshotStore,
    spec: ModelSpec,
    experiment: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A model's listing: its pointers, aliases, role, decision and versions (newest
    first)."""
    name = spec.name
    serving = store.serving_version(name)
    aliases = store.aliases(name)
    by_version = _aliases_by_version(aliases)
    rows = [
        version_row(v, store.get_meta(name, v), serving, by_version.get(v, []))
        for v in sorted(store.versions(name), reverse=True)
    ]
    role, weight = experiment_role(experiment, name)
    return {
        "model": name,
        "task": spec.task.value,
        "learner": spec.learner,
        "members": list(spec.params.get("members") or []) if spec.learner == ENSEMBLE else None,
        "serving": serving,
        "latest": store.latest_version(name),
        "pinned": store.is_pinned(name),
        "resume": store.resume_version(name),
        "aliases": aliases,
        "role": role,
        "weight": weight,
        "decision_version": decision.get("version") if decision else None,
        "decision": dict(decision) if decision else None,
        "learning": store.learning(name).to_record(),
        "versions": rows,
    }


def version_view(
    store: SnapshotStore,
    spec: ModelSpec,
    meta: SnapshotMeta,
    experiment: Mapping[str, Any] | None,
    decision: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One version in full, with the model's decision and the experiment around it."""
    name = spec.name
    role, weight = experiment_role(experiment, name)
    return {
        "model": name,
        "task": spec.task.value,
        "version": meta.version,
        "parent": meta.parent,
        "created_at": meta.created_at,
        "examples_seen": meta.examples_seen,
        "offsets": {str(p): o for p, o in sorted(meta.offsets.items())},
        "metrics": meta.metrics,
        "format": meta.format,
        "learner": meta.learner,
        "checksum": meta.checksum,
        "extra": {k: v for k, v in meta.extra.items() if k not in _HIDDEN_EXTRA},
        "serving": store.serving_version(name) == meta.version,
        "latest": store.latest_version(name) == meta.version,
        "pinned": store.is_pinned(name),
        "aliases": sorted(a for a, v in store.aliases(name).items() if v == meta.version),
        "decision": dict(decision) if decision else None,
        "learning": store.learning(name).to_record(),
        "experiment": dict(experiment) if experiment else None,
        "role": role,
        "weight": weight,
    }
