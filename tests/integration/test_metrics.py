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
from membership.handlers import admin_metrics, order_events
from membership.services import members as member_service
from membership.services import settlement

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
    assert got["conversion"]["bps"] is None and got["renewal"]["bps"] is None


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


def test_a_plain_order_posting_writes_its_six_items_and_one_counter_shard(
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
