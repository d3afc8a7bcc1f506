"""The models the API serves: each one's holder (the serving snapshot, hot-swapped by its
watcher), its batcher, and the versions asked for by number."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import redis

from streamserve.api.batching import Batcher
from streamserve.api.exceptions import NotFound, Unavailable
from streamserve.learners.base import Learner
from streamserve.learners.spec import ModelSpec
from streamserve.serving.config_watch import Current
from streamserve.serving.decisions import Decision
from streamserve.serving.post_processing import PostProcessor
from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.exceptions import SnapshotError, SnapshotNotFoundError
from streamserve.snapshots.holder import Serving, ServingSource
from streamserve.snapshots.watcher import SnapshotSource, load_version

logger = logging.getLogger(__name__)


class VersionStore(SnapshotSource, Protocol):
    """The part of ``SnapshotStore`` the API reads."""

    def get_meta(self, model: str, version: int) -> SnapshotMeta | None: ...

    def versions(self, model: str) -> list[int]: ...


class Versions:
    """Loads a model's stored versions through the codec (signature verified first), and
    keeps the last few asked for; version 0 is the untrained model, as scorers serve it."""

    def __init__(
        self,
        *,
        spec: ModelSpec,
        store: VersionStore,
        codec: SnapshotCodec,
        load: Callable[[SnapshotMeta, bytes], Learner],
        untrained: Callable[[], Learner],
        keep: int,
    ) -> None:
        self._spec = spec
        self._store = store
        self._codec = codec
        self._load = load
        self._untrained = untrained
        self._keep = keep
        self._cache: OrderedDict[int, asyncio.Task[Serving[Learner]]] = OrderedDict()

    async def get(self, version: int) -> Serving[Learner]:
        """The loaded version; 404 when the store has no such version, 503 when it
        cannot be read or does not verify or load. One load per version at a time, in a
        thread; a request that gives up waiting does not stop it."""
        task = self._cache.get(version)
        if task is None:
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._fetch, version))
            task.add_done_callback(partial(self._loaded, version))
            self._cache[version] = task
            while len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(version)
        return await asyncio.shield(task)

    def _loaded(self, version: int, task: asyncio.Task[Serving[Learner]]) -> None:
        failed = task.cancelled() or task.exception() is not None
        if failed and self._cache.get(version) is task:  # not kept: asked again, tried again
            del self._cache[version]

    def _fetch(self, version: int) -> Serving[Learner]:
        name = self._spec.name
        if version == 0:
            return Serving(0, self._untrained())
        try:
            return load_version(self._store, self._codec, name, version, self._load)[1]
        except SnapshotNotFoundError:
            raise NotFound(f"model {name!r} has no version {version}") from None
        except SnapshotError as exc:
            logger.error("api: %s v%d cannot be served: %s", name, version, exc)
            raise Unavailable(f"model {name!r} version {version} cannot be loaded: {exc}") from None
        except redis.RedisError as exc:
            raise Unavailable(f"the snapshot store is unreachable: {type(exc).__name__}") from None

    def stored(self) -> list[int]:
        """The versions in the store (Redis errors propagate)."""
        return self._store.versions(self._spec.name)

    def meta(self, version: int) -> SnapshotMeta | None:
        if version == 0:
            return None
        try:
            return self._store.get_meta(self._spec.name, version)
        except redis.RedisError:
            return None


@dataclass
class ApiModel:
    """One served model."""

    spec: ModelSpec
    holder: ServingSource[Learner]
    batcher: Batcher
    versions: Versions
    ready: Callable[[], bool]
    decision: Current[Decision] = field(default_factory=lambda: Current(Decision()))
    post: PostProcessor | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    async def serving(self, version: int | None) -> Serving[Learner]:
        """The serving snapshot, or the one of ``version`` when given."""
        current = self.holder.current
        if version is None or version == current.version:
            return current
        return await self.versions.get(version)
