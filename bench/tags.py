"""Tags and segments (docs/tags.md) through their real handlers.

- an order posting that moves the order aggregates and the rule tags: still one write
  call (the tag items ride in the posting's transaction);
- a segment page of 1,000 members: queries issued (one per shard of the tag index touched,
  never a scan) and its time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.operations import BenchContext, CallStats, operation

ORDER_EVENTS = "membership.handlers.order_events.handler"
ADMIN_TAGS = "membership.handlers.admin_tags.handler"
SEGMENT = 1_000


def _paid_event(member_id: str, order_id: str) -> dict:
    paid_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return {"version": "0", "id": order_id, "detail-type": "order.paid",
            "source": "brand.orders", "account": "123456789012", "time": paid_at,
            "region": "us-east-1", "resources": [],
            "detail": {"orderId": order_id, "memberId": member_id, "storeId": "store-001",
                       "paidAt": paid_at,
                       "lines": [{"lineId": "1", "sku": "MILK", "category": "milk",
                                  "brand": "acme", "quantity": 1, "unitPrice": 600_000}],
                       "amounts": {"subtotal": 600_000, "discount": 0, "pointsUsed": 0,
                                   "balanceUsed": 0, "cashPaid": 600_000}}}


@operation("order.paid that moves aggregates and tags", requires=("membership.storage.tags",))
def tagging_order(ctx: BenchContext) -> CallStats:
    from membership.domain.members import member_id_for
    from membership.storage.tags import member_tags

    member_id = member_id_for(ctx.signed_up_member())  # carries new_member
    with ctx.count() as calls:
        ctx.invoke(ORDER_EVENTS, _paid_event(member_id, ctx.unique("SO")))
    tags = sorted(item.tag for item in member_tags(member_id))
    ctx.check("extra DynamoDB write calls per order posting (aggregates, tags)",
              calls.writes - 1, "==", 0)
    ctx.note(f"new_member off, {', '.join(tags)} on, aggregates moved: {calls.items_written} "
             "items in the one transaction")
    return calls


@operation(f"segment page of {SEGMENT:,} members", requires=("membership.handlers.admin_tags",),
           route="GET /v1/admin/tags/{tag}/members")
def segment_page(ctx: BenchContext) -> CallStats:
    from membership.domain.members import member_id_for
    from membership.domain.tag_rules import TagMark
    from membership.storage.tags import TAG_SHARDS, TagItem

    since = datetime.now(UTC)
    with TagItem.batch_write() as batch:
        for i in range(SEGMENT):
            member_id = member_id_for(f"bench-segment-{i}")
            batch.save(TagItem.of(member_id, "bench_segment",
                                  TagMark(source="operator", since=since), listed=True))
    event = ctx.member_event("GET", "/v1/admin/tags/bench_segment/members", sub="bench-op",
                             scopes=["admin"], query={"limit": str(SEGMENT)})
    ctx.invoke(ADMIN_TAGS, event)  # warm the handler
    started = time.perf_counter()
    with ctx.count() as calls:
        body = ctx.expect_status(ctx.invoke(ADMIN_TAGS, event), 200)
    elapsed = (time.perf_counter() - started) * 1000
    ctx.check(f"members on a segment page of {SEGMENT:,}", len(body["members"]), "==", SEGMENT)
    ctx.check("queries per segment page (one per shard touched)", calls.reads, "<=", TAG_SHARDS)
    ctx.check("scans per segment page", sum(1 for c in calls.calls if c.operation == "Scan"),
              "==", 0)
    ctx.note(f"{calls.reads} queries over {TAG_SHARDS} shards, {elapsed:.0f} ms for "
             f"{len(body['members'])} members")
    return calls
