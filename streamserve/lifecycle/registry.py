"""The lifecycle operations on one deployment's models; the CLI and the API call these.

Versions are named by number or by reference: an alias (``champion``, any name set with
:meth:`Registry.set_alias`), ``latest`` (the learner's newest) or ``serving`` (what the
scorers load). Those two and ``pinned`` are reserved: they name pointers, not aliases.

Every operation returns what it shows (a JSON-able dict): a change returns the model's
listing afterwards, as :meth:`Registry.model` does.

The experiment and each model's decision are the stored ones, else the config file's
(``serving`` and ``models[i].decision``, version 0), as the scorers and the API read them.
An ensemble has no versions of its own (its members' serve): version operations on it
are refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from streamserve.errors import ConfigError
from streamserve.learners.spec import ModelSpec, Task
from streamserve.lifecycle.exceptions import NotFound, Refused
from streamserve.lifecycle.views import model_view, version_view
from streamserve.serving.decisions import Decision
from streamserve.serving.ensemble import ENSEMBLE
from streamserve.serving.experiment import Experiment
from streamserve.settings import check_decision
from streamserve.snapshots.exceptions import SnapshotNotFoundError
from streamserve.snapshots.learning import LearningState
from streamserve.snapshots.store import SnapshotStore

logger = logging.getLogger(__name__)

POINTERS = ("latest", "serving")
RESERVED_ALIASES = frozenset({*POINTERS, "pinned"})


@contextmanager
def _found() -> Iterator[None]:
    """A version the store does not hold (pruned meanwhile, say) is :class:`NotFound`."""
    try:
        yield
    except SnapshotNotFoundError as exc:
        raise NotFound(str(exc)) from exc


class Registry:
    """Lists, shows and changes the versions, aliases, champion and decisions of the
    configured models (``models``) in ``store``; ``experiment`` and ``decisions`` are the
    config file's, which serve until the store has its own."""

    def __init__(
        self,
        store: SnapshotStore,
        models: Sequence[ModelSpec],
        *,
        experiment: Experiment | None = None,
        decisions: Mapping[str, Decision] | None = None,
    ) -> None:
        self._store = store
        self._models = {m.name: m for m in models}
        self._first_experiment = (
            experiment if experiment is not None and experiment.active else None
        )
        self._first_decisions = {n: d for n, d in (decisions or {}).items() if d.configured}

    @property
    def store(self) -> SnapshotStore:
        return self._store

    def spec(self, model: str) -> ModelSpec:
        """The configured model ``model``; :class:`NotFound` naming those configured."""
        spec = self._models.get(model)
        if spec is None:
            known = ", ".join(sorted(self._models))
            raise NotFound(f"no model named {model!r} is configured (models: {known})")
        return spec

    def versioned(self, model: str) -> ModelSpec:
        """The configured model ``model``, which has versions of its own (not an ensemble)."""
        spec = self.spec(model)
        if spec.learner == ENSEMBLE:
            members = ", ".join(spec.params.get("members") or [])
            raise Refused(
                f"{model} is an ensemble of {members}: it has no versions of its own "
                "(its members' serving versions answer); manage its members"
            )
        return spec

    def resolve(self, model: str, ref: str | int) -> int:
        """The version ``ref`` names: a number, an alias, ``latest`` or ``serving``."""
        self.versioned(model)
        version = self._lookup(model, str(ref).strip())
        versions = self._store.versions(model)
        if version is None or version not in versions:
            held = ", ".join(str(v) for v in versions) or "none yet"
            raise NotFound(f"{model}: no version {ref!r} (versions: {held})")
        return version

    def _lookup(self, model: str, ref: str) -> int | None:
        if ref.isdigit():
            return int(ref)
        if ref == "latest":
            return self._store.latest_version(model)
        if ref == "serving":
            return self._store.serving_version(model)
        return self._store.aliases(model).get(ref)

    # -- reads --------------------------------------------------------------------------

    def experiment(self) -> dict[str, Any] | None:
        """The stream's experiment record: the stored one, else the config file's."""
        stored = self._store.experiment()
        if stored is None and self._first_experiment is not None:
            return self._first_experiment.to_record()
        return stored

    def decision(self, model: str) -> dict[str, Any] | None:
        """The model's decision record: the stored one, else the config file's."""
        stored = self._store.decision(model)
        if stored is None and model in self._first_decisions:
            return self._first_decisions[model].to_record()
        return stored

    def listing(self, models: Sequence[str] | None = None) -> dict[str, Any]:
        """Every configured model's listing (or those named), with the experiment."""
        names = list(models) if models else list(self._models)
        experiment = self.experiment()
        return {"experiment": experiment, "models": [self._view(n, experiment) for n in names]}

    def model(self, model: str) -> dict[str, Any]:
        """One model's listing: pointers, aliases, role, decision, versions."""
        return self._view(model, self.experiment())

    def _view(self, model: str, experiment: Mapping[str, Any] | None) -> dict[str, Any]:
        spec = self.spec(model)
        return model_view(self._store, spec, experiment, self.decision(model))

    def show(self, model: str, ref: str | int | None = None) -> dict[str, Any]:
        """One version in full (the serving one by default), with the model's decision
        and the experiment."""
        spec = self.versioned(model)
        if ref is None and self._store.serving_version(model) is None:
            raise NotFound(f"{model}: no version yet (the learner has not checkpointed)")
        version = self.resolve(model, "serving" if ref is None else ref)
        meta = self._store.get_meta(model, version)
        if meta is None:
            raise NotFound(f"{model}: version {version} is not in the store")
        return version_view(self._store, spec, meta, self.experiment(), self.decision(model))

    # -- changes ------------------------------------------------------------------------

    def pin(self, model: str, ref: str | int) -> dict[str, Any]:
        """Serve ``ref`` and keep serving it while the learner writes newer versions."""
        version = self.resolve(model, ref)
        with _found():
            self._store.pin(model, version)
        return self.model(model)

    def unpin(self, model: str) -> dict[str, Any]:
        """Serve the newest version again."""
        self.versioned(model)
        self._store.unpin(model)
        return self.model(model)

    def rollback(self, model: str, ref: str | int) -> dict[str, Any]:
        """Serve ``ref`` now and make the learner continue from it (a pin is released)."""
        version = self.resolve(model, ref)
        with _found():
            self._store.rollback(model, version)
        return self.model(model)

    def set_alias(self, model: str, name: str, ref: str | int) -> dict[str, Any]:
        """Point alias ``name`` at ``ref``; the version is kept from pruning while it does."""
        if name in RESERVED_ALIASES or name.isdigit():
            raise Refused(f"{name!r} cannot be an alias: it names a pointer or a version")
        version = self.resolve(model, ref)
        with _found():
            self._store.set_alias(model, name, version)
        return self.model(model)

    def delete_alias(self, model: str, name: str) -> dict[str, Any]:
        """Remove alias ``name``; :class:`NotFound` when the model has none of that name."""
        self.spec(model)
        if not self._store.delete_alias(model, name):
            raise NotFound(f"{model}: no alias named {name!r}")
        return self.model(model)

    def promote(self, model: str) -> dict[str, Any]:
        """Make ``model`` the stream's champion; the old champion (or the split's arms)
        become shadows. Refused for a model of another task than the champion's."""
        spec = self.spec(model)
        previous = self.experiment()
        for other in _answering(previous):
            other_spec = self._models.get(other)
            if other_spec is not None and other_spec.task is not spec.task:
                raise Refused(
                    f"{model} is a {spec.task.value} model; {other} answers the stream "
                    f"as a {other_spec.task.value} model: a champion's shadows share its task"
                )
        if previous and previous.get("champion") == model and not previous.get("split"):
            return {"experiment": previous, "previous": previous, "changed": False}
        record = Experiment(champion=model).to_record()
        Experiment.from_record(record, list(self._models))  # checked before it is stored
        stored = self._store.set_experiment(record)
        logger.info("promoted %s to champion (experiment version %s)", model, stored["version"])
        return {"experiment": stored, "previous": previous, "changed": True}

    def learning_state(self, model: str) -> dict[str, Any]:
        """Whether the model's learning is paused: ``paused``, ``reason``, ``since``
        (epoch seconds) and ``by``."""
        self.versioned(model)
        return self._store.learning(model).to_record()

    def pause_learning(self, model: str, reason: str = "", by: str = "") -> dict[str, Any]:
        """Stop the model's learning (it keeps serving; the learner reads its examples
        and moves past them, writing no new versions) until :meth:`resume_learning`."""
        self.versioned(model)
        state = LearningState(paused=True, reason=reason.strip(), since=time.time(), by=by)
        self._store.set_learning(model, state)
        return self.model(model)

    def resume_learning(self, model: str, by: str = "") -> dict[str, Any]:
        """Learn again from the next example on (paused ones stay unlearned)."""
        self.versioned(model)
        self._store.set_learning(model, LearningState(paused=False, since=time.time(), by=by))
        return self.model(model)

    def decide(self, model: str, record: Mapping[str, Any] | None) -> dict[str, Any]:
        """Store a new version of the model's decision (None: the prediction decides);
        ``record`` is checked as the config file's ``decision`` would be."""
        spec = self.spec(model)
        if record:
            decision = Decision.from_record(record)
            check_decision(spec, decision, "decision")
            _check_binary_labels(spec, decision)
        stored = self._store.set_decision(model, dict(record) if record else None)
        return {"model": model, "decision": stored}


def _answering(experiment: Mapping[str, Any] | None) -> list[str]:
    """The models whose predictions answer the stream: the champion or the split's arms."""
    if not experiment:
        return []
    champion = experiment.get("champion")
    return ([champion] if champion else []) + sorted(experiment.get("split") or {})


def _check_binary_labels(spec: ModelSpec, decision: Decision) -> None:
    """A binary model's cost matrix names its labels ``true`` and ``false`` only."""
    if spec.task is not Task.BINARY or not decision.costs:
        return
    labels = set(decision.costs) | {a for row in decision.costs.values() for a in row}
    unknown = sorted(labels - {"true", "false"})
    if unknown:
        raise ConfigError(
            "decision.costs", f"a binary model's labels are true and false, not {unknown[0]!r}"
        )
