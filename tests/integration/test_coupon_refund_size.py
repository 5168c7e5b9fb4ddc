"""Every posting can be undone in one transaction: the refund of an order that used the
most coupons a checkout accepts (MAX_COUPONS_PER_ORDER, each from its own template) and
points from the most lots a take may touch (MAX_TAKE_LOTS) is measured, item by item,
under DynamoDB's 100-item limit."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pynamodb.transactions import TransactWrite

from membership.domain import calendar
from membership.domain.checkout import (
    HoldRequest,
    OrderPaid,
    OrderRefunded,
    points_value,
)
from membership.domain.coupons import MAX_COUPONS_PER_ORDER, ClaimRequest, TemplateSpec
from membership.domain.ledger import MAX_TAKE_LOTS
from membership.domain.members import SignupRequest, member_id_for
from membership.services import checkout, coupons, orders
from membership.services import members as member_service
from membership.services.ledger import post_legs, reconcile_member
from membership.storage import coupons as coupon_store
from membership.storage.program import load_program

SUB = "many-coupons"
ITEM_LIMIT = 100


@pytest.fixture
def measured(monkeypatch):
    """The item count of every TransactWriteItems committed while the test runs."""
    sizes: list[int] = []
    real = TransactWrite._commit

    def counting(self):
        sizes.append(len(self._condition_check_items) + len(self._delete_items)
                     + len(self._put_items) + len(self._update_items))
        return real(self)

    monkeypatch.setattr(TransactWrite, "_commit", counting)
    return sizes


def _order_with_every_coupon_and_lot(table):
    now = datetime.now(UTC).replace(microsecond=0)
    member_service.signup(SUB, SignupRequest(phone="13812349999", nickname="M", channel="app"))
    member_id = member_id_for(SUB)

    def lots(b):
        b.debit_points(b.member.points_available)  # the signup gift: only our lots remain
        for i in range(MAX_TAKE_LOTS):
            b.credit_points(10, lot_id=f"lot-{i:03d}", expires_at=now + timedelta(days=400 + i))
    post_legs(member_id, "seed-lots", lots, source_type="test", reason="test")
    coupon_ids = []
    for n in range(MAX_COUPONS_PER_ORDER):
        coupons.create_template(TemplateSpec.model_validate(
            {"templateId": f"STACK-{n}", "name": f"1 off #{n}", "kind": "amount_off",
             "amountOff": 100, "minSpend": 0, "validDays": 30, "stock": 10,
             "perMemberLimit": 1, "claimable": True, "stackable": True}))
        claimed = coupons.claim(SUB, uuid.uuid4().hex,
                                ClaimRequest(templateId=f"STACK-{n}"))
        coupon_ids.append(claimed.result["couponId"])
    points = MAX_TAKE_LOTS * 10
    checkout.hold(HoldRequest(orderId="SO-MAX", memberId=member_id, points=points,
                              couponIds=tuple(coupon_ids)))
    lines = [{"lineId": str(i), "sku": f"SKU{i}", "category": "c", "brand": "b",
              "quantity": 1, "unitPrice": 5_000} for i in range(4)]
    subtotal = 20_000
    coupon_discount = 100 * MAX_COUPONS_PER_ORDER
    value = points_value(points, load_program())
    paid_at = calendar.wire(now - timedelta(minutes=1), "Asia/Shanghai")
    orders.paid(OrderPaid.model_validate({
        "orderId": "SO-MAX", "memberId": member_id, "paidAt": paid_at, "lines": lines,
        "couponIds": coupon_ids,
        "amounts": {"subtotal": subtotal, "discount": coupon_discount,
                    "couponDiscount": coupon_discount, "pointsUsed": points,
                    "balanceUsed": 0, "cashPaid": subtotal - coupon_discount - value}}))
    assert all(coupon_store.get_coupon(member_id, c).status == "used" for c in coupon_ids)
    return member_id, coupon_ids


def test_refunding_an_order_with_ten_coupons_fits_one_transaction(table, measured):
    member_id, coupon_ids = _order_with_every_coupon_and_lot(table)
    assert MAX_COUPONS_PER_ORDER == 10
    measured.clear()
    orders.refunded(OrderRefunded.model_validate(
        {"orderId": "SO-MAX", "memberId": member_id, "refundId": "RF-ALL"}))
    assert len(measured) == 1, "the refund is one transaction"
    items = measured[0]
    # Measured on DynamoDB Local when written: 47 items (20 lots returned, 10 coupons and
    # their 10 templates' redeemed counts, the order, the member, entries, the guard).
    print(f"refund of an order with {MAX_COUPONS_PER_ORDER} coupons and "
          f"{MAX_TAKE_LOTS} lots: {items} items")
    assert items < ITEM_LIMIT
    assert all(coupon_store.get_coupon(member_id, c).status == "available" for c in coupon_ids)
    assert [coupons.get_template(f"STACK-{n}").redeemed
            for n in range(MAX_COUPONS_PER_ORDER)] == [0] * MAX_COUPONS_PER_ORDER
    assert reconcile_member(member_id) == []


def test_the_payment_that_used_ten_coupons_fit_one_transaction(table, measured):
    _order_with_every_coupon_and_lot(table)
    assert max(measured) < ITEM_LIMIT
