"""EventBridge rule target for the order system's events.

Every failure raises, so the invocation fails and is retried, then lands in the rule's
dead-letter queue (with an alarm on its depth):
- a malformed event (not an envelope, a detail its model refuses, refused text, a
  timestamp without an offset, out of range or in the future) raises MalformedEvent and
  changes nothing;
- an event about an order whose payment has not landed (a refund or completion that
  overtook its `order.paid`) raises OrderNotPaidYet: not applied, not dropped, retried;
- a paid order whose amounts differ from its hold raises HoldMismatch: never fixed quietly;
- an event about a member who closed the account raises MemberClosed: the ledger is
  kept but takes nothing more (docs/privacy.md), so the brand settles it by hand;
- an event whose key was applied with another payload (order.paid with other amounts or
  lines, a refundId reused for other lines) raises PayloadMismatch: never a silent replay.
"""
from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.checkout import (
    OrderCancelled,
    OrderCompleted,
    OrderNotPaidYet,
    OrderPaid,
    OrderRefunded,
)
from membership.domain.ledger import PayloadMismatch
from membership.errors import MemberClosed
from membership.handlers.events import routed_detail
from membership.observability import logger, metrics, tracer
from membership.services import orders

ROUTES = {
    "order.paid": (OrderPaid, orders.paid),
    "order.cancelled": (OrderCancelled, orders.cancelled),
    "order.completed": (OrderCompleted, orders.completed),
    "order.refunded": (OrderRefunded, orders.refunded),
}


def _routes_for(event: object) -> dict:
    """A guest's order.paid (no memberId) only counts, for penetration (docs/metrics.md)."""
    if (isinstance(event, dict) and event.get("detail-type") == "order.paid"
            and isinstance(event.get("detail"), dict) and "memberId" not in event["detail"]):
        from membership.domain.metrics import GuestOrderPaid
        from membership.services.metrics import guest_paid

        return {"order.paid": (GuestOrderPaid, guest_paid)}
    return ROUTES


def apply(event: dict) -> dict:
    """Parse one EventBridge event and apply it; returns what the effect answered."""
    envelope, detail, service = routed_detail(event, _routes_for(event),
                                              metric="OrderEventsMalformed",
                                              what="order event")
    logger.append_keys(detail_type=envelope.detail_type, event_id=envelope.id,
                       order_id=detail.order_id)
    try:
        outcome = service(detail)
    except OrderNotPaidYet:
        metrics.add_metric(name="OrderEventsEarly", unit=MetricUnit.Count, value=1)
        logger.warning("the order's payment has not landed yet; failing so it is retried")
        raise
    except MemberClosed:
        metrics.add_metric(name="OrderEventsForClosedMembers", unit=MetricUnit.Count, value=1)
        logger.error("the member closed the account; failing so the event reaches the "
                     "dead-letter queue", extra={"member_id": detail.member_id})
        raise
    except PayloadMismatch:
        metrics.add_metric(name="OrderEventsPayloadMismatch", unit=MetricUnit.Count, value=1)
        logger.error("an event key was applied before with another payload; failing so it "
                     "reaches the dead-letter queue")
        raise
    metrics.add_metric(name="OrderEventsReplayed" if outcome.replayed else "OrderEventsApplied",
                       unit=MetricUnit.Count, value=1)
    return {"detailType": envelope.detail_type, "replayed": outcome.replayed,
            "result": outcome.result}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return apply(event)
