"""The API's dynamic batcher: concurrent requests scored in one call by one version,
bounded in size and wait; a bad instance fails its own request only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streamserve.api.batching import Batcher
from streamserve.api.exceptions import ApiError
from streamserve.api.jobs import Job, Outcome
from streamserve.api.routing import InFlight
from streamserve.learners.base import Scored
from streamserve.learners.spec import ModelSpec, Task
from streamserve.metrics import Metrics
from streamserve.records import Features
from streamserve.snapshots.holder import Serving, SnapshotHolder


class CountingModel:
    """Scores x["v"] as the score; raises on x["bad"]; counts calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.spec = ModelSpec("m", Task.REGRESSION, "linear_regression")

    def predict_one(self, x: Features) -> Scored:
        if "bad" in x:
            raise ValueError("bad instance")
        return Scored(None, None, float(x["v"]))  # type: ignore[arg-type]

    def predict_many(self, xs: Sequence[Features]) -> list[Scored]:
        self.calls.append(len(xs))
        return [self.predict_one(x) for x in xs]

    def matrix_scorer(self) -> None:
        return None


def _batcher(max_size: int = 100, wait_s: float = 0.05) -> tuple[Batcher, Any, InFlight, Any]:
    model = CountingModel()
    holder: SnapshotHolder[Any] = SnapshotHolder(Serving(7, model))
    inflight = InFlight()
    sizes = Metrics(CollectorRegistry()).api_batch_instances.labels("m")
    batcher = Batcher(
        lambda: holder.current,
        max_batch_size=max_size,
        max_wait_s=wait_s,
        inflight=inflight,
        sizes=sizes,
    )
    return batcher, model, inflight, holder


def _job(*values: float) -> Job:
    return Job(len(values), rows=[{"v": v} for v in values])


async def _request(batcher: Batcher, inflight: InFlight, job: Job) -> Outcome:
    inflight.count += 1
    try:
        return await batcher.score(job)
    finally:
        inflight.leave()


def _scores(outcome: Outcome) -> list[float | None]:
    return [s.score for s in outcome.scored or []]


def test_concurrent_requests_are_scored_in_one_call() -> None:
    async def main() -> None:
        batcher, model, inflight, _ = _batcher()
        jobs = [_job(i, i + 0.5) for i in range(10)]
        outcomes = await asyncio.gather(*(_request(batcher, inflight, j) for j in jobs))
        assert model.calls == [20]
        for i, o in enumerate(outcomes):
            assert o.version == 7 and _scores(o) == [i, i + 0.5]

    asyncio.run(main())


def test_batches_are_bounded_and_a_job_is_never_split() -> None:
    async def main() -> None:
        batcher, model, inflight, _ = _batcher(max_size=5)
        jobs = [_job(1, 2) for _ in range(6)] + [_job(*range(8))]
        outcomes = await asyncio.gather(*(_request(batcher, inflight, j) for j in jobs))
        assert model.calls == [4, 4, 4, 8]
        assert _scores(outcomes[-1]) == list(range(8))

    asyncio.run(main())


def test_an_idle_server_adds_no_wait() -> None:
    async def main() -> None:
        batcher, _model, inflight, _ = _batcher(wait_s=5.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await _request(batcher, inflight, _job(1))
        assert loop.time() - started < 1.0

    asyncio.run(main())


def test_a_request_waits_for_others_in_flight_at_most_the_wait() -> None:
    async def main() -> None:
        batcher, model, inflight, _ = _batcher(wait_s=0.2)
        loop = asyncio.get_running_loop()
        inflight.count += 1  # another request is being read and never comes
        started = loop.time()
        await _request(batcher, inflight, _job(1))
        waited = loop.time() - started
        assert 0.15 <= waited < 2.0
        # when the other one leaves, the waiting batch goes at once
        task = asyncio.ensure_future(_request(batcher, inflight, _job(2)))
        await asyncio.sleep(0.01)
        assert not task.done()
        inflight.leave()
        await asyncio.wait_for(task, 1.0)
        assert model.calls == [1, 1]

    asyncio.run(main())


def test_a_request_that_gave_up_is_not_scored() -> None:
    async def main() -> None:
        batcher, model, inflight, _ = _batcher(wait_s=0.3)
        inflight.count += 1  # someone else in flight: the batch waits
        gone = asyncio.ensure_future(_request(batcher, inflight, _job(1, 2, 3)))
        await asyncio.sleep(0.01)
        gone.cancel()
        kept = await _request(batcher, inflight, _job(4))
        assert _scores(kept) == [4] and model.calls == [1]

    asyncio.run(main())


def test_a_bad_instance_fails_its_own_request_only() -> None:
    async def main() -> None:
        batcher, _model, inflight, _ = _batcher()
        bad = Job(2, rows=[{"v": 1}, {"v": 1, "bad": 1}])
        results = await asyncio.gather(
            _request(batcher, inflight, _job(1)),
            _request(batcher, inflight, bad),
            _request(batcher, inflight, _job(3)),
            return_exceptions=True,
        )
        assert _scores(results[0]) == [1]  # type: ignore[arg-type]
        assert isinstance(results[1], ApiError) and results[1].status == 422
        assert "instance 1" in results[1].message
        assert _scores(results[2]) == [3]  # type: ignore[arg-type]

    asyncio.run(main())


def test_one_version_per_batch_across_a_swap() -> None:
    async def main() -> None:
        batcher, model, inflight, holder = _batcher()
        first = [asyncio.ensure_future(_request(batcher, inflight, _job(i))) for i in range(3)]
        await asyncio.sleep(0)  # queued, not yet scored
        holder.swap(Serving(8, model))
        outcomes = await asyncio.gather(*first)
        assert {o.version for o in outcomes} == {8}
        later = await _request(batcher, inflight, _job(1))
        assert later.version == 8

    asyncio.run(main())


@pytest.mark.parametrize("n", [1, 3])
def test_columns_and_rows_of_one_batch(n: int) -> None:
    """A frame job and a row job of a compiled model: each equals its own scoring."""
    from streamserve.api.jobs import score_jobs
    from streamserve.api.parsing import v2_inputs
    from tests.unit.api_app import SPECS, trained

    learner = trained(SPECS[0])
    rows = [{"x0": 0.1 * i, "x1": 0.3} for i in range(n)]
    inst, _, _ = v2_inputs(
        {
            "inputs": [
                {"name": k, "shape": [n], "datatype": "FP64", "data": [r[k] for r in rows]}
                for k in ("x1", "x0")
            ]
        },
        100,
    )
    outcomes = score_jobs(learner, 1, [inst.job, Job(n, rows=rows), inst.job])
    want = [learner.predict_one(dict(r)).score for r in rows]
    for o in outcomes:
        assert isinstance(o, Outcome)
        got = list(o.columns.values) if o.columns is not None else _scores(o)
        assert got == pytest.approx(want, abs=1e-9)
    assert outcomes[0].columns is not None  # the compiled model scored the frame
