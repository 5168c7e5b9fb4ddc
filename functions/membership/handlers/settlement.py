"""Monthly settlement: the scheduled coordinator and the SQS segment workers.

The coordinator runs on the 1st at 00:05 in the program's time zone (EventBridge
Scheduler passes its scheduled time, so a late or retried invocation still settles the
right month) and enqueues one message per scan segment. A worker settles its segment
page by page and, before its time runs out, hands the rest to a fresh invocation by
re-enqueueing the same message: the cursor lives in the segment's checkpoint item.
"""
from __future__ import annotations

import json
from datetime import datetime

from membership import aws
from membership.config import get_settings
from membership.domain import calendar
from membership.errors import Conflict
from membership.observability import logger, metrics, tracer
from membership.services import settlement

MAX_BATCH = 10


def _sqs_client():
    return aws.client("sqs")


def enqueue(messages: list[dict]) -> None:
    """One SQS message per segment, ten per call."""
    url = get_settings().settlement_queue_url
    for i in range(0, len(messages), MAX_BATCH):
        batch = messages[i:i + MAX_BATCH]
        response = _sqs_client().send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "MessageBody": json.dumps(m, sort_keys=True)}
            for n, m in enumerate(batch)])
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused {len(response['Failed'])} segment messages")


def _run_time(event: dict) -> datetime | None:
    scheduled = (event or {}).get("scheduledTime")
    return calendar.parse_iso(scheduled) if scheduled else None


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def coordinator(event, context):
    """Scheduler input: {"scheduledTime": ...}; an operator may pass {"period": "YYYY-MM"}."""
    run = settlement.start((event or {}).get("period"), now=_run_time(event), enqueue=enqueue)
    logger.info("settlement started", extra={"period": run.period, "segments": run.segments,
                                             "status": run.status})
    return {"period": run.period, "segments": run.segments, "status": run.status}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def worker(event, context):
    """Settles the segment of each message; failed messages go back to the queue."""
    margin = get_settings().settlement_stop_margin_ms
    failures = []
    for record in event.get("Records", []):
        try:
            message = json.loads(record["body"])
            outcome = settlement.settle_segment(
                message["period"], int(message["segment"]), int(message["segments"]),
                should_stop=lambda: context.get_remaining_time_in_millis() < margin)
            if not outcome.done:
                enqueue([message])  # the rest of the segment, from its checkpoint
        except Conflict as exc:
            # Another invocation owns this segment's checkpoint: it carries on, this stops.
            # Or the period is report-only now: a later month was settled meanwhile.
            logger.warning("segment not settled here", extra={"code": exc.code})
        except Exception:  # noqa: BLE001 - the message goes back to the queue, then the DLQ
            logger.exception("segment failed", extra={"messageId": record.get("messageId")})
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
