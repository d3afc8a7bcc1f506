"""Follows a model's serving pointer and hot-swaps verified, loaded snapshots into a holder.

Generic over the loaded object type: the caller's ``load(meta, payload)`` turns verified
payload bytes into a model. ``load`` is only ever called after ``SnapshotCodec.decode``
verified the blob's signature and checksum.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from streamserve.snapshots.codec import SnapshotCodec, SnapshotMeta
from streamserve.snapshots.exceptions import (
    SignatureError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotLoadError,
    SnapshotNotFoundError,
)
from streamserve.snapshots.holder import Serving, SnapshotHolder

logger = logging.getLogger(__name__)

T = TypeVar("T")

FAILURE_SIGNATURE = "signature"
FAILURE_FORMAT = "format"
FAILURE_LOAD = "load"
FAILURE_MISSING = "missing"


class Subscription(Protocol):
    """Notifications that a model's serving pointer moved."""

    def wait(self, timeout_s: float) -> int | None: ...

    def close(self) -> None: ...


class SnapshotSource(Protocol):
    """The part of ``SnapshotStore`` the watcher reads."""

    def serving_version(self, model: str) -> int | None: ...

    def get_blob(self, model: str, version: int) -> bytes | None: ...

    def subscribe(self, model: str) -> Subscription: ...


def load_version(
    store: SnapshotSource,
    codec: SnapshotCodec,
    model: str,
    version: int,
    load: Callable[[SnapshotMeta, bytes], T],
) -> tuple[SnapshotMeta, Serving[T]]:
    """Fetch, verify and load one version.

    Raises ``SnapshotNotFoundError`` (no blob), ``SignatureError``, ``SnapshotFormatError``
    (bad envelope, or a validly signed blob of another model or version) or
    ``SnapshotLoadError`` (``load`` failed). Redis errors propagate.
    """
    blob = store.get_blob(model, version)
    if blob is None:
        raise SnapshotNotFoundError(f"{model} v{version}: no snapshot blob in the store")
    meta, payload = codec.decode(blob)
    if meta.model != model or meta.version != version:
        raise SnapshotFormatError(
            f"blob stored as {model} v{version} is signed as {meta.model} v{meta.version}"
        )
    try:
        loaded = load(meta, payload)
    except Exception as exc:
        raise SnapshotLoadError(f"{model} v{version} ({meta.format}): load failed: {exc}") from exc
    return meta, Serving(version=version, model=loaded, metrics=dict(meta.metrics))


def load_serving(
    store: SnapshotSource,
    codec: SnapshotCodec,
    model: str,
    load: Callable[[SnapshotMeta, bytes], T],
) -> tuple[SnapshotMeta, Serving[T]] | None:
    """Load whatever the serving pointer names (e.g. at startup); None if there is none."""
    version = store.serving_version(model)
    if version is None:
        return None
    return load_version(store, codec, model, version, load)


def _failure_reason(exc: SnapshotError) -> str:
    if isinstance(exc, SignatureError):
        return FAILURE_SIGNATURE
    if isinstance(exc, SnapshotNotFoundError):
        return FAILURE_MISSING
    if isinstance(exc, SnapshotLoadError):
        return FAILURE_LOAD
    return FAILURE_FORMAT


class _RateLimitedErrors:
    """Logs the first error of a streak, then at most one summary per interval."""

    def __init__(self, what: str, interval_s: float) -> None:
        self._what = what
        self._interval_s = interval_s
        self._streak = 0
        self._suppressed = 0
        self._last_logged = 0.0

    def report(self, exc: Exception) -> None:
        now = time.monotonic()
        self._streak += 1
        if self._streak == 1 or now - self._last_logged >= self._interval_s:
            logger.warning(
                "%s: %s: %s (error %d in a row, %d not logged); retrying",
                self._what,
                type(exc).__name__,
                exc,
                self._streak,
                self._suppressed,
                exc_info=self._streak == 1,
            )
            self._last_logged = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    def recovered(self) -> None:
        if self._streak:
            logger.info("%s: recovered after %d error(s)", self._what, self._streak)
            self._streak = 0
            self._suppressed = 0


class SnapshotWatcher(Generic[T]):
    """Swaps the serving snapshot into ``holder`` whenever the store's pointer moves."""

    def __init__(
        self,
        *,
        store: SnapshotSource,
        codec: SnapshotCodec,
        model: str,
        holder: SnapshotHolder[T],
        load: Callable[[SnapshotMeta, bytes], T],
        poll_interval_s: float = 2.0,
        on_swap: Callable[[int, int, float], None] | None = None,
        on_failure: Callable[[int, str], None] | None = None,
        min_backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        error_log_interval_s: float = 60.0,
    ) -> None:
        if not model:
            raise SnapshotError("model name must be non-empty")
        if poll_interval_s <= 0:
            raise SnapshotError(f"poll_interval_s must be > 0, got {poll_interval_s!r}")
        if min_backoff_s <= 0 or max_backoff_s < min_backoff_s:
            raise SnapshotError("backoff bounds must satisfy 0 < min_backoff_s <= max_backoff_s")
        self._store = store
        self._codec = codec
        self._model = model
        self._holder = holder
        self._load = load
        self._poll_interval_s = poll_interval_s
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._errors = _RateLimitedErrors(f"snapshot watcher for {model}", error_log_interval_s)
        self._failed_version: int | None = None
        self._checked = False
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Upper bound on one blocking wait, so stop() is honoured promptly.
        self._wake_interval_s = min(0.25, poll_interval_s)

    @property
    def model(self) -> str:
        return self._model

    @property
    def failed_version(self) -> int | None:
        """The last version that failed to verify or load, while the pointer still names it."""
        return self._failed_version

    @property
    def checked(self) -> bool:
        """Whether a check has completed: the store answered, and the version its pointer
        named then (if any) was swapped in or refused."""
        return self._checked

    def check_once(self) -> bool:
        """Swap to the serving version if it moved; True if a swap happened.

        Redis errors propagate. A version that fails to verify or load is reported once and
        skipped until the pointer moves to another version.
        """
        swapped = self._check()
        self._checked = True
        return swapped

    def _check(self) -> bool:
        with self._check_lock:
            version = self._store.serving_version(self._model)
            if version is None:
                return False
            if version != self._failed_version:
                self._failed_version = None
            current = self._holder.current.version
            if version in (current, self._failed_version):
                return False
            try:
                meta, serving = load_version(
                    self._store, self._codec, self._model, version, self._load
                )
            except SnapshotError as exc:
                self._failed(version, exc)
                return False
            old = self._holder.swap(serving)
            # Keep the new model's objects out of the cyclic collector's full passes, as
            # App.start does for what exists at start-up. Loaded models hold no reference
            # cycles (the old one is freed by reference counting once dropped, frozen or
            # not); freezing takes no time of its own.
            gc.freeze()
            lag_s = time.time() - meta.created_at
            logger.info(
                "%s: now serving v%d (was v%d), %.3fs after it was created",
                self._model,
                version,
                old.version,
                lag_s,
            )
            if self._on_swap is not None:
                try:
                    self._on_swap(old.version, version, lag_s)
                except Exception:
                    logger.exception("%s: on_swap callback failed", self._model)
            return True

    def _failed(self, version: int, exc: SnapshotError) -> None:
        reason = _failure_reason(exc)
        self._failed_version = version
        logger.error(
            "%s: refusing snapshot v%d (%s): %s; still serving v%d",
            self._model,
            version,
            reason,
            exc,
            self._holder.current.version,
        )
        if self._on_failure is not None:
            try:
                self._on_failure(version, reason)
            except Exception:
                logger.exception("%s: on_failure callback failed", self._model)

    def start(self) -> None:
        """Watch in a daemon thread: pub/sub notifications plus polling as a fallback."""
        if self._thread is not None and self._thread.is_alive():
            raise SnapshotError(f"snapshot watcher for {self._model} is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"snapshot-watcher-{self._model}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to stop and wait up to ``timeout_s`` for it."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        thread.join(timeout_s)
        if thread.is_alive():
            logger.warning(
                "snapshot watcher for %s did not stop within %.1fs", self._model, timeout_s
            )
        else:
            self._thread = None

    def _run(self) -> None:
        subscription: Subscription | None = None
        backoff_s = self._min_backoff_s
        next_poll = 0.0
        check_now = True
        try:
            while not self._stop.is_set():
                try:
                    if subscription is None:
                        subscription = self._store.subscribe(self._model)
                        check_now = True  # notifications may have been missed meanwhile
                    if check_now or time.monotonic() >= next_poll:
                        check_now = False
                        self.check_once()
                        next_poll = time.monotonic() + self._poll_interval_s
                    wait_s = min(self._wake_interval_s, max(0.0, next_poll - time.monotonic()))
                    if subscription.wait(wait_s) is not None:
                        check_now = True
                    self._errors.recovered()
                    backoff_s = self._min_backoff_s
                except Exception as exc:
                    self._errors.report(exc)
                    self._close(subscription)
                    subscription = None
                    check_now = True
                    self._stop.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, self._max_backoff_s)
        finally:
            self._close(subscription)

    def _close(self, subscription: Subscription | None) -> None:
        if subscription is None:
            return
        try:
            subscription.close()
        except Exception as exc:
            logger.debug("%s: closing subscription failed: %s", self._model, exc)
