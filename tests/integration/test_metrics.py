"""The program's metrics of a month through the real handlers, against DynamoDB Local:
equal to a brute-force computation over every item of the table."""
import json
import os
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import botocore.session
import pytest

from membership.domain import calendar
from membership.domain.checkout import Settlement
from membership.domain.ledger import PayloadMismatch
from membership.domain.members import SignupRequest, member_id_for
from membership.domain.subscription_charges import SubscriptionCharged
from membership.domain.subscription_refunds import SubscriptionRefundRequest
from membership.domain.subscriptions import SubscriptionRequest
from membership.handlers import admin_metrics, order_events
from membership.services import members as member_service
from membership.services import settlement
from membership.services import subscription_charges as charges
from membership.services import subscription_refunds as refunds
from membership.services import subscriptions as plans
from membership.services.ledger import post_legs

TZ = "Asia/Shanghai"


def deliver(ctx, detail_type, detail):
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
             "source": "brand.orders", "account": "123456789012",
             "time": "2025-03-20T11:02:41Z", "region": "us-east-1", "resources": [],
             "detail": detail}
    return order_events.handler(event, ctx)


def order(order_id, member_id=None, price=10_000, paid_at=None):
    detail = {"orderId": order_id, "storeId": "S1",
              "paidAt": (paid_at or datetime.now(UTC) - timedelta(hours=1)).isoformat(),
              "lines": [{"lineId": "1", "sku": "s", "category": "milk", "brand": "b",
                         "quantity": 1, "unitPrice": price}],
              "amounts": {"subtotal": price, "discount": 0, "pointsUsed": 0,
                          "balanceUsed": 0, "cashPaid": price}}
    if member_id:
        detail["memberId"] = member_id
    return detail


def get_metrics(apigw_event, ctx, period):
    response = admin_metrics.handler(apigw_event("GET", "/v1/admin/metrics", sub="op",
                                                 scopes=("admin",),
                                                 query={"period": period}), ctx)
    return response["statusCode"], json.loads(response["body"])


def all_items(table):
    client = botocore.session.get_session().create_client(
        "dynamodb", region_name="us-east-1",
        endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    items, key = [], None
    while True:
        page = client.scan(TableName=table, **({"ExclusiveStartKey": key} if key else {}))
        items += page["Items"]
        key = page.get("LastEvaluatedKey")
        if not key:
            return items


def brute_force(table, period):
    """Every figure from every item, with no counter and no settlement tally."""
    items = all_items(table)
    members = [i for i in items
               if i["SK"]["S"] == "MEMBER" and i["PK"]["S"].startswith("MEMBER#")]
    close = calendar.month_start(calendar.shift_month(period, 1), TZ)
    member_orders = member_spend = guest_orders = guest_spend = 0
    for item in items:
        if item["SK"]["S"].startswith("ORDER#"):
            s = Settlement.model_validate_json(item["document"]["S"])
            if s.growth_month == period:
                member_orders += 1
                member_spend += s.cash_paid + s.balance_used
        if item.get("sourceType", {}).get("S") == "order.paid.guest":
            result = json.loads(item["result"]["S"])
            if result["month"] == period:
                guest_orders += 1
                guest_spend += result["spend"]

    def number(item, name):
        return int(item.get(name, {}).get("N", "0"))

    available = sum(number(m, "ptsA") for m in members)
    pending = sum(number(m, "ptsP") for m in members)
    return {
        "members": {"total": len(members),
                    "new": sum(1 for m in members if calendar.month_of(
                        calendar.parse_iso(m["createdAt"]["S"]), TZ) == period)},
        "orders": (member_orders, member_spend, guest_orders, guest_spend),
        "tiers": dict(sorted(Counter(m["tier"]["S"] for m in members).items())),
        "points": (available, pending),
        "storedValue": (sum(number(m, "balP") for m in members),
                        sum(number(m, "balB") for m in members)),
        "paid": sum(1 for m in members if "plan" in m and calendar.parse_iso(
            m["plan"]["M"]["ends_at"]["S"]) >= close),
    }


def brute_force_plans(table, period):
    """Conversion, renewal and breakage of `period` from every item: the terms as they
    stand, the ledger's entries, the members; no counter and no settlement tally."""
    items = all_items(table)
    close_before = calendar.month_start(period, TZ)  # the previous month's close

    def instant(item, name):
        value = item.get(name, {}).get("S")
        return calendar.parse_iso(value) if value else None

    def month(value):
        return calendar.month_of(value, TZ)

    terms = [{"member": i["PK"]["S"], "kind": i["term"]["S"],
              "starts": instant(i, "startsAt"), "ends": instant(i, "endsAt"),
              "refunded": instant(i, "refundedAt")}
             for i in items if "#TERM#" in i["SK"]["S"]]
    live_paid = [t for t in terms if t["kind"] != "trial" and t["refunded"] is None]

    def before(term):  # the live term it continues, if any
        return next((t for t in terms if t is not term and t["member"] == term["member"]
                     and t["refunded"] is None
                     and t["ends"] + timedelta(microseconds=1) == term["starts"]), None)

    starts = renewed = 0
    for term in live_paid:
        prior = before(term)
        if prior is not None and prior["kind"] != "trial":
            renewed += month(prior["ends"]) == period
        else:
            starts += month(term["starts"]) == period
    paying = {t["member"] for t in terms if t["kind"] != "trial"
              and t["starts"] <= close_before < t["ends"]
              and (t["refunded"] is None or t["refunded"] > close_before)}
    members = [i for i in items if i["SK"]["S"] == "MEMBER"]
    open_members = sum(1 for m in members if m.get("status", {}).get("S") != "closed")
    issued = expired = 0
    for e in items:
        if not e["SK"]["S"].startswith("ENTRY#points#"):
            continue
        amount = int(e["amount"]["N"])
        lots = e.get("lots", {}).get("L", [])
        # A credit leg: new points into its own lot (a return has no lotId, a release no lots).
        if (amount > 0 and e["bucket"]["S"] in ("available", "pending") and "lotId" in e
                and lots and lots[0]["M"]["l"]["S"] == e["lotId"]["S"]
                and month(instant(e, "effectiveAt")) == period):
            issued += amount
        if (e["reason"]["S"] == "expired"
                and e["sourceKey"]["S"].startswith(f"settlement:{period}:")):
            expired -= amount
    return {"paidStarts": starts, "freeAtStart": open_members - len(paying),
            "renewed": renewed,
            "ended": sum(1 for t in live_paid if month(t["ends"]) == period),
            "issued": issued, "expired": expired}


def test_metrics_of_a_seeded_month_equal_a_brute_force_over_every_item(
        table, apigw_event, lambda_context):
    now = datetime.now(UTC)
    period = calendar.month_of(now, TZ)
    ids = []
    for i in range(6):
        member_service.signup(f"metric-{i}", SignupRequest(
            phone=f"138{uuid.uuid4().int % 10**8:08d}", nickname="M", channel="app"))
        ids.append(member_id_for(f"metric-{i}"))
    for n, member_id in enumerate(ids[:4]):
        deliver(lambda_context, "order.paid",
                order(f"SO-{n}", member_id, price=(n + 1) * 50_000))
    deliver(lambda_context, "order.refunded", {"orderId": "SO-0", "memberId": ids[0],
                                               "refundId": "R1"})
    for n in range(3):
        deliver(lambda_context, "order.paid", order(f"GUEST-{n}", price=7_000))
    status, before = get_metrics(apigw_event, lambda_context, period)
    assert status == 200 and before["stocksFrom"] == "none"
    assert before["members"]["total"] is None  # stocks come from the settlement's scan

    run_at = calendar.month_start(calendar.shift_month(period, 1), TZ) + timedelta(hours=1)
    settlement.start(period, now=run_at, segments=2)
    for segment in range(2):
        settlement.settle_segment(period, segment, 2, clock=lambda: run_at)
    status, got = get_metrics(apigw_event, lambda_context, period)
    expected = brute_force(table, period)
    assert status == 200 and got["stocksFrom"] == "completed"
    assert got["members"] == expected["members"] == {"total": 6, "new": 6}
    p = got["penetration"]
    member_orders, member_spend, guest_orders, guest_spend = expected["orders"]
    assert (p["memberOrders"], p["memberSpend"]) == (member_orders, member_spend)
    assert (p["allOrders"], p["allSpend"]) == (member_orders + guest_orders,
                                               member_spend + guest_spend)
    assert p["ordersBps"] == member_orders * 10_000 // (member_orders + guest_orders)
    assert got["tiers"]["distribution"] == expected["tiers"]
    assert (got["points"]["available"], got["points"]["pending"]) == expected["points"]
    assert got["points"]["cashValue"] == sum(expected["points"])  # 100 points = 100 fen
    assert (got["storedValue"]["principal"], got["storedValue"]["bonus"]) == \
        expected["storedValue"]
    assert got["paidMembers"]["active"] == expected["paid"]
    # No paid plan was bought, and the month before was never settled.
    assert got["conversion"] == {"bps": None, "paidStarts": 0, "freeAtStart": None}
    assert got["renewal"] == {"bps": None, "renewed": 0, "ended": 0}
    assert got["points"]["issued"] == brute_force_plans(table, period)["issued"]


def test_guest_orders_count_in_penetration_only(table, apigw_event, lambda_context):
    paid_at = datetime.now(UTC) - timedelta(hours=1)
    period = calendar.month_of(paid_at, TZ)
    guest = order("GUEST-1", price=9_900, paid_at=paid_at)
    answer = deliver(lambda_context, "order.paid", guest)
    again = deliver(lambda_context, "order.paid", guest)
    assert answer["result"]["guest"] and again["replayed"]
    _, got = get_metrics(apigw_event, lambda_context, period)
    assert got["penetration"] == {"memberOrders": 0, "allOrders": 1, "ordersBps": 0,
                                  "memberSpend": 0, "allSpend": 9_900, "spendBps": 0}
    assert got["members"]["new"] == 0
    assert not [i for i in all_items(table) if i["SK"]["S"] == "MEMBER"]
    with pytest.raises(PayloadMismatch):
        deliver(lambda_context, "order.paid", order("GUEST-1", price=1_000, paid_at=paid_at))


def test_metrics_need_a_valid_period_and_admin(table, apigw_event, lambda_context):
    assert get_metrics(apigw_event, lambda_context, "2026-13")[0] == 422
    response = admin_metrics.handler(apigw_event("GET", "/v1/admin/metrics", sub="m",
                                                 scopes=("member",),
                                                 query={"period": "2026-01"}), lambda_context)
    assert response["statusCode"] == 403


def test_a_plain_order_posting_writes_its_six_items_and_one_counter_shard_with_its_points(
        table, lambda_context):
    # The bench's target (docs/metrics.md, "Why the counter is in the posting"): the
    # posting's own items stay at 6; penetration's counter shard is the 7th, same write.
    member_service.signup("metric-items", SignupRequest(
        phone=f"138{uuid.uuid4().int % 10**8:08d}", nickname="M", channel="app"))
    member_id = member_id_for("metric-items")
    before = {(i["PK"]["S"], i["SK"]["S"]): i for i in all_items(table)}
    deliver(lambda_context, "order.paid", order("SO-ITEMS", member_id))
    after = {(i["PK"]["S"], i["SK"]["S"]): i for i in all_items(table)}
    written = [key for key, item in after.items() if before.get(key) != item]
    counters = [key for key in written if key[0].startswith("METRICS#")]
    assert len(counters) == 1
    assert len(written) - len(counters) <= 6
    # Breakage's points issued ride on the same shard as penetration's counts.
    earned = sum(int(after[key]["amount"]["N"]) for key in written
                 if key[1].startswith("ENTRY#points#")
                 and after[key]["sourceKey"]["S"] == "order.paid:SO-ITEMS")
    shard = after[counters[0]]
    assert earned > 0 and int(shard["pointsIssued"]["N"]) == earned
    assert int(shard["memberOrders"]["N"]) == 1


def sh(year, month, day, hour=10):
    """An instant on the program's clock (Shanghai), in UTC."""
    return datetime(year, month, day, hour, tzinfo=UTC) - timedelta(hours=8)


def buy(n, at, term="monthly"):
    body = {"planId": "PLUS", "term": term}
    if term != "trial":
        body |= {"paymentReference": f"test-conv-{n}-{at:%m%d}", "channel": "wechat_pay"}
    return plans.purchase(f"conv-{n}", f"key-{n}-{at:%m%d}",
                          SubscriptionRequest.model_validate(body), now=at).body


def credit(member_id, points, at, expires_at, key):
    """Points that expire soon (a test's posting: the capabilities give a year or more)."""
    return post_legs(member_id, key, lambda b: b.credit_points(
        points, lot_id=key, expires_at=expires_at), source_type="test", reason="test",
        now=at)


def settle(period):
    run_at = calendar.month_start(calendar.shift_month(period, 1), TZ) + timedelta(minutes=5)
    settlement.start(period, now=run_at, segments=2)
    for segment in range(2):
        settlement.settle_segment(period, segment, 2, clock=lambda: run_at)


def test_conversion_renewal_and_breakage_of_two_months_equal_a_brute_force(
        table, apigw_event, lambda_context):
    """Dec 2025 to Feb 2026: paid starts (a trial converting, a refund taking one back),
    renewals (an early extension, an automatic charge), a lapse and a later re-buy,
    points issued in one month and expired in the same or the next."""
    ids = []
    for n in range(8):
        member_service.signup(f"conv-{n}", SignupRequest(
            phone=f"139{uuid.uuid4().int % 10**8:08d}", nickname="C", channel="app"),
            now=sh(2025, 12, 10))
        ids.append(member_id_for(f"conv-{n}"))
    buy(7, sh(2025, 12, 15))  # paying at December's close; ends 15 Jan, not renewed
    settle("2025-12")

    # January.
    buy(3, sh(2026, 1, 2))  # ends 2 Feb; lapses; bought again on 20 Feb
    buy(2, sh(2026, 1, 3))  # ends 3 Feb; extended on 25 Jan: a renewal of February
    buy(0, sh(2026, 1, 5))  # ends 5 Feb, not renewed
    buy(4, sh(2026, 1, 8))
    refunds.refund(f"{ids[4]}.PLUS", SubscriptionRefundRequest.model_validate(
        {"refundId": "RF-conv-4", "reason": "changed mind"}), actor="admin:ops",
        now=sh(2026, 1, 9))  # cooling-off: its paid start is taken back
    buy(1, sh(2026, 1, 10), term="trial")  # a trial: no paid start
    paid_after_trial = buy(1, sh(2026, 1, 12))  # pays from the trial's end, 18 Jan
    assert paid_after_trial["term"]["startsAt"].startswith("2026-01-18T00:00:00")
    buy(5, sh(2026, 1, 20))  # ends 20 Feb; the provider charges cycle 2 on 19 Feb
    buy(2, sh(2026, 1, 25))
    buy(6, sh(2026, 1, 28), term="trial")  # covers January's close: a free member then
    deliver(lambda_context, "order.paid", order("SO-C0", ids[0], 50_000, sh(2026, 1, 6)))
    deliver(lambda_context, "order.paid", order("SO-C6", ids[6], 30_000, sh(2026, 1, 7)))
    credit(ids[6], 500, sh(2026, 1, 5), sh(2026, 1, 20, 23), "soon-6")  # expires in January
    credit(ids[0], 300, sh(2026, 1, 25), sh(2026, 2, 10, 23), "soon-0")  # in February
    settle("2026-01")

    # February.
    charges.apply(SubscriptionCharged.model_validate(
        {"subscriptionId": f"{ids[5]}.PLUS", "cycle": 2, "paymentReference": "test-conv-auto",
         "amount": 1900, "chargedAt": sh(2026, 2, 19).isoformat()}), now=sh(2026, 2, 19))
    buy(7, sh(2026, 2, 10))  # lapsed in January: a paid start, not a renewal
    buy(3, sh(2026, 2, 20))  # 18 days after its lapse
    deliver(lambda_context, "order.paid", order("SO-C3", ids[3], 20_000, sh(2026, 2, 21)))
    credit(ids[6], 200, sh(2026, 2, 3), sh(2026, 2, 15, 23), "soon-6b")
    settle("2026-02")

    for period, paid_starts, free, renewed, ended in (("2026-01", 5, 7, 0, 1),
                                                       ("2026-02", 2, 3, 2, 5)):
        status, got = get_metrics(apigw_event, lambda_context, period)
        expected = brute_force_plans(table, period)
        assert status == 200 and got["stocksFrom"] == "completed"
        assert got["conversion"] == {
            "paidStarts": expected["paidStarts"], "freeAtStart": expected["freeAtStart"],
            "bps": expected["paidStarts"] * 10_000 // expected["freeAtStart"]}
        assert got["renewal"] == {"renewed": expected["renewed"], "ended": expected["ended"],
                                  "bps": expected["renewed"] * 10_000 // expected["ended"]}
        points = got["points"]
        assert (points["issued"], points["expired"]) == (expected["issued"],
                                                         expected["expired"])
        assert points["breakageBps"] == expected["expired"] * 10_000 // expected["issued"]
        # The scenario is the one described above, not only consistent with itself.
        assert (paid_starts, free, renewed, ended) == (
            expected["paidStarts"], expected["freeAtStart"], expected["renewed"],
            expected["ended"])
    _, january = get_metrics(apigw_event, lambda_context, "2026-01")
    _, february = get_metrics(apigw_event, lambda_context, "2026-02")
    assert january["points"]["expired"] == 500 and february["points"]["expired"] == 500
    # The plan covering the close counts a trial; paying members do not.
    assert january["paidMembers"] == {"active": 6, "paying": 5}
    assert february["paidMembers"] == {"active": 4, "paying": 4}  # m2, m3, m5, m7
