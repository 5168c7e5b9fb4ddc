"""HTTP: an operator refunds a paid-plan term
(`POST /v1/admin/subscriptions/{subscriptionId}/refunds`)."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.subscription_refunds import (
    SubscriptionRefundRequest,
    SubscriptionRefundResponse,
)
from membership.handlers.http import (
    ADMIN_SCOPE,
    answer,
    build_app,
    error_responses,
    model_response,
    require_subject,
)
from membership.observability import logger, metrics, tracer
from membership.services import subscription_refunds

app = build_app(scope=ADMIN_SCOPE)

SubscriptionId = Annotated[str, Path(
    pattern=r"^[A-Za-z0-9]{1,64}\.[A-Za-z0-9_-]{1,16}$",
    description="`<memberId>.<planId>`, as the member's subscription read shows it")]


@app.post(
    "/v1/admin/subscriptions/<subscriptionId>/refunds",
    summary="Refund a paid-plan term: pro rata minus benefits used, or in full in cooling-off",
    description="Exactly once per refundId: the same refundId and body answer the first "
                "refund again (Idempotent-Replayed: true); the same refundId with another "
                "body is 409 payload_mismatch. termId absent: the latest unrefunded paid "
                "term. The term ends at once. Paid from stored value: the amount goes back "
                "to the balance in the same posting; paid by a provider: "
                "subscription.refunded carries the amount for the provider to pay out.",
    responses={201: model_response(SubscriptionRefundResponse,
                                   "Refunded (or the first answer, replayed)"),
               **error_responses(400, 403, 404, 409, 422, 503)},
    tags=["paid membership", "admin"],
)
def refund_subscription(subscriptionId: SubscriptionId, body: SubscriptionRefundRequest):
    subject = require_subject(app, "admin")
    result = subscription_refunds.refund(subscriptionId, body, actor=f"admin:{subject}")
    if not result.replayed:
        metrics.add_metric(name="SubscriptionTermsRefunded", unit=MetricUnit.Count, value=1)
    return answer(201, result.body, result.replayed)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
