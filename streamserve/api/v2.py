"""Open Inference Protocol (KServe v2) REST: server and model metadata, readiness, and
inference with one named input per feature, under ``/v2``."""

from __future__ import annotations

from typing import Any

from streamserve.api import openapi as oa
from streamserve.api.answers import PREDICTION_TYPES, decisions, v2_outputs
from streamserve.api.auth import Access
from streamserve.api.context import ApiContext, version_param
from streamserve.api.exceptions import ApiError
from streamserve.api.http import Reply, Request, json_reply
from streamserve.api.parsing import v2_inputs
from streamserve.api.routing import ApiRoute
from streamserve.api.serving import ApiModel
from streamserve.api.tfserving import score
from streamserve.learners.spec import Task

TAG = "Open Inference Protocol v2"
INFER_ERRORS = (400, 404, 413, 422, 503)


class NotReady(ApiError):
    """The protocol answers "not ready" with a 4xx."""

    status = 400


def routes(ctx: ApiContext) -> list[ApiRoute]:
    async def server_metadata(request: Request) -> Reply:
        return json_reply({"name": "streamserve", "version": ctx.server_version, "extensions": []})

    async def model_metadata(request: Request) -> Reply:
        return json_reply(_metadata(ctx.model(request)))

    async def model_ready(request: Request) -> Reply:
        model = ctx.model(request)
        if not model.ready():
            raise NotReady(f"model {model.name!r} has not loaded its serving snapshot yet")
        return json_reply({"ready": True, "models": {model.name: model.holder.current.version}})

    async def infer(request: Request) -> Reply:
        return await _infer(ctx, request, None)

    async def infer_version(request: Request) -> Reply:
        return await _infer(ctx, request, version_param(request))

    m, v = oa.model_param(list(ctx.models)), oa.version_param()
    return [
        ApiRoute(
            "/v2/models/{model:name}/versions/{version:name}/infer",
            "POST",
            "v2_infer_version",
            infer_version,
            Access.READ,
            oa.operation(
                "infer with a given version",
                TAG,
                ok="V2InferResponse",
                params=[m, v],
                body="V2InferRequest",
                errors=INFER_ERRORS,
            ),
        ),
        ApiRoute(
            "/v2/models/{model:name}/infer",
            "POST",
            "v2_infer",
            infer,
            Access.READ,
            oa.operation(
                "infer with the serving version",
                TAG,
                ok="V2InferResponse",
                params=[m],
                body="V2InferRequest",
                errors=INFER_ERRORS,
            ),
        ),
        ApiRoute(
            "/v2/models/{model:name}/ready",
            "GET",
            "v2_model_ready",
            model_ready,
            Access.READ,
            oa.operation(
                "whether the model is ready", TAG, ok="Ready", params=[m], errors=(400, 404)
            ),
        ),
        ApiRoute(
            "/v2/models/{model:name}",
            "GET",
            "v2_model_metadata",
            model_metadata,
            Access.READ,
            oa.operation("model metadata", TAG, ok="V2ModelMetadata", params=[m], errors=(404,)),
        ),
        ApiRoute(
            "/v2",
            "GET",
            "v2_server_metadata",
            server_metadata,
            Access.OPEN,
            oa.operation("server metadata", TAG, ok="V2ServerMetadata"),
        ),
    ]


async def _infer(ctx: ApiContext, request: Request, version: int | None) -> Reply:
    model = ctx.model(request)
    inst, wanted, request_id = v2_inputs(request.json(), ctx.limits.max_instances)
    outcome = await score(ctx, model, inst, version)
    answer: dict[str, Any] = {
        "model_name": model.name,
        "model_version": str(outcome.version),
        "outputs": v2_outputs(
            model.spec.task, outcome, wanted, decisions(model, outcome, inst.job.as_rows)
        ),
    }
    if request_id is not None:
        answer["id"] = request_id
    return json_reply(answer)


def _metadata(model: ApiModel) -> dict[str, Any]:
    task = model.spec.task
    outputs = [
        {"name": "prediction", "datatype": PREDICTION_TYPES[task], "shape": [-1]},
        {"name": "score", "datatype": "FP64", "shape": [-1]},
    ]
    if task is not Task.REGRESSION:
        outputs.append({"name": "probability_<class>", "datatype": "FP64", "shape": [-1]})
    return {
        "name": model.name,
        "versions": [str(model.holder.current.version)],
        "platform": f"streamserve/{task.value}/{model.spec.learner}",
        "inputs": [],  # any named features: one input per feature
        "outputs": outputs,
    }
