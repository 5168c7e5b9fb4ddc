"""Stream → EventBridge: publishes the outbox that each committed change carries.

Guard items (`SOURCE#...`) hold the events of the change they guard, written in the same
transaction, so an event goes out if and only if its change committed.
"""
from __future__ import annotations

from membership import aws
from membership.config import get_settings
from membership.observability import logger, metrics, tracer

SOURCE = "membership"
MAX_ENTRIES_PER_CALL = 10


def _events_client():
    return aws.client("events")


def outbox_entries(record: dict) -> list[dict]:
    image = record.get("dynamodb", {}).get("NewImage") or {}
    outbox = image.get("outbox", {}).get("L") or []
    member = image.get("memberId", {}).get("S")
    entries = []
    for event in outbox:
        fields = event.get("M", {})
        entries.append({
            "Source": SOURCE,
            "DetailType": fields["detailType"]["S"],
            "Detail": fields["detail"]["S"],
            "EventBusName": get_settings().event_bus_name,
            "Resources": [f"member/{member}"] if member else [],
        })
    return entries


def publish(entries: list[dict]) -> None:
    for i in range(0, len(entries), MAX_ENTRIES_PER_CALL):
        batch = entries[i:i + MAX_ENTRIES_PER_CALL]
        response = _events_client().put_events(Entries=batch)
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused {response['FailedEntryCount']} entries")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    """Reports per-record failures so only the failed records are retried."""
    failures = []
    for record in event.get("Records", []):
        try:
            entries = outbox_entries(record)
            if entries:
                publish(entries)
        except Exception:  # noqa: BLE001 - report the record as failed, go on with the rest
            logger.exception("publishing failed", extra={"eventID": record.get("eventID")})
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}
