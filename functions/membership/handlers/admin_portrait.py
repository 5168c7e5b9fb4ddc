"""HTTP: the member portrait (画像), `GET /v1/admin/members/{memberId}/portrait`."""
from __future__ import annotations

from membership.domain.portrait import Portrait
from membership.handlers.http import (
    ADMIN_SCOPE,
    MemberId,
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import portrait as service

app = build_app(scope=ADMIN_SCOPE)


@app.get(
    "/v1/admin/members/<memberId>/portrait",
    summary="The member portrait: RFM, category affinity, orders, tier history, assets, tags",
    description="RFM scores 1-5 from the program's rfm breakpoints; the tier history is the "
                "rolling growth at each of the last 12 months' ends and the tier it qualifies "
                "for. orders.complete false: orders from before the aggregates are not "
                "counted until the backfill runs.",
    responses={200: model_response(Portrait, "The portrait"), **error_responses(403, 404, 422)},
    tags=["tags", "admin"],
)
def get_portrait(memberId: MemberId):
    require_subject(app, "admin")
    answer = service.portrait(memberId)
    return view_response(200, answer)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
