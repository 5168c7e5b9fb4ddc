"""Monthly settlement throughput against a raw parallel scan of the same table.

Seeds BENCH_SETTLEMENT_MEMBERS members (default 5,000: DynamoDB Local reads about
1,500 items/s on one core, so 100,000 members take the better part of an hour; set
BENCH_SETTLEMENT_MEMBERS=100000 for the full run) into a table of their own, then in the
same run:

1. the read floor: a plain parallel Scan of the table, same segments, same page limit;
2. the settlement: the real worker code over the same segments, one thread per segment;

and reports members per second, settlement ÷ floor, and the DynamoDB calls and units
per member, split into changed and unchanged members.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from bench.dynamo import CallStats
from bench.operations import BenchContext, operation

PERIOD = "2025-02"  # not a year end: expiry is rare, tiers drift as in most months
# The run as the schedule starts it, 00:05 on the 1st after PERIOD in Shanghai: only the
# month that ended last can be settled.
RUN_AT = datetime(2025, 2, 28, 16, 5, tzinfo=UTC)
MEMBERS_ENV = "BENCH_SETTLEMENT_MEMBERS"
DEFAULT_MEMBERS = 5_000
SEGMENTS = 8
PAGE_LIMIT = 1_000
RATIO_TARGET = 1.5


def _raw_scan(client, table: str) -> int:
    def segment(s: int) -> int:
        items, kwargs = 0, {"TableName": table, "Segment": s, "TotalSegments": SEGMENTS,
                            "Limit": PAGE_LIMIT}
        for _ in range(1_000_000):
            page = client.scan(**kwargs)
            items += len(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        raise RuntimeError("scan did not end")

    with ThreadPoolExecutor(max_workers=SEGMENTS) as pool:
        return sum(pool.map(segment, range(SEGMENTS)))


def _per(stats: list, ops: set[str]) -> tuple[int, float]:
    return (sum(1 for c in stats if c.operation in ops),
            sum(c.read_units + c.write_units for c in stats if c.operation in ops))


@operation("monthly settlement", requires=("membership.services.settlement",
                                           "membership_local.seed"))
def settlement(ctx: BenchContext) -> CallStats:
    import botocore.session

    from membership.services import settlement as service
    from membership.storage import settlement as store
    from membership_local.seed import seed_members

    members = int(os.environ.get(MEMBERS_ENV) or DEFAULT_MEMBERS)
    table = f"{ctx.table_name}-settle"
    with ctx.table_of_its_own(table) as endpoint:
        client = botocore.session.get_session().create_client(
            "dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        started = time.monotonic()
        items = seed_members(client, table, members, PERIOD, threads=16)
        seeded = time.monotonic() - started

        started = time.monotonic()
        scanned = _raw_scan(client, table)
        floor = time.monotonic() - started

        service.start(PERIOD, now=RUN_AT, segments=SEGMENTS)
        with ctx.count() as calls:
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=SEGMENTS) as pool:
                # On the schedule's clock: the rule tags' recency is judged at the run's
                # time, as in production (the real clock would retag nearly every member).
                list(pool.map(lambda s: service.settle_segment(
                    PERIOD, s, SEGMENTS, page_limit=PAGE_LIMIT, clock=lambda: RUN_AT),
                    range(SEGMENTS)))
            elapsed = time.monotonic() - started
        report = service.report(PERIOD)
        checkpoints = store.checkpoints(PERIOD)

    changed = report.members_changed
    processed = report.members_processed
    unchanged = processed - changed
    pages = sum(cp.pages for cp in checkpoints)
    ops = {}
    for call in calls.calls:
        count, units = ops.get(call.operation, (0, 0.0))
        ops[call.operation] = (count + 1, units + call.read_units + call.write_units)
    scans, scan_units = ops.get("Scan", (0, 0.0))
    puts = ops.get("PutItem", (0, 0.0))[0]
    transactions, transaction_units = ops.get("TransactWriteItems", (0, 0.0))
    # Bookkeeping: a PutItem checkpoint per page but the last, a transaction per segment's
    # end and one for the report. Every other write is a changed member's posting.
    postings = transactions - SEGMENTS - 1
    other_writes = calls.writes - postings - puts - SEGMENTS - 1
    member_reads = ops.get("Query", (0, 0.0))[0] + ops.get("GetItem", (0, 0.0))[0]
    ratio = elapsed / floor if floor else float("inf")
    ctx.note(f"{members} members seeded ({items} items) in {seeded:.1f} s; period {PERIOD}, "
             f"{SEGMENTS} segments, page limit {PAGE_LIMIT} items")
    ctx.note(f"raw parallel scan: {scanned} items in {floor:.2f} s; settlement: {processed} "
             f"members in {elapsed:.2f} s = {processed / elapsed:.0f} members/s; "
             f"ratio {ratio:.2f}")
    ctx.note(f"changed {changed}, unchanged {unchanged}; upgrades {report.upgrades}, "
             f"downgrades {report.downgrades}, points expired {report.points_expired}, "
             f"plans lapsed {report.plans_lapsed}, failures {report.failures}")
    ctx.note(f"every member: {scans / max(processed, 1):.4f} Scan calls, "
             f"{scan_units / max(processed, 1):.2f} RCU (its share of the scan)")
    ctx.note(f"unchanged members: 0 reads and {max(other_writes, 0)} writes beyond the scan")
    ctx.note(f"changed members: {postings / max(changed, 1):.2f} TransactWriteItems "
             f"({(transaction_units / max(transactions, 1)):.1f} WCU per transaction on "
             f"average) and at most {member_reads / max(changed, 1):.2f} Query/GetItem each")
    ctx.note(f"checkpoints: {puts} PutItem + {SEGMENTS} closing transactions for {pages} "
             f"pages; calls: {calls.summary()}")
    ctx.check("monthly settlement ÷ raw parallel scan", round(ratio, 2), "<=", RATIO_TARGET)
    ctx.check("settlement writes for unchanged members", max(other_writes, 0), "==", 0)
    return calls

