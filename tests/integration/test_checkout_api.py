"""POST /v1/checkout/quote and /v1/checkout/holds through the real handler."""
import json
import threading
from datetime import UTC, datetime

import pytest

from membership.domain.ledger import PostingBuilder
from membership.domain.members import SignupRequest, member_id_for
from membership.handlers import checkout as checkout_handler
from membership.services import members as member_service
from membership.services.ledger import reconcile_member
from membership.storage import ledger as store
from membership.storage.program import load_program

LINES = [
    {"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 2,
     "unitPrice": 9_900},
    {"lineId": "2", "sku": "CAP", "category": "accessories", "brand": "acme", "quantity": 1,
     "unitPrice": 5_900},
]


def signed_up(sub="shopper", phone="13812345678", balance=0, points=0):
    member_service.signup(sub, SignupRequest(phone=phone, nickname="S", channel="app"))
    member_id = member_id_for(sub)
    if balance or points:
        def build(state):
            b = PostingBuilder(state, load_program(), source_key=f"seed:{member_id}",
                               source_type="test", reason="seed", actor="test",
                               now=datetime.now(UTC))
            if balance:
                b.credit_balance("principal", balance)
            if points:
                b.credit_points(points, lot_id=f"seed-{member_id}")
            return b.build()
        store.post(member_id, f"seed:{member_id}", build)
    return member_id


def call(apigw_event, ctx, path, body, scopes=("orders",), sub="order-system"):
    response = checkout_handler.handler(apigw_event("POST", path, body, sub=sub, scopes=scopes),
                                        ctx)
    return response["statusCode"], json.loads(response["body"] or "null")


def quote(apigw_event, ctx, member_id, **extra):
    return call(apigw_event, ctx, "/v1/checkout/quote",
                {"memberId": member_id, "lines": LINES, **extra})


def hold(apigw_event, ctx, member_id, order_id="SO-1", **amounts):
    return call(apigw_event, ctx, "/v1/checkout/holds",
                {"orderId": order_id, "memberId": member_id, **amounts})


def items(table):
    from membership.storage.models import MemberItem
    return sorted((i.PK, i.SK) for i in MemberItem.scan())


def test_quote_answers_discount_caps_usable_balance_and_earnings(table, apigw_event,
                                                                  lambda_context):
    member_id = signed_up(balance=3_000)
    status, body = quote(apigw_event, lambda_context, member_id, pointsToRedeem=100,
                         balanceToUse=1_000)
    assert status == 200
    assert body["subtotal"] == 25_700 and body["tierDiscount"] == 0
    assert body["pointsRedeemable"] == 100  # the signup gift; the cap would allow 12,850
    assert body["pointsValue"] == 100 and body["balanceUsable"] == 3_000
    assert body["payable"] == 25_700 - 100 - 1_000
    assert (body["pointsToEarn"], body["growthToEarn"]) == (256, 256)
    assert sum(line["payable"] for line in body["lines"]) == body["payable"]


def test_quote_writes_nothing(table, apigw_event, lambda_context):
    member_id = signed_up(balance=3_000)
    before = items(table)
    quote(apigw_event, lambda_context, member_id, balanceToUse=1_000)
    assert items(table) == before


def test_quote_needs_the_orders_scope(table, apigw_event, lambda_context):
    member_id = signed_up()
    status, body = call(apigw_event, lambda_context, "/v1/checkout/quote",
                        {"memberId": member_id, "lines": LINES}, scopes=("member",))
    assert status == 403 and body["code"] == "forbidden"


def test_quote_for_an_unknown_member_is_404(table, apigw_event, lambda_context):
    status, body = quote(apigw_event, lambda_context, member_id_for("nobody"))
    assert status == 404 and body["code"] == "member_not_found"


def test_quote_refuses_points_over_the_cap(table, apigw_event, lambda_context):
    member_id = signed_up()
    status, body = call(apigw_event, lambda_context, "/v1/checkout/quote", {
        "memberId": member_id, "pointsToRedeem": 100,
        "lines": [{**LINES[0], "quantity": 1, "unitPrice": 150}]})
    assert status == 422 and body["code"] == "points_over_cap"


def test_quote_refuses_float_money(table, apigw_event, lambda_context):
    member_id = signed_up()
    status, body = call(apigw_event, lambda_context, "/v1/checkout/quote", {
        "memberId": member_id, "lines": [{**LINES[0], "unitPrice": 99.5}]})
    assert status == 422 and body["code"] == "validation_failed"


def test_hold_reserves_balance_and_points(table, apigw_event, lambda_context):
    member_id = signed_up(balance=3_000)
    status, body = hold(apigw_event, lambda_context, member_id, balance=2_000, points=100)
    assert status == 201
    assert body["balance"] == {"principal": 2_000, "bonus": 0, "total": 2_000}
    assert body["points"] == 100 and body["status"] == "held"
    member = store.read_live_range(member_id).member
    assert (member.balance_principal, member.points_available) == (1_000, 0)
    assert reconcile_member(member_id) == []


def test_the_same_hold_again_answers_200_with_the_same_hold(table, apigw_event, lambda_context):
    member_id = signed_up(balance=3_000)
    _, first = hold(apigw_event, lambda_context, member_id, balance=2_000)
    status, again = hold(apigw_event, lambda_context, member_id, balance=2_000)
    assert status == 200 and again == first
    assert store.read_live_range(member_id).member.balance_principal == 1_000


def test_the_same_order_held_with_other_amounts_is_409(table, apigw_event, lambda_context):
    member_id = signed_up(balance=3_000)
    hold(apigw_event, lambda_context, member_id, balance=2_000)
    status, body = hold(apigw_event, lambda_context, member_id, balance=1_000)
    assert status == 409 and body["code"] == "hold_mismatch"
    assert store.read_live_range(member_id).member.balance_principal == 1_000


def test_a_hold_beyond_the_balance_is_409(table, apigw_event, lambda_context):
    member_id = signed_up(balance=500)
    status, body = hold(apigw_event, lambda_context, member_id, balance=501)
    assert status == 409 and body["code"] == "insufficient_balance"


def test_a_hold_of_nothing_is_422(table, apigw_event, lambda_context):
    member_id = signed_up(balance=500)
    status, body = hold(apigw_event, lambda_context, member_id)
    assert status == 422 and body["code"] == "validation_failed"


def test_two_concurrent_holds_that_together_exceed_the_balance_one_fails(
        table, apigw_event, lambda_context):
    member_id = signed_up(balance=1_000)
    results = []
    barrier = threading.Barrier(2)

    def run(order_id):
        barrier.wait()
        results.append(hold(apigw_event, lambda_context.next_invocation(), member_id,
                            order_id=order_id, balance=700))

    threads = [threading.Thread(target=run, args=(f"SO-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409]
    assert [b["code"] for s, b in results if s == 409] == ["insufficient_balance"]
    assert store.read_live_range(member_id).member.balance_principal == 300
    assert reconcile_member(member_id) == []


@pytest.mark.parametrize("field, value", [("orderId", "bad id!"), ("balance", -1),
                                          ("points", 1.5), ("memberId", "x")])
def test_an_invalid_hold_is_rejected_and_writes_nothing(table, apigw_event, lambda_context,
                                                        field, value):
    member_id = signed_up(balance=1_000)
    before = items(table)
    body = {"orderId": "SO-1", "memberId": member_id, "balance": 100, field: value}
    status, answer = call(apigw_event, lambda_context, "/v1/checkout/holds", body)
    assert status == 422 and answer["code"] == "validation_failed"
    assert items(table) == before
