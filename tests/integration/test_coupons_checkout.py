"""Coupons through checkout against DynamoDB Local: quote, hold (one order at a time),
order.paid (through the hold or directly), cancel, lapse, full and partial refunds."""
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from checkout_support import LINES, SUBTOTAL

from membership.domain import calendar
from membership.domain.checkout import HoldRequest, QuoteRequest
from membership.domain.coupons import ClaimRequest, CouponNotApplicable, TemplateSpec
from membership.domain.members import SignupRequest, member_id_for
from membership.errors import DomainError
from membership.handlers import checkout as checkout_handler
from membership.handlers import order_events
from membership.services import checkout as checkout_service
from membership.services import coupons
from membership.services import members as member_service
from membership.services.ledger import post_legs, reconcile_member
from membership.services.sweeps import sweep
from membership.storage import coupons as coupon_store
from membership.storage import ledger as store

SHANGHAI = calendar.zone("Asia/Shanghai")
SUB = "shopper"


def spec(**changes) -> TemplateSpec:
    base = {"templateId": "T20OFF200", "name": "20 off 200", "kind": "amount_off",
            "amountOff": 2_000, "minSpend": 20_000, "validDays": 7, "stock": 100,
            "perMemberLimit": 5, "claimable": True}
    base.update(changes)
    return TemplateSpec.model_validate(base)


@pytest.fixture
def member_id(table):
    member_service.signup(SUB, SignupRequest(phone="13812345678", nickname="S",
                                             channel="app"))
    mid = member_id_for(SUB)
    post_legs(mid, "fund", lambda b: b.credit_balance("principal", 50_000),
              source_type="test", reason="test")
    coupons.create_template(spec())
    return mid


def claim(template_id="T20OFF200", key=None, now=None) -> str:
    outcome = coupons.claim(SUB, key or uuid.uuid4().hex, ClaimRequest(templateId=template_id),
                            now=now)
    return outcome.result["couponId"]


def status_of(member_id, coupon_id, now=None) -> str:
    return coupon_store.get_coupon(member_id, coupon_id).status_at(now or datetime.now(UTC))


def envelope(detail_type, detail):
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
            "source": "brand.orders", "account": "123456789012",
            "time": "2025-03-20T11:02:41Z", "region": "us-east-1", "resources": [],
            "detail": detail}


def deliver(ctx, detail_type, detail):
    return order_events.handler(envelope(detail_type, detail), ctx)


def paid_event(member_id, order_id, coupon_ids, coupon_discount, balance=0, lines=LINES):
    subtotal = sum(x["quantity"] * x["unitPrice"] for x in lines)
    return {"orderId": order_id, "memberId": member_id, "storeId": "store-001",
            "paidAt": (datetime.now(SHANGHAI) - timedelta(minutes=1)).replace(
                microsecond=0).isoformat(),
            "lines": lines, "couponIds": coupon_ids,
            "amounts": {"subtotal": subtotal, "discount": coupon_discount,
                        "couponDiscount": coupon_discount, "pointsUsed": 0,
                        "balanceUsed": balance,
                        "cashPaid": subtotal - coupon_discount - balance}}


def quote(member_id, coupon_ids=(), **kw):
    return checkout_service.quote(QuoteRequest(memberId=member_id, lines=LINES,
                                               couponIds=tuple(coupon_ids), **kw))


# ---- quote --------------------------------------------------------------------------

def test_a_quote_applies_a_coupon_and_lists_the_applicable_ones_best_first(member_id):
    coupons.create_template(spec(templateId="P10", kind="percent_off", amountOff=None,
                                 percentOffBps=1_000, maxDiscount=None, minSpend=0))
    twenty, ten_pct = claim(), claim("P10")
    q = quote(member_id, [twenty])
    assert q.coupon_discount == 2_000
    assert sum(line.coupon_discount for line in q.lines) == 2_000
    assert q.payable == SUBTOTAL - 2_000
    # alone, 10% of 250 yuan (25) beats 20 off
    assert [c.coupon_id for c in q.applicable_coupons] == [ten_pct, twenty]
    assert [c.discount for c in q.applicable_coupons] == [2_500, 2_000]


def test_a_quote_refuses_a_coupon_below_its_threshold(member_id, apigw_event, lambda_context):
    coupons.create_template(spec(templateId="BIG", minSpend=SUBTOTAL + 1))
    big = claim("BIG")
    body = {"memberId": member_id, "lines": LINES, "couponIds": [big]}
    response = checkout_handler.handler(apigw_event("POST", "/v1/checkout/quote", body,
                                                    scopes=("orders",)), lambda_context)
    error = json.loads(response["body"])
    assert response["statusCode"] == 422
    assert (error["code"], error["details"]["reason"]) == ("coupon_not_applicable", "threshold")


def test_a_quote_refuses_another_members_coupon(member_id):
    member_service.signup("other", SignupRequest(phone="13812345679", nickname="O",
                                                 channel="app"))
    theirs = coupons.claim("other", "k", ClaimRequest(templateId="T20OFF200")).result[
        "couponId"]
    with pytest.raises(CouponNotApplicable) as refused:
        quote(member_id, [theirs])
    assert refused.value.details["reason"] == "owner"


# ---- holds --------------------------------------------------------------------------

def test_a_hold_locks_the_coupon_to_its_order(member_id):
    coupon = claim()
    held, created = checkout_service.hold(HoldRequest(orderId="SO-1", memberId=member_id,
                                                      couponIds=(coupon,)))
    assert created and held["couponIds"] == [coupon]
    assert status_of(member_id, coupon) == "held"
    assert coupon_store.get_coupon(member_id, coupon).order_id == "SO-1"
    with pytest.raises(DomainError) as refused:
        checkout_service.hold(HoldRequest(orderId="SO-2", memberId=member_id,
                                          couponIds=(coupon,)))
    assert refused.value.code == "coupon_not_applicable"
    assert checkout_handler  # 409 below, through the handler


def test_a_second_order_holding_the_same_coupon_is_409(member_id, apigw_event,
                                                      lambda_context):
    coupon = claim()
    checkout_service.hold(HoldRequest(orderId="SO-1", memberId=member_id,
                                      couponIds=(coupon,)))
    body = {"orderId": "SO-2", "memberId": member_id, "couponIds": [coupon]}
    response = checkout_handler.handler(apigw_event("POST", "/v1/checkout/holds", body,
                                                    scopes=("orders",)), lambda_context)
    assert response["statusCode"] == 409
    assert json.loads(response["body"])["code"] == "coupon_not_applicable"


def test_two_orders_holding_one_coupon_at_once_one_wins(member_id):
    coupon = claim()
    barrier = threading.Barrier(8, timeout=60)
    outcomes = []

    def run(n):
        barrier.wait()
        try:
            checkout_service.hold(HoldRequest(orderId=f"SO-{n}", memberId=member_id,
                                              couponIds=(coupon,)))
            outcomes.append("held")
        except DomainError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert outcomes.count("held") == 1
    assert outcomes.count("coupon_not_applicable") == 7
    holds = [h for h in store.all_holds(member_id) if h.coupons]
    assert len(holds) == 1 and holds[0].coupons[0].coupon_id == coupon


# ---- paid, cancelled, lapsed --------------------------------------------------------

def test_order_paid_captures_the_holds_coupon_as_used(member_id, lambda_context):
    coupon = claim()
    checkout_service.hold(HoldRequest(orderId="SO-1", memberId=member_id, balance=1_000,
                                      couponIds=(coupon,)))
    deliver(lambda_context, "order.paid",
            paid_event(member_id, "SO-1", [coupon], 2_000, balance=1_000))
    assert status_of(member_id, coupon) == "used"
    view = coupons.get_template("T20OFF200")
    assert (view.issued, view.redeemed) == (1, 1)
    assert reconcile_member(member_id) == []


def test_order_paid_without_a_hold_uses_the_coupon_directly(member_id, lambda_context):
    coupon = claim()
    event = paid_event(member_id, "SO-1", [coupon], 2_000)
    deliver(lambda_context, "order.paid", event)
    assert status_of(member_id, coupon) == "used"
    deliver(lambda_context, "order.paid", event)  # redelivered: nothing changes
    assert coupons.get_template("T20OFF200").redeemed == 1


def test_order_paid_with_a_wrong_coupon_discount_changes_nothing(member_id):
    from membership.domain.checkout import OrderPaid
    from membership.services import orders

    coupon = claim()
    with pytest.raises(DomainError) as refused:
        orders.paid(OrderPaid.model_validate(paid_event(member_id, "SO-1", [coupon], 3_000)))
    assert refused.value.code == "amounts_mismatch"
    assert status_of(member_id, coupon) == "available"


def test_a_cancelled_order_returns_the_same_coupon(member_id, lambda_context):
    first, second = claim(), claim()
    checkout_service.hold(HoldRequest(orderId="SO-1", memberId=member_id,
                                      couponIds=(second,)))
    deliver(lambda_context, "order.cancelled", {"orderId": "SO-1", "memberId": member_id})
    assert status_of(member_id, second) == "available"
    assert status_of(member_id, first) == "available"
    assert coupon_store.get_coupon(member_id, second).order_id is None


def test_a_lapsed_hold_returns_its_coupon(member_id):
    coupon = claim()
    now = datetime.now(UTC)
    checkout_service.hold(HoldRequest(orderId="SO-1", memberId=member_id,
                                      couponIds=(coupon,)), now=now)
    assert sweep(now + timedelta(minutes=31)).holds_released == 1
    assert status_of(member_id, coupon) == "available"


def test_a_coupon_returned_after_its_window_closed_reads_as_expired(member_id):
    coupons.create_template(spec(templateId="SHORT", validDays=1))
    long_ago = datetime.now(UTC) - timedelta(days=5)
    coupon = claim("SHORT", now=long_ago)
    post_legs(member_id, "hold-old", lambda b: b.place_hold(
        "SO-OLD", expires_at=long_ago + timedelta(minutes=30), coupons=(
            _held(member_id, coupon),)), source_type="test", reason="test", now=long_ago)
    sweep(datetime.now(UTC))
    assert status_of(member_id, coupon) == "expired"


def _held(member_id, coupon_id):
    from membership.domain.checkout import held_coupon

    return held_coupon(coupon_store.get_coupon(member_id, coupon_id))


# ---- refunds ------------------------------------------------------------------------

def test_a_full_refund_returns_a_still_valid_coupon(member_id, lambda_context):
    coupon = claim()
    deliver(lambda_context, "order.paid", paid_event(member_id, "SO-1", [coupon], 2_000))
    deliver(lambda_context, "order.refunded",
            {"orderId": "SO-1", "memberId": member_id, "refundId": "R1"})
    assert status_of(member_id, coupon) == "available"
    assert coupons.get_template("T20OFF200").redeemed == 0


def test_a_partial_refund_keeps_the_coupon_used_and_refunds_net_of_its_share(
        member_id, lambda_context):
    coupon = claim()
    deliver(lambda_context, "order.paid",
            paid_event(member_id, "SO-1", [coupon], 2_000, balance=23_000))
    before = store.read_live_range(member_id).member.balance_principal
    deliver(lambda_context, "order.refunded",
            {"orderId": "SO-1", "memberId": member_id, "refundId": "R1",
             "lines": [{"lineId": "2", "quantity": 1}]})
    after = store.read_live_range(member_id).member.balance_principal
    assert status_of(member_id, coupon) == "used"
    # line 2 (50 yuan of 250) carried 400 fen of the 2,000 coupon: 4,600 came back
    assert after - before == 4_600
    deliver(lambda_context, "order.refunded",
            {"orderId": "SO-1", "memberId": member_id, "refundId": "R2"})
    assert status_of(member_id, coupon) == "available"
    assert store.read_live_range(member_id).member.balance_principal == 50_000
    assert reconcile_member(member_id) == []
