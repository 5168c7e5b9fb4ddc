"""The paid plan's daily schedule and automatic renewals (docs/subscriptions.md).

- the daily run over N subscriptions of which 5 % are due: the reads it issues are the
  due index's queries (one per shard) plus a few per due member, never a scan, so they
  grow with the due members, not with all members; compared with what a scan of the same
  table would read;
- a `subscription.charged` event: one write call (the posting's transaction).
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.operations import BenchContext, CallStats, operation

DAILY = "membership.handlers.subscription_daily.handler"
CHARGES = "membership.handlers.subscription_charges.handler"
# BENCH_DAILY_MEMBERS / BENCH_DAILY_DUE: other sizes, to see what grows with what.
MEMBERS_TOTAL = int(os.environ.get("BENCH_DAILY_MEMBERS", 2_000))
DUE = int(os.environ.get("BENCH_DAILY_DUE", 100))  # 5 % by default


def _plus_member(sub: str, phone: str, now: datetime) -> str:
    from membership.domain.members import SignupRequest, member_id_for
    from membership.domain.subscriptions import SubscriptionRequest
    from membership.services import members, subscriptions

    members.signup(sub, SignupRequest(phone=phone, nickname="b", channel="app"), now=now)
    subscriptions.purchase(sub, f"k-{sub}", SubscriptionRequest.model_validate(
        {"planId": "PLUS", "term": "monthly", "paymentReference": f"test-{sub}",
         "channel": "wechat_pay"}), now=now)
    return member_id_for(sub)


@operation(f"PLUS daily run, {MEMBERS_TOTAL:,} subscriptions with {DUE} due",
           requires=("membership.handlers.subscription_daily",))
def daily_run(ctx: BenchContext) -> CallStats:
    from membership.domain.members import member_id_for
    from membership.domain.subscriptions import local_date
    from membership.storage import subscription_schedule as index
    from membership.storage.coupons import seed_default_templates
    from membership.storage.program import load_program
    from membership.storage.subscriptions import SubscriptionItem
    from membership.storage.table import connection

    with ctx.table_of_its_own(f"bench-daily-{uuid.uuid4().hex[:8]}"):
        now = datetime.now(UTC)
        tz = load_program().time_zone
        seed_default_templates(now)
        for i in range(DUE):
            _plus_member(f"bench-daily-{i}", f"1370000{i:04d}", now - timedelta(minutes=5))
        later = local_date(now, tz) + timedelta(days=12)
        # The other 95 %: subscriptions that owe nothing before `later`, each beside a
        # member item (a stand-in: a real member has more items, so a scan reads more).
        with SubscriptionItem.batch_write() as batch:
            for i in range(DUE, MEMBERS_TOTAL):
                member_id = member_id_for(f"bench-daily-{i}")
                pk, sk = SubscriptionItem.key(member_id, "PLUS")
                item = SubscriptionItem(pk, sk, member_id=member_id, plan_id="PLUS",
                                        subscription_id=f"{member_id}.PLUS", terms=1,
                                        created_at=now, updated_at=now)
                item.GSI1PK, item.GSI1SK = index.due_keys(member_id, "PLUS", later)
                batch.save(item)
                batch.save(SubscriptionItem(pk, "MEMBER", member_id=member_id,
                                            plan_id="-", subscription_id="-",
                                            created_at=now, updated_at=now))
        ctx.handler(DAILY)  # import outside the window
        with ctx.count() as index_reads:  # the index alone: what the run starts with
            assert len(list(index.due_subscriptions(local_date(now, tz)))) == DUE
        index_queries = index_reads.reads
        started = time.perf_counter()
        with ctx.count() as calls:
            result = ctx.invoke(DAILY, {})
        elapsed = time.perf_counter() - started
        scans = sum(1 for c in calls.calls if c.operation == "Scan")
        # What a scan of the same table reads (counted apart from the run).
        scan_calls = scanned = 0
        scan_units = 0.0
        start_key = None
        while True:
            kwargs = {"TableName": SubscriptionItem.Meta.table_name, "Select": "COUNT",
                      "ReturnConsumedCapacity": "TOTAL"}
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            page = connection().client.scan(**kwargs)
            scan_calls += 1
            scanned += page["ScannedCount"]
            scan_units += page.get("ConsumedCapacity", {}).get("CapacityUnits", 0)
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                break
    ctx.check("subscriptions visited (the due ones)", result["visited"], "==", DUE)
    ctx.check("scans in the daily run", scans, "==", 0)
    per_due = (calls.reads - index_queries) / DUE
    ctx.check("read calls per due member (beyond the index's queries)", per_due, "<=", 6)
    ctx.check("read calls of the run ÷ due members", calls.reads / DUE, "<=", 6)
    ctx.note(f"{calls.reads} read calls for {DUE} due of {MEMBERS_TOTAL:,} subscriptions "
             f"({index_queries} index queries, {per_due:.1f} per due member), "
             f"{calls.writes} write calls ({calls.writes / DUE:.1f} per due member), "
             f"{elapsed:.1f} s, {calls.read_units:.0f} RCU; a scan of the same table "
             f"(stand-in members, so a lower bound): {scan_calls} calls reading "
             f"{scanned:,} items, {scan_units:.0f} RCU, and it grows with all members")
    return calls


@operation("subscription.charged (automatic renewal)",
           requires=("membership.handlers.subscription_charges",))
def charge(ctx: BenchContext) -> CallStats:
    from membership.domain import calendar

    now = datetime.now(UTC)
    sub = ctx.unique("bench-charge")
    member_id = _plus_member(sub, ctx.new_phone(), now - timedelta(days=20))
    event = {"version": "0", "id": ctx.unique("evt"), "source": "payments",
             "account": "123456789012", "time": calendar.iso(now), "region": "us-east-1",
             "resources": [], "detail-type": "subscription.charged",
             "detail": {"subscriptionId": f"{member_id}.PLUS", "cycle": 2,
                        "paymentReference": f"test-auto-{sub}", "amount": 1900,
                        "chargedAt": calendar.iso(now)}}
    ctx.handler(CHARGES)
    with ctx.count() as calls:
        result = ctx.invoke(CHARGES, event)
    ctx.check("extended once", int(result["extended"] and not result["replayed"]), "==", 1)
    ctx.check("DynamoDB write calls per charge event", calls.writes, "==", 1)
    with ctx.count() as again:
        ctx.invoke(CHARGES, event)
    ctx.check("DynamoDB write calls per charge redelivered", again.writes, "<=", 1)
    ctx.note(f"{calls.items_written} items in the one transaction; {calls.reads} reads")
    return calls
