"""HTTP: bulk grants (`POST /v1/admin/grants`, `GET /v1/admin/grants/{grantId}`).

The POST answers 202 once the grant is stored and its chunks are on the queue; the
grant worker (membership.handlers.grant_worker) applies them.
"""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.grants import GrantRequest, GrantView
from membership.handlers.grant_queue import enqueue
from membership.handlers.http import (
    ADMIN_SCOPE,
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import (
    coupon_grants,  # noqa: F401 (registers the "coupon" kind)
    grants,
)

app = build_app(scope=ADMIN_SCOPE)

GrantId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$", description="The grant's id")]


@app.post(
    "/v1/admin/grants",
    summary="Grant points or a coupon to up to 10,000 members or to a tag, asynchronously",
    description=(
        "Answers 202 with the grant's progress; GET /v1/admin/grants/{grantId} follows it. "
        "Each member is credited once whatever the retries (a lot with the normal expiry, "
        "or one coupon of `templateId`; reason code and operator on the entry). Unknown "
        "member ids count as failed. With `tag` instead of `memberIds`, the worker expands "
        "the tag's segment (members carrying it who consent to marketing) page by page: "
        "`expanded` turns true and `total` is final when it ends. The same grantId and "
        "body answer the grant again; another body is 409 grant_id_reused."),
    responses={202: model_response(GrantView, "Accepted"),
               **error_responses(400, 403, 409, 422, 503)},
    tags=["admin", "grants"],
)
def post_grant(body: GrantRequest):
    subject = require_subject(app, "admin")
    view, created = grants.create(body, actor=subject, enqueue=enqueue)
    if created:
        metrics.add_metric(name="GrantsAccepted", unit=MetricUnit.Count, value=1)
        logger.info("grant accepted", extra={"grantId": view.grant_id, "total": view.total,
                                             "by": subject})
    return view_response(202, view)


@app.get(
    "/v1/admin/grants/<grantId>",
    summary="A grant's progress: status, total, done, failed and the first failures",
    responses={200: model_response(GrantView, "Progress"), **error_responses(403, 404, 422)},
    tags=["admin", "grants"],
)
def get_grant(grantId: GrantId):
    require_subject(app, "admin")
    return view_response(200, grants.progress(grantId))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
