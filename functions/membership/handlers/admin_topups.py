"""HTTP: an operator refunds a top-up (`POST /v1/admin/topups/{topupId}/refunds`)."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.topups import RefundRequest, RefundResponse, check_idempotency_key
from membership.handlers.http import (
    ADMIN_SCOPE,
    IDEMPOTENCY_EXTENSION,
    answer,
    build_app,
    error_responses,
    model_response,
    require_subject,
)
from membership.observability import logger, metrics, tracer
from membership.services import topups

app = build_app(scope=ADMIN_SCOPE)

TopupId = Annotated[str, Path(pattern=r"^T[A-Z2-7]{24}$", description="The top-up's id")]


@app.post(
    "/v1/admin/topups/<topupId>/refunds",
    summary="Refund a top-up: unspent principal back to the payer, its bonus clawed back",
    description="Refused with 409 topup_principal_spent when the member no longer holds the "
                "principal (details.refundable says how much can still go back). Pass the "
                "provider's refund id as refundReference: its payment.refunded notice is "
                "then a no-op. Needs an Idempotency-Key header.",
    responses={201: model_response(RefundResponse, "Refunded (or the first answer, replayed)"),
               **error_responses(400, 403, 404, 409, 422, 503)},
    openapi_extensions={IDEMPOTENCY_EXTENSION: True},
    tags=["stored value", "admin"],
)
def refund_topup(topupId: TopupId, body: RefundRequest):
    subject = require_subject(app, "admin")
    key = check_idempotency_key(app.current_event.headers.get("idempotency-key"))
    result = topups.refund(topupId, body, actor=f"admin:{subject}", idempotency=(subject, key))
    if not result.replayed:
        metrics.add_metric(name="TopupsRefunded", unit=MetricUnit.Count, value=1)
    return answer(201, result.body, result.replayed)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
