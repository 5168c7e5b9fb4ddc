"""Counting subscriptions from before the plans' usage counters: what the backfill reads
and writes.

A subscription item without a `counted` flag (storage/subscriptions.py) was written
before the counter existed. The backfill scans for those (checkpoints as the aggregates'
backfill, storage/backfill.py, name `plan-usage`) and counts each in one transaction:
the flag set to whether its run is active, +1 to the plan's counter when it is, and +1 to
the segment's `updated`, conditional on the flag still being absent (a purchase, refund or
visit meanwhile counted it already).
"""
from __future__ import annotations

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from membership.storage.ledger import ExtraItem
from membership.storage.subscriptions import PREFIX
from membership.storage.table import connection


def scan_page(segment: int, segments: int, cursor: dict | None, limit: int
              ) -> tuple[list[tuple[str, str]], dict | None]:
    """(member id, plan id) of the uncounted subscription items of one page; the cursor."""
    from membership.config import get_settings

    request = {
        "TableName": get_settings().table_name, "Segment": segment, "TotalSegments": segments,
        "FilterExpression": "begins_with(SK, :prefix) AND NOT contains(SK, :term) "
                            "AND attribute_not_exists(#counted)",
        "ProjectionExpression": "memberId, planId",
        "ExpressionAttributeNames": {"#counted": "counted"},
        "ExpressionAttributeValues": {":prefix": {"S": PREFIX}, ":term": {"S": "#TERM#"}},
        "Limit": limit,
    }
    if cursor:
        request["ExclusiveStartKey"] = cursor
    page = connection().client.scan(**request)
    rows = [(raw["memberId"]["S"], raw["planId"]["S"]) for raw in page.get("Items", [])]
    return rows, page.get("LastEvaluatedKey")


def commit(extras: tuple[ExtraItem, ...], also_update: tuple = ()) -> bool:
    """The extras' updates (and `also_update`: (model, actions) pairs) in one transaction;
    False when a condition failed or a write conflicted (read again)."""
    t = TransactWrite(connection=connection())
    for item in extras:
        t.update(item.model, actions=item.actions, condition=item.condition)
    for model, actions in also_update:
        t.update(model, actions=actions)
    try:
        t._commit()
    except TransactWriteError as exc:
        if exc.cause_response_code == "TransactionCanceledException":
            return False
        raise
    return True
