"""EventBridge rule target for task events of the order system (`review.posted`).

Every failure raises, so the invocation fails, is retried, then lands in the order events'
dead-letter queue (with its alarm): a malformed event, or a review of an order this member
has not paid (unknown, not paid yet, or another member's), credits nothing.
"""
from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.tasks import OrderNotPaid, ReviewPosted
from membership.handlers.events import routed_detail
from membership.observability import logger, metrics, tracer
from membership.services import tasks

ROUTES = {"review.posted": (ReviewPosted, tasks.review_posted)}


def apply(event: dict) -> dict:
    envelope, detail, service = routed_detail(event, ROUTES, metric="TaskEventsMalformed",
                                              what="task event")
    logger.append_keys(detail_type=envelope.detail_type, event_id=envelope.id,
                       order_id=detail.order_id)
    try:
        outcomes = service(detail, envelope.time)
    except OrderNotPaid:
        metrics.add_metric(name="TaskEventsOrderNotPaid", unit=MetricUnit.Count, value=1)
        logger.warning("no paid order of this member; failing so it is retried, then kept")
        raise
    applied = [o for o in outcomes if not o.replayed]
    metrics.add_metric(name="TaskEventsApplied" if applied else "TaskEventsReplayed",
                       unit=MetricUnit.Count, value=1)
    return {"detailType": envelope.detail_type,
            "results": [{"replayed": o.replayed, "result": o.result} for o in outcomes]}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return apply(event)
