"""A frozen member (domain/member_status.py) cannot claim coupons nor spend them: no claim,
no quote or hold with coupons, no order paid with coupons it did not hold before the
freeze. Earning goes on, and a claim made before the freeze is answered again."""
from __future__ import annotations

import uuid

import pytest

from membership.domain.checkout import HoldRequest, OrderPaid, QuoteRequest
from membership.domain.coupons import ClaimRequest, TemplateSpec
from membership.domain.member_status import MemberFrozen, StatusChange
from membership.domain.members import SignupRequest, member_id_for
from membership.services import admin_members, coupons, orders
from membership.services import checkout as checkout_service
from membership.services import members as member_service
from membership.storage import coupons as coupon_store

SUB = "frozen-shopper"
LINES = [{"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 2,
          "unitPrice": 12_000}]


def spec() -> TemplateSpec:
    return TemplateSpec.model_validate(
        {"templateId": "T20OFF200", "name": "20 off 200", "kind": "amount_off",
         "amountOff": 2_000, "minSpend": 20_000, "validDays": 7, "stock": 100,
         "perMemberLimit": 5, "claimable": True})


@pytest.fixture
def member_id(table):
    member_service.signup(SUB, SignupRequest(phone="13812345679", nickname="F",
                                             channel="app"))
    coupons.create_template(spec())
    return member_id_for(SUB)


def claim(key=None):
    return coupons.claim(SUB, key or uuid.uuid4().hex, ClaimRequest(templateId="T20OFF200"))


def set_status(member_id, status):
    admin_members.change_status(member_id, StatusChange(status=status, reason="test"),
                                actor="ops")


def test_a_frozen_member_cannot_claim_a_coupon(member_id):
    set_status(member_id, "frozen")
    with pytest.raises(MemberFrozen):
        claim()
    assert coupons.get_template("T20OFF200").issued == 0
    assert coupon_store.member_coupons(member_id) == []


def test_a_claim_made_before_the_freeze_is_answered_again(member_id):
    first = claim(key="k-1")
    set_status(member_id, "frozen")
    again = claim(key="k-1")
    assert again.replayed and again.result == first.result
    assert coupons.get_template("T20OFF200").issued == 1


def test_an_unfrozen_member_claims_again(member_id):
    set_status(member_id, "frozen")
    set_status(member_id, "active")
    assert not claim().replayed


def test_a_frozen_member_cannot_quote_or_hold_with_a_coupon(member_id):
    coupon = claim().result["couponId"]
    set_status(member_id, "frozen")
    with pytest.raises(MemberFrozen):
        checkout_service.quote(QuoteRequest(memberId=member_id, lines=LINES,
                                            couponIds=(coupon,)))
    with pytest.raises(MemberFrozen):
        checkout_service.hold(HoldRequest(orderId="SO-1", memberId=member_id,
                                          couponIds=(coupon,)))
    assert coupon_store.get_coupon(member_id, coupon).status == "available"
    # Without coupons a frozen member is still quoted (a cash order earns as usual).
    assert checkout_service.quote(QuoteRequest(memberId=member_id, lines=LINES)).subtotal


def _paid(member_id, order_id, coupon_ids, discount):
    from datetime import UTC, datetime, timedelta
    subtotal = 24_000
    return OrderPaid.model_validate({
        "orderId": order_id, "memberId": member_id, "storeId": "store-001",
        "paidAt": (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0),
        "lines": LINES, "couponIds": coupon_ids,
        "amounts": {"subtotal": subtotal, "discount": discount, "couponDiscount": discount,
                    "pointsUsed": 0, "balanceUsed": 0, "cashPaid": subtotal - discount}})


def test_a_frozen_member_cannot_pay_with_a_coupon_it_did_not_hold(member_id):
    coupon = claim().result["couponId"]
    set_status(member_id, "frozen")
    with pytest.raises(MemberFrozen):
        orders.paid(_paid(member_id, "SO-1", [coupon], 2_000))
    assert coupon_store.get_coupon(member_id, coupon).status == "available"
    # A cash order without coupons is paid and earns.
    orders.paid(_paid(member_id, "SO-2", [], 0))


def test_a_coupon_held_before_the_freeze_is_used_by_its_order(member_id):
    coupon = claim().result["couponId"]
    checkout_service.hold(HoldRequest(orderId="SO-1", memberId=member_id,
                                      couponIds=(coupon,)))
    set_status(member_id, "frozen")
    orders.paid(_paid(member_id, "SO-1", [coupon], 2_000))
    assert coupon_store.get_coupon(member_id, coupon).status == "used"


# ---- the operator's view counts the member's coupons by status ------------------------

def test_the_operator_view_counts_coupons_by_status(member_id):
    from datetime import UTC, datetime, timedelta

    held = claim().result["couponId"]
    claim()
    checkout_service.hold(HoldRequest(orderId="SO-1", memberId=member_id, couponIds=(held,)))
    summary = admin_members.view(member_id).coupons
    assert (summary.available, summary.held, summary.used, summary.expired,
            summary.total) == (1, 1, 0, 0, 2)
    later = admin_members.view(member_id, now=datetime.now(UTC) + timedelta(days=30)).coupons
    assert (later.available, later.held, later.expired) == (0, 1, 1)
