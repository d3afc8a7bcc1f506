"""The serving configuration every way in reads: each model's decision and the stream's
experiment, hot-swapped like snapshots.

They live in Redis with versions of their own (``models decide``, ``models promote``);
the config file gives the first ones. :class:`ServingConfigWatcher` reads them every
poll interval off the hot path and swaps one reference each; a reader reads
``current`` once per batch. A value that fails to read or check is counted, logged and
skipped: the one before keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from streamserve.errors import StreamserveError
from streamserve.redis.retry import ANY_REDIS_ERROR
from streamserve.serving.decisions import Decision
from streamserve.serving.experiment import Experiment

logger = logging.getLogger(__name__)

_READ_ERRORS: tuple[type[Exception], ...] = (*ANY_REDIS_ERROR, StreamserveError)

T = TypeVar("T")


class Current(Generic[T]):
    """One reference a reader reads once per batch; the watcher replaces it."""

    __slots__ = ("current",)

    def __init__(self, initial: T) -> None:
        self.current = initial


class ConfigSource(Protocol):
    """The part of ``SnapshotStore`` the watcher reads."""

    def decision(self, model: str) -> dict[str, Any] | None: ...

    def experiment(self) -> dict[str, Any] | None: ...


class ServingConfigWatcher:
    """Keeps each model's :class:`Decision` and the stream's :class:`Experiment` current."""

    def __init__(
        self,
        store: ConfigSource,
        decisions: Mapping[str, Current[Decision]],
        experiment: Current[Experiment],
        models: Sequence[str],
        *,
        poll_interval_s: float,
        on_failure: Any = None,
    ) -> None:
        self._store = store
        self._decisions = dict(decisions)
        self._experiment = experiment
        self._models = list(models)
        self._poll_s = poll_interval_s
        self._on_failure = on_failure
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> None:
        """Read every decision and the experiment; swap the ones that changed."""
        for model, holder in self._decisions.items():
            self._refresh(f"decision of {model}", holder, lambda m=model: self._decision(m))
        self._refresh("experiment", self._experiment, self._read_experiment)

    def _decision(self, model: str) -> Decision | None:
        record = self._store.decision(model)
        return None if record is None else Decision.from_record(record, f"decision of {model}")

    def _read_experiment(self) -> Experiment | None:
        record = self._store.experiment()
        return None if record is None else Experiment.from_record(record, self._models)

    def _refresh(self, what: str, holder: Current[Any], read: Any) -> None:
        try:
            value = read()
        except _READ_ERRORS as exc:
            logger.warning("serving config: %s not read (%s); keeping the current one", what, exc)
            if self._on_failure is not None:
                self._on_failure(what)
            return
        if value is not None and value != holder.current:
            logger.info("serving config: %s is now %s", what, value)
            holder.current = value

    def start(self) -> ServingConfigWatcher:
        self._thread = threading.Thread(target=self._run, name="serving-config", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            self.check_once()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
