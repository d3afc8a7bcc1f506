"""TensorFlow Serving REST: predict (serving or a given version), version status and
metadata, under ``/v1/models/{model}``."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import redis

from streamserve.api import openapi as oa
from streamserve.api.answers import decisions, tf_predictions
from streamserve.api.auth import Access
from streamserve.api.context import ApiContext, version_param
from streamserve.api.exceptions import NotFound, Unavailable
from streamserve.api.http import Reply, Request, json_reply
from streamserve.api.jobs import Outcome, score_jobs
from streamserve.api.parsing import Instances, tf_instances
from streamserve.api.routing import ApiRoute
from streamserve.api.serving import ApiModel

TAG = "TensorFlow Serving REST"
PREDICT_ERRORS = (400, 404, 413, 422, 503)


async def score(ctx: ApiContext, model: ApiModel, inst: Instances, version: int | None) -> Outcome:
    """The instances scored by the serving version (batched with other requests) or by
    ``version``; their events written to Kafka first when that is on."""
    if version is None:
        outcome = await model.batcher.score(inst.job)
    else:
        serving = await model.serving(version)
        result = score_jobs(serving.model, serving.version, [inst.job])[0]
        if not isinstance(result, Outcome):
            raise result
        outcome = result
    if ctx.write_events and ctx.writer is not None and any(inst.event_ids):
        await ctx.writer.write_events(inst.events())
    return outcome


def routes(ctx: ApiContext) -> list[ApiRoute]:
    async def predict(request: Request) -> Reply:
        model = ctx.model(request)
        inst = tf_instances(request.json(), ctx.limits.max_instances)
        outcome = await score(ctx, model, inst, None)
        decided = decisions(model, outcome, inst.job.as_rows)
        return json_reply({"predictions": tf_predictions(outcome, inst.event_ids, decided)})

    async def predict_version(request: Request) -> Reply:
        model = ctx.model(request)
        version = version_param(request)
        inst = tf_instances(request.json(), ctx.limits.max_instances)
        outcome = await score(ctx, model, inst, version)
        decided = decisions(model, outcome, inst.job.as_rows)
        return json_reply({"predictions": tf_predictions(outcome, inst.event_ids, decided)})

    async def status(request: Request) -> Reply:
        model = ctx.model(request)
        state = "AVAILABLE" if model.ready() else "LOADING"
        return json_reply(_status(model.holder.current.version, state))

    async def version_status(request: Request) -> Reply:
        model = ctx.model(request)
        version = version_param(request)
        if version not in (0, model.holder.current.version):
            stored = await asyncio.to_thread(_stored, model, version)
            if not stored:
                raise NotFound(f"model {model.name!r} has no version {version}")
        return json_reply(_status(version, "AVAILABLE"))

    async def metadata(request: Request) -> Reply:
        model = ctx.model(request)
        version = model.holder.current.version
        meta = await asyncio.to_thread(model.versions.meta, version)
        snapshot: dict[str, Any] | None = None
        if meta is not None:
            snapshot = dataclasses.asdict(meta)
            for private in ("offsets", "checksum", "extra"):
                snapshot.pop(private, None)
        return json_reply(
            {
                "model_spec": {"name": model.name, "signature_name": "", "version": str(version)},
                "metadata": {
                    "task": model.spec.task.value,
                    "learner": model.spec.learner,
                    "serving_version": version,
                    "snapshot": snapshot,
                    "outputs": ["prediction", "probabilities", "score", "model_version"],
                },
            }
        )

    m, v = oa.model_param(list(ctx.models)), oa.version_param()
    return [
        ApiRoute(
            "/v1/models/{model:name}:predict",
            "POST",
            "tf_predict",
            predict,
            Access.READ,
            oa.operation(
                "predict with the serving version",
                TAG,
                ok="PredictResponse",
                params=[m],
                body="PredictRequest",
                errors=PREDICT_ERRORS,
            ),
        ),
        ApiRoute(
            "/v1/models/{model:name}/versions/{version:name}:predict",
            "POST",
            "tf_predict_version",
            predict_version,
            Access.READ,
            oa.operation(
                "predict with a given version",
                TAG,
                ok="PredictResponse",
                params=[m, v],
                body="PredictRequest",
                errors=PREDICT_ERRORS,
            ),
        ),
        ApiRoute(
            "/v1/models/{model:name}/versions/{version:name}",
            "GET",
            "tf_version_status",
            version_status,
            Access.READ,
            oa.operation(
                "a version's status", TAG, ok="VersionStatus", params=[m, v], errors=(400, 404, 503)
            ),
        ),
        ApiRoute(
            "/v1/models/{model:name}/metadata",
            "GET",
            "tf_metadata",
            metadata,
            Access.READ,
            oa.operation(
                "the model's metadata", TAG, ok="ModelMetadata", params=[m], errors=(404,)
            ),
        ),
        ApiRoute(
            "/v1/models/{model:name}",
            "GET",
            "tf_status",
            status,
            Access.READ,
            oa.operation(
                "the serving version's status", TAG, ok="VersionStatus", params=[m], errors=(404,)
            ),
        ),
    ]


def _status(version: int, state: str) -> dict[str, Any]:
    return {
        "model_version_status": [
            {
                "version": str(version),
                "state": state,
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def _stored(model: ApiModel, version: int) -> bool:
    try:
        return version in model.versions.stored()
    except redis.RedisError as exc:
        raise Unavailable(f"the snapshot store is unreachable: {type(exc).__name__}") from None
