"""The order-aggregates backfill: its checkpoints and what it reads.

PK                    SK                item
BACKFILL#<name>       SEGMENT#<nnnnn>   a scan segment's cursor, counts so far, done flag

A checkpoint is written after each page, so a killed run resumes from its last page; the
members of that page are seen again, and those already backfilled are skipped. `updated`
is not part of that write: each member's own transaction adds 1 to it (`count_written`),
so a run killed in the middle of a page neither loses nor repeats a member it wrote.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from membership.domain.checkout import Settlement
from membership.storage.models import OrderItem, member_pk
from membership.storage.table import TableModel, connection


class BackfillItem(TableModel):
    cursor = UnicodeAttribute(null=True)
    done = NumberAttribute(default=0)
    seen = NumberAttribute(default=0)
    updated = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    of = NumberAttribute(null=True)  # the run's segment count: a cursor means nothing in another

    @staticmethod
    def key(name: str, segment: int) -> tuple[str, str]:
        return f"BACKFILL#{name}", f"SEGMENT#{segment:05d}"


@dataclass
class Checkpoint:
    segment: int
    cursor: dict | None = None
    done: bool = False
    seen: int = 0
    updated: int = 0
    failed: int = 0
    of: int | None = None


def load(name: str, segment: int) -> Checkpoint:
    try:
        item = BackfillItem.get(*BackfillItem.key(name, segment), consistent_read=True)
    except BackfillItem.DoesNotExist:
        return Checkpoint(segment=segment)
    return Checkpoint(segment=segment, cursor=json.loads(item.cursor) if item.cursor else None,
                      done=bool(item.done), seen=int(item.seen or 0),
                      updated=int(item.updated or 0), failed=int(item.failed or 0),
                      of=int(item.of) if item.of is not None else None)


def save(name: str, cp: Checkpoint) -> None:
    """The page's progress; `updated` is left alone (count_written moves it)."""
    item = BackfillItem(*BackfillItem.key(name, cp.segment))
    actions = [BackfillItem.done.set(int(cp.done)), BackfillItem.seen.set(cp.seen),
               BackfillItem.failed.set(cp.failed)]
    if cp.of is not None:
        actions.append(BackfillItem.of.set(cp.of))
    actions.append(BackfillItem.cursor.set(json.dumps(cp.cursor, sort_keys=True))
                   if cp.cursor else BackfillItem.cursor.remove())
    item.update(actions=actions)


def count_written(name: str, segment: int) -> tuple[BackfillItem, list]:
    """+1 to the segment's `updated`, for the member's own transaction."""
    return (BackfillItem(*BackfillItem.key(name, segment)), [BackfillItem.updated.add(1)])


def scan_page(segment: int, segments: int, cursor: dict | None, limit: int
              ) -> tuple[list[tuple[str, bool]], dict | None]:
    """(member id, aggregates complete) of one page of member items; the next cursor."""
    from membership.config import get_settings

    request = {
        "TableName": get_settings().table_name, "Segment": segment, "TotalSegments": segments,
        "FilterExpression": "SK = :member", "ProjectionExpression": "memberId, ordStats",
        "ExpressionAttributeValues": {":member": {"S": "MEMBER"}}, "Limit": limit,
    }
    if cursor:
        request["ExclusiveStartKey"] = cursor
    page = connection().client.scan(**request)
    rows = []
    for raw in page.get("Items", []):
        stats = raw.get("ordStats", {}).get("S")
        rows.append((raw["memberId"]["S"], bool(stats and json.loads(stats).get("complete"))))
    return rows, page.get("LastEvaluatedKey")


def member_orders(member_id: str) -> Iterator[Settlement]:
    for item in OrderItem.query(member_pk(member_id), OrderItem.SK.startswith("ORDER#"),
                                consistent_read=True):
        yield Settlement.model_validate_json(item.document)
