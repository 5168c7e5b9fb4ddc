"""HTTP: the program's public rules (`/v1/program`)."""
from __future__ import annotations

from membership.domain.program import Program
from membership.handlers.http import (
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.storage.program import load_program

app = build_app()


@app.get(
    "/v1/program",
    summary="Tiers with thresholds and benefits, top-up offers, points, check-in and task rules",
    responses={200: model_response(Program, "The program"), **error_responses(403)},
    tags=["program"],
)
def get_program():
    require_subject(app, "member")
    return view_response(200, load_program())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
