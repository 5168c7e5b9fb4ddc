"""EventBridge: the payment provider's `subscription.charged` renews a paid plan.

Delivery is at least once: the (subscription, cycle) is the posting's source key, so a
redelivery replays. A malformed event or a refused charge (wrong amount, unknown
subscription, reference used, another payload for a paid cycle) is counted, logged and
raised: after the retries it waits in the dead-letter queue, whose alarm (and the
SubscriptionChargesRefused metric's) calls an operator; the provider took money that
extended nothing. A cycle that arrives before the one it follows fails too, and its
retries apply it once the earlier cycle has landed (docs/subscriptions.md).
"""
from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.subscription_charges import (
    ChargeOutOfOrder,
    ChargeRefused,
    SubscriptionCharged,
)
from membership.handlers.events import parsed_detail
from membership.observability import logger, metrics, tracer
from membership.services import subscription_charges


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    charge = parsed_detail(event, SubscriptionCharged, metric="SubscriptionChargesRefused",
                           what="subscription.charged")
    logger.append_keys(subscriptionId=charge.subscription_id, cycle=charge.cycle)
    try:
        outcome = subscription_charges.apply(charge)
    except ChargeRefused as exc:
        metrics.add_metric(name="SubscriptionChargesRefused", unit=MetricUnit.Count, value=1)
        logger.warning("subscription.charged refused; failing so it reaches the DLQ",
                       extra={"code": exc.code, "reason": exc.message})
        raise
    except ChargeOutOfOrder as exc:
        metrics.add_metric(name="SubscriptionChargesOutOfOrder", unit=MetricUnit.Count,
                           value=1)
        logger.warning("subscription.charged before its previous cycle; retried",
                       extra={"reason": exc.message})
        raise
    result = outcome.result
    if not outcome.replayed:
        metrics.add_metric(name="SubscriptionChargesDuplicate" if result.get("duplicate")
                           else "SubscriptionChargesApplied", unit=MetricUnit.Count, value=1)
    return {"replayed": outcome.replayed, **result}
