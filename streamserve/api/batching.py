"""Dynamic batching of concurrent requests for one model, as Triton's dynamic batcher.

Requests queue their jobs; a batch is scored in one call against one snapshot version
(read once from the holder) when:

- it holds ``max_batch_size`` instances or more, or
- every request in flight is waiting in a batcher (no one else can join soon: an idle
  server adds no wait), or
- the oldest job waited ``max_wait_s`` for the others in flight.

Everything runs on the worker's event loop: jobs that arrive within one pass of the loop
(requests read together) join one batch. A job is never split: a request's instances are
all scored by one version. Scoring runs inline on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import Histogram

from streamserve.api.exceptions import ApiError
from streamserve.api.jobs import Job, Outcome, score_jobs
from streamserve.api.routing import InFlight
from streamserve.learners.base import Learner
from streamserve.snapshots.holder import Serving

logger = logging.getLogger(__name__)


class Batcher:
    """Batches one model's jobs; see the module docstring."""

    def __init__(
        self,
        current: Callable[[], Serving[Learner]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        inflight: InFlight,
        sizes: Histogram,
    ) -> None:
        self._current = current
        self._max_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._inflight = inflight
        self._sizes = sizes
        self._jobs: list[Job] = []
        self._futures: list[asyncio.Future[Outcome | ApiError]] = []
        self._queued = 0
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.Handle | None = None
        inflight.listen(self._company_gone)

    async def score(self, job: Job) -> Outcome:
        """``job`` scored in the next batch; raises the job's own error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome | ApiError] = loop.create_future()
        self._jobs.append(job)
        self._futures.append(future)
        self._queued += job.size
        inflight = self._inflight
        inflight.waiting += 1
        try:
            if self._queued >= self._max_size or self._max_wait_s <= 0 or inflight.all_waiting:
                self._flush_soon(loop)
            elif self._timer is None:
                self._timer = loop.call_later(self._max_wait_s, self._flush)
            result = await future
        finally:
            inflight.waiting -= 1
        if isinstance(result, ApiError):
            raise result
        return result

    def _flush_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Score after the requests already read in this pass of the loop have queued."""
        if self._soon is None:
            self._soon = loop.call_soon(self._flush)

    def _company_gone(self) -> None:
        if self._jobs and self._soon is None:
            self._soon = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._soon = None
        jobs, futures = self._take()
        if self._jobs:  # more than one batch was queued: the rest goes next
            self._flush_soon(asyncio.get_running_loop())
        if not jobs:
            return
        serving = self._current()  # one version for the whole batch
        try:
            outcomes = score_jobs(serving.model, serving.version, jobs)
        except Exception as exc:  # a bug, not the input's fault: every waiting request fails
            logger.exception("api: scoring a batch of %d jobs failed", len(jobs))
            for f in futures:
                f.set_exception(exc)
            return
        self._sizes.observe(sum(job.size for job in jobs))
        for f, outcome in zip(futures, outcomes, strict=True):
            f.set_result(outcome)

    def _take(self) -> tuple[list[Job], list[asyncio.Future[Outcome | ApiError]]]:
        """The queued jobs up to ``max_batch_size`` instances (at least one job), skipping
        those whose request gave up waiting."""
        jobs: list[Job] = []
        futures: list[asyncio.Future[Outcome | ApiError]] = []
        size = 0
        taken = 0
        for job, future in zip(self._jobs, self._futures, strict=True):
            if jobs and size + job.size > self._max_size:
                break
            taken += 1
            if future.done():
                continue
            jobs.append(job)
            futures.append(future)
            size += job.size
        del self._jobs[:taken], self._futures[:taken]
        self._queued = sum(job.size for job in self._jobs)
        return jobs, futures
