"""HTTP: monthly settlement reports for the brand's operators (`/v1/admin/settlements`)."""
from __future__ import annotations

from membership.domain.settlement import SettlementReport
from membership.handlers.http import (
    ADMIN_SCOPE,
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import settlement

app = build_app(scope=ADMIN_SCOPE)


@app.get(
    "/v1/admin/settlements/<period>",
    summary="The report of one period's settlement (progress while it runs)",
    responses={200: model_response(SettlementReport, "Report"),
               **error_responses(403, 404, 422)},
    tags=["admin"],
)
def get_settlement(period: str):
    require_subject(app, "admin")
    report = settlement.report(period)
    return view_response(200, report)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
