"""HTTP: a member tops up stored value (`POST /v1/members/me/topups`)."""
from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.topups import TopupRequest, TopupResponse, check_idempotency_key
from membership.handlers.http import (
    IDEMPOTENCY_EXTENSION,
    JSON,
    build_app,
    error_responses,
    model_response,
    require_subject,
)
from membership.observability import logger, metrics, tracer
from membership.services import topups

app = build_app()

REPLAYED_HEADER = "Idempotent-Replayed"


def answer(status: int, body: dict, replayed: bool) -> Response:
    import json

    return Response(status_code=status, content_type=JSON, body=json.dumps(body),
                    headers={REPLAYED_HEADER: "true" if replayed else "false"})


@app.post(
    "/v1/members/me/topups",
    summary="Top up stored value with a verified payment: principal plus the offer's bonus",
    description="Needs an Idempotency-Key header. The same paymentReference credits once, "
                "whatever the key; a key reused with another body is refused (422 "
                "idempotency_key_reused). A replay answers the first response again, with "
                "Idempotent-Replayed: true.",
    responses={201: model_response(TopupResponse, "Credited (or the first answer, replayed)"),
               **error_responses(400, 403, 404, 409, 422, 503)},
    openapi_extensions={IDEMPOTENCY_EXTENSION: True},
    tags=["stored value"],
)
def create_topup(body: TopupRequest):
    subject = require_subject(app, "member")
    key = check_idempotency_key(app.current_event.headers.get("idempotency-key"))
    result = topups.top_up(subject, key, body)
    if not result.replayed:
        metrics.add_metric(name="TopupsCredited", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="TopupPrincipalFen", unit=MetricUnit.Count,
                           value=result.body["principal"])
    return answer(201, result.body, result.replayed)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
