"""``POST /v1/models/{model}:feedback``: labels written to ``feedback`` (an admin token
is required), so they train the model as streamed labels do once the joiner pairs them
with their events."""

from __future__ import annotations

from streamserve.api import openapi as oa
from streamserve.api.auth import Access
from streamserve.api.context import ApiContext
from streamserve.api.exceptions import Forbidden
from streamserve.api.http import Reply, Request, json_reply
from streamserve.api.parsing import feedback_labels
from streamserve.api.routing import ApiRoute

TAG = "feedback"


def routes(ctx: ApiContext) -> list[ApiRoute]:
    async def feedback(request: Request) -> Reply:
        model = ctx.model(request)
        labels = feedback_labels(request.json(), model.spec.task, ctx.limits.max_instances)
        if ctx.writer is None:
            raise Forbidden("feedback is off: the API has no Kafka producer")
        await ctx.writer.write_labels(labels)
        return json_reply({"written": len(labels)})

    return [
        ApiRoute(
            "/v1/models/{model:name}:feedback",
            "POST",
            "feedback",
            feedback,
            Access.ADMIN,
            oa.operation(
                "write labels to the feedback topic",
                TAG,
                ok="FeedbackResponse",
                params=[oa.model_param(list(ctx.models))],
                body="FeedbackRequest",
                errors=(400, 401, 403, 404, 413, 503),
            ),
        )
    ]
