"""HTTP: the program's metrics of a month, `GET /v1/admin/metrics?period=YYYY-MM`."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from membership.domain.metrics import Metrics
from membership.handlers.http import (
    ADMIN_SCOPE,
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import metrics as service

app = build_app(scope=ADMIN_SCOPE)


@app.get(
    "/v1/admin/metrics",
    summary="The program's metrics of a month: members, penetration, conversion, renewal, "
            "tiers, liabilities, breakage",
    description="Flows (orders and spend of members and guests, new members, points issued, "
                "paid plans started and renewed) from counters the postings keep; stocks "
                "(members, tiers, points and stored-value liabilities, paid members, paid "
                "terms that ended) from the month's settlement run (null before it ran; "
                "stocksFrom says its status), and the free members at the month's start from "
                "the previous month's completed run. Ratios are basis points rounded down, "
                "null when a side is unknown or the denominator is 0 (docs/metrics.md).",
    responses={200: model_response(Metrics, "The month's metrics"),
               **error_responses(403, 422)},
    tags=["metrics", "admin"],
)
def get_metrics(period: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                                             description="YYYY-MM")]):
    require_subject(app, "admin")
    answer = service.metrics(period)
    return view_response(200, answer)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
