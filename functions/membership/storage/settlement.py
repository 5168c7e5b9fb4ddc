"""Settlement items: the run and its report, one checkpoint per scan segment, the scan.

PK                   SK                 item
SETTLEMENT#<period>  RUN                the run: segments, progress, then the report
SETTLEMENT#<period>  SEGMENT#<nnnnn>    a segment's checkpoint: cursor + tally so far
SOURCE#settlement:<period>  SOURCE      guard of the completed run, carrying its event

Each member changed by a period has its own guard `settlement:<period>:<memberId>`,
written by the ledger posting that changed it.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from membership.domain import calendar
from membership.domain.settlement import Snapshot, Tally
from membership.errors import Conflict, NotFound
from membership.storage.models import GuardItem, TimeAttribute
from membership.storage.table import TableModel, connection

MAX_FAILED_IDS = 100
# Only what the decision reads: the scan still pays for whole items, the client does not
# decode what it does not need.
SETTLEMENT_ATTRIBUTES = ("PK", "SK", "memberId", "tier", "growth", "ptsNextAt", "plan",
                         "settled", "tierSince",
                         # What the tag rules read (storage/tags.py SCAN_ATTRIBUTES).
                         "createdAt", "ordStats", "tags", "topupTotal", "status",
                         # The birthday gift (domain/birthdays.py).
                         "birthday", "bdayGiftYear")
# What only the metrics read (docs/metrics.md): the members' stocks, and the paid-plan
# terms' dates for conversion and renewal (the scan reads these items anyway).
METRICS_ATTRIBUTES = ("ptsA", "ptsP", "balP", "balB",
                      "term", "startsAt", "endsAt", "refundedAt")
MEMBER_ATTRIBUTES = SETTLEMENT_ATTRIBUTES + METRICS_ATTRIBUTES


def _projection(names: tuple[str, ...]) -> str:
    # Of the paid plan only its end matters.
    return ", ".join(f"#a{i}.ends_at" if name == "plan" else f"#a{i}"
                     for i, name in enumerate(names))


TERM_MARK = "#TERM#"  # in the sort key of a term item, and of nothing else


class SettlementNotFound(NotFound):
    code = "settlement_not_found"


class SegmentTaken(Conflict):
    """Another worker moved this segment's checkpoint: this one stops."""

    code = "segment_taken"


def settlement_pk(period: str) -> str:
    return f"SETTLEMENT#{period}"


def run_guard_key(period: str) -> str:
    return f"settlement:{period}"


class SettlementRunItem(TableModel):
    period = UnicodeAttribute()
    status = UnicodeAttribute()  # running | completed
    segments = NumberAttribute()
    segments_done = NumberAttribute(attr_name="segmentsDone", default=0)
    started_at = TimeAttribute(attr_name="startedAt")
    completed_at = TimeAttribute(attr_name="completedAt", null=True)
    report = UnicodeAttribute(null=True)  # JSON of the SettlementReport once completed

    @staticmethod
    def key(period: str) -> tuple[str, str]:
        return settlement_pk(period), "RUN"


class SegmentItem(TableModel):
    segment = NumberAttribute()
    status = UnicodeAttribute()  # running | done
    cursor = UnicodeAttribute(null=True)  # JSON of the scan's LastEvaluatedKey
    tally = UnicodeAttribute()  # JSON of the Tally so far
    pages = NumberAttribute(default=0)
    failed_members = ListAttribute(attr_name="failedMembers", null=True)
    updated_at = TimeAttribute(attr_name="updatedAt")
    version = NumberAttribute(default=0)

    @staticmethod
    def key(period: str, segment: int) -> tuple[str, str]:
        return settlement_pk(period), f"SEGMENT#{segment:05d}"


@dataclass(frozen=True)
class Run:
    period: str
    status: str
    segments: int
    segments_done: int
    started_at: datetime
    completed_at: datetime | None
    report: dict | None


@dataclass(frozen=True)
class Checkpoint:
    period: str
    segment: int
    done: bool = False
    cursor: dict | None = None
    tally: Tally = field(default_factory=Tally)
    pages: int = 0
    failed_members: tuple[str, ...] = ()
    version: int = 0  # 0: never written


def _run(item: SettlementRunItem) -> Run:
    return Run(period=item.period, status=item.status, segments=int(item.segments),
               segments_done=int(item.segments_done or 0), started_at=item.started_at,
               completed_at=item.completed_at,
               report=json.loads(item.report) if item.report else None)


def get_run(period: str) -> Run | None:
    try:
        return _run(SettlementRunItem.get(*SettlementRunItem.key(period), consistent_read=True))
    except SettlementRunItem.DoesNotExist:
        return None


def create_run(period: str, segments: int, started_at: datetime) -> Run:
    """The period's run; an existing one is kept as it is (a re-triggered schedule)."""
    item = SettlementRunItem(*SettlementRunItem.key(period), period=period, status="running",
                             segments=segments, segments_done=0, started_at=started_at)
    try:
        item.save(condition=SettlementRunItem.PK.does_not_exist())
    except PutError as exc:
        if getattr(exc, "cause_response_code", "") != "ConditionalCheckFailedException":
            raise
        run = get_run(period)
        if run is None:
            raise
        return run
    return _run(item)


def _checkpoint(period: str, item: SegmentItem) -> Checkpoint:
    return Checkpoint(
        period=period, segment=int(item.segment), done=item.status == "done",
        cursor=json.loads(item.cursor) if item.cursor else None,
        tally=Tally.model_validate_json(item.tally), pages=int(item.pages or 0),
        failed_members=tuple(item.failed_members or ()), version=int(item.version),
    )


def load_checkpoint(period: str, segment: int) -> Checkpoint:
    try:
        item = SegmentItem.get(*SegmentItem.key(period, segment), consistent_read=True)
    except SegmentItem.DoesNotExist:
        return Checkpoint(period=period, segment=segment)
    return _checkpoint(period, item)


def _segment_item(cp: Checkpoint, now: datetime) -> SegmentItem:
    return SegmentItem(
        *SegmentItem.key(cp.period, cp.segment), segment=cp.segment,
        status="done" if cp.done else "running",
        cursor=json.dumps(cp.cursor, sort_keys=True) if cp.cursor else None,
        tally=cp.tally.model_dump_json(), pages=cp.pages,
        failed_members=list(cp.failed_members[:MAX_FAILED_IDS]) or None,
        updated_at=now, version=cp.version + 1,
    )


def _expected(before: Checkpoint):
    if before.version == 0:
        return SegmentItem.PK.does_not_exist()
    return SegmentItem.version == before.version


def save_checkpoint(before: Checkpoint, after: Checkpoint, now: datetime) -> Checkpoint:
    """One conditional put per page: the cursor and the tally move together."""
    item = _segment_item(after, now)
    try:
        item.save(condition=_expected(before))
    except PutError as exc:
        if getattr(exc, "cause_response_code", "") == "ConditionalCheckFailedException":
            raise SegmentTaken(f"segment {before.segment} of {before.period} moved") from None
        raise
    return replace(after, version=after.version + 1)


def finish_segment(before: Checkpoint, after: Checkpoint, now: datetime) -> Checkpoint:
    """The last checkpoint and the run's progress count, in one transaction."""
    done = replace(after, done=True, cursor=None)
    t = TransactWrite(connection=connection())
    t.save(_segment_item(done, now), condition=_expected(before))
    run = SettlementRunItem(*SettlementRunItem.key(before.period))
    t.update(run, actions=[SettlementRunItem.segments_done.add(1)],
             condition=SettlementRunItem.PK.exists())
    try:
        t._commit()
    except TransactWriteError as exc:
        reasons = [(r.code if r else None) for r in (exc.cancellation_reasons or [])]
        if reasons and reasons[0] == "ConditionalCheckFailed":
            raise SegmentTaken(f"segment {before.segment} of {before.period} moved") from None
        raise
    return replace(done, version=done.version + 1)


def checkpoints(period: str) -> list[Checkpoint]:
    return [_checkpoint(period, item) for item in SegmentItem.query(
        settlement_pk(period), SegmentItem.SK.startswith("SEGMENT#"), consistent_read=True)]


def complete_run(period: str, report: dict, completed_at: datetime,
                 event_detail: dict) -> bool:
    """Report + the run's guard with its `settlement.completed` outbox, once."""
    t = TransactWrite(connection=connection())
    run = SettlementRunItem(*SettlementRunItem.key(period))
    t.update(run, actions=[
        SettlementRunItem.status.set("completed"),
        SettlementRunItem.completed_at.set(completed_at),
        SettlementRunItem.report.set(json.dumps(report, sort_keys=True)),
    ], condition=SettlementRunItem.status == "running")
    guard = GuardItem(*GuardItem.key(run_guard_key(period)), source_type="settlement",
                      created_at=completed_at, result=json.dumps({"period": period}),
                      outbox=[{"detailType": "settlement.completed",
                               "detail": json.dumps(event_detail, sort_keys=True)}])
    t.save(guard, condition=GuardItem.PK.does_not_exist())
    try:
        t._commit()
    except TransactWriteError as exc:
        reasons = [(r.code if r else None) for r in (exc.cancellation_reasons or [])]
        if "ConditionalCheckFailed" in reasons:
            return False  # another worker completed the run
        raise
    return True


# ---- the scan -------------------------------------------------------------------------

def scan_request(segment: int, segments: int, cursor: dict | None,
                 limit: int | None, *, metrics: bool = True) -> dict:
    """One page's Scan. `metrics=False`: the settlement's own rows and attributes only, as
    before the metrics rode on it (services/settlement.py `settle_segment`)."""
    from membership.config import get_settings

    names = MEMBER_ATTRIBUTES if metrics else SETTLEMENT_ATTRIBUTES
    values = {":member": {"S": "MEMBER"}}
    if metrics:
        values[":term"] = {"S": TERM_MARK}
    request = {
        "TableName": get_settings().table_name,
        "Segment": segment,
        "TotalSegments": segments,
        "FilterExpression": "#a1 = :member OR contains(#a1, :term)" if metrics
                            else "#a1 = :member",
        "ProjectionExpression": _projection(names),
        # Placeholders for every name: some are DynamoDB reserved words.
        "ExpressionAttributeNames": {f"#a{i}": n for i, n in enumerate(names)},
        "ExpressionAttributeValues": values,
    }
    if limit:
        request["Limit"] = limit
    if cursor:
        request["ExclusiveStartKey"] = cursor
    return request


def scan_members_page(segment: int, segments: int, cursor: dict | None,
                      limit: int | None, *, metrics: bool = True
                      ) -> tuple[list[dict], dict | None]:
    """One page of a segment: member and term rows (raw; `is_member_row` tells them
    apart), and the cursor after it (None: the end)."""
    page = connection().client.scan(**scan_request(segment, segments, cursor, limit,
                                                   metrics=metrics))
    return page.get("Items", []), page.get("LastEvaluatedKey")


def iter_segment(segment: int, segments: int, limit: int | None) -> Iterator[list[dict]]:
    cursor = None
    while True:
        rows, cursor = scan_members_page(segment, segments, cursor, limit)
        yield rows
        if not cursor:
            return


def is_member_row(raw: dict) -> bool:
    return raw["SK"]["S"] == "MEMBER"


def term_from_raw(raw: dict) -> tuple[str, datetime, datetime, datetime | None]:
    """(kind, startsAt, endsAt, refundedAt) of a scanned term row."""
    refunded = raw.get("refundedAt", {}).get("S")
    return (raw["term"]["S"], calendar.parse_iso(raw["startsAt"]["S"]),
            calendar.parse_iso(raw["endsAt"]["S"]),
            calendar.parse_iso(refunded) if refunded else None)


def snapshot_from_raw(raw: dict) -> Snapshot:
    """The decision's inputs straight from the wire format: no model, no full decode."""
    growth = {k: int(v["N"]) for k, v in raw.get("growth", {}).get("M", {}).items()}
    expiry = raw.get("ptsNextAt", {}).get("S")
    plan_end = raw.get("plan", {}).get("M", {}).get("ends_at", {}).get("S")
    tier_since = raw.get("tierSince", {}).get("S")
    return Snapshot(
        member_id=raw["memberId"]["S"], tier_id=raw["tier"]["S"],
        tier_since=calendar.parse_iso(tier_since) if tier_since else None,
        growth_months=growth,
        points_next_expiry_at=calendar.parse_iso(expiry) if expiry else None,
        paid_plan_ends_at=calendar.parse_iso(plan_end) if plan_end else None,
        settled_period=raw.get("settled", {}).get("S"),
        birthday=raw.get("birthday", {}).get("S"),
        birthday_gift_year=int(raw["bdayGiftYear"]["N"]) if "bdayGiftYear" in raw else None,
    )


def settled_result(period: str, member_id: str) -> dict | None:
    """What this period did to a member that it changed already (the guard's result)."""
    from membership.domain.settlement import source_key
    from membership.storage.ledger import read_guard

    guard = read_guard(source_key(period, member_id))
    return guard.result_dict() if guard is not None else None
