"""EventBridge: the payment provider's `payment.refunded` notice refunds a top-up.

Delivery is at least once: the refund reference is the posting's source key, so a
redelivery is a no-op. A refund the ledger refuses (principal spent, unknown top-up)
raises, so after the retries the event lands in the dead-letter queue for an operator:
the provider has paid money back that the member still holds as stored value, or holds
no longer, and a person must settle it (docs/topups.md).
"""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from membership.domain.instants import Instant
from membership.domain.topups import MAX_FEN, Reference, RefundRequest
from membership.handlers.events import parsed_detail
from membership.observability import logger, metrics, tracer
from membership.services import topups


class PaymentRefunded(BaseModel):
    """The `detail` of payment.refunded (events/schemas/payment.refunded.json)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    payment_reference: Reference = Field(alias="paymentReference")
    refund_reference: Reference = Field(alias="refundReference")
    amount: StrictInt = Field(gt=0, le=MAX_FEN)
    channel: Annotated[str, StringConstraints(max_length=32)] | None = None
    reason: Annotated[str, StringConstraints(max_length=256)] | None = None
    occurred_at: Instant = Field(alias="occurredAt")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    notice = parsed_detail(event, PaymentRefunded, metric="PaymentRefundsMalformed",
                           what="payment.refunded")
    logger.append_keys(paymentReference=notice.payment_reference,
                       refundReference=notice.refund_reference)
    try:
        result = topups.refund_payment(notice.payment_reference, RefundRequest(
            refundReference=notice.refund_reference, amount=notice.amount,
            reason=notice.reason))
    except Exception:
        metrics.add_metric(name="PaymentRefundsFailed", unit=MetricUnit.Count, value=1)
        logger.exception("payment.refunded could not be applied")
        raise
    if not result.replayed:
        metrics.add_metric(name="TopupsRefunded", unit=MetricUnit.Count, value=1)
    return {"replayed": result.replayed, **result.body}
