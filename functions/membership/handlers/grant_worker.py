"""SQS target: applies bulk-grant chunks (membership.services.grants.apply_chunk) and
expands tag grants into chunks (membership.services.tag_grants.expand).

A chunk that cannot finish (the store stayed busy, an unexpected error) is reported as a
batch item failure: SQS delivers it again, and after the queue's maxReceiveCount it
waits in the dead-letter queue, whose first message raises an alarm. Redelivery is safe:
every member's credit is guarded by (grant, member), and an expansion step reads back
the segment pages it froze.
"""
from __future__ import annotations

import json

from aws_lambda_powertools.metrics import MetricUnit

from membership.handlers.grant_queue import enqueue
from membership.observability import logger, metrics, tracer
from membership.services import (
    coupon_grants,  # noqa: F401 (registers the "coupon" kind)
    grants,
    tag_grants,
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    failures = []
    for record in event.get("Records", []):
        try:
            message = json.loads(record["body"])
            if "expand" in message:
                pages = tag_grants.expand(message["grantId"], int(message["expand"]), enqueue)
                metrics.add_metric(name="GrantPagesExpanded", unit=MetricUnit.Count,
                                   value=pages)
                continue
            tally = grants.apply_chunk(message["grantId"], int(message["chunk"]),
                                       list(message["memberIds"]))
            metrics.add_metric(name="GrantMembersCredited", unit=MetricUnit.Count,
                               value=tally.done)
            if tally.failed:
                metrics.add_metric(name="GrantMembersFailed", unit=MetricUnit.Count,
                                   value=tally.failed)
        except Exception:  # noqa: BLE001 - the message goes back to the queue, then the DLQ
            logger.exception("grant chunk failed", extra={"messageId": record.get("messageId")})
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
