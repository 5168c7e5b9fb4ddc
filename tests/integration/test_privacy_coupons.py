"""Account closure and coupons (docs/privacy.md): unused coupons go, used ones stay."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from membership.domain import calendar
from membership.domain.checkout import OrderPaid
from membership.domain.coupons import ClaimRequest, TemplateSpec
from membership.domain.member_status import MemberFrozen, StatusChange
from membership.domain.members import SignupRequest, member_id_for
from membership.domain.privacy import COUPONS_IN_CLOSURE
from membership.services import admin_members, coupons, orders, privacy
from membership.services import members as member_service
from membership.services.ledger import reconcile_member
from membership.storage import privacy as privacy_store
from membership.storage.coupons import CouponItem
from membership.storage.models import member_pk

SUB = "closing-with-coupons"


def _member_with_coupons(count: int) -> tuple[str, list[str]]:
    member_service.signup(SUB, SignupRequest(phone="13812340077", nickname="C", channel="app"))
    coupons.create_template(TemplateSpec.model_validate(
        {"templateId": "CLOSE-1OFF", "name": "1 off", "kind": "amount_off", "amountOff": 100,
         "minSpend": 0, "validDays": 30, "stock": 500, "perMemberLimit": 200,
         "claimable": True, "stackable": True}))
    ids = [coupons.claim(SUB, uuid.uuid4().hex,
                         ClaimRequest(templateId="CLOSE-1OFF")).result["couponId"]
           for _ in range(count)]
    return member_id_for(SUB), ids


def _use(member_id: str, coupon_id: str) -> None:
    paid_at = calendar.wire(datetime.now(UTC) - timedelta(minutes=1), "Asia/Shanghai")
    orders.paid(OrderPaid.model_validate({
        "orderId": "SO-CLOSE", "memberId": member_id, "paidAt": paid_at,
        "couponIds": [coupon_id],
        "lines": [{"lineId": "1", "sku": "SKU1", "category": "c", "brand": "b",
                   "quantity": 1, "unitPrice": 5_000}],
        "amounts": {"subtotal": 5_000, "discount": 100, "couponDiscount": 100,
                    "pointsUsed": 0, "balanceUsed": 0, "cashPaid": 4_900}}))


def _coupon_statuses(member_id: str) -> dict[str, str]:
    return {c.coupon_id: c.status for c in CouponItem.query(
        member_pk(member_id), CouponItem.SK.startswith("COUPON#"))}


def test_closure_deletes_unused_coupons_and_keeps_a_used_one(table):
    member_id, ids = _member_with_coupons(3)
    _use(member_id, ids[0])
    answer, _ = privacy.close(SUB)
    assert "unusedCoupons" in answer["erased"]
    assert _coupon_statuses(member_id) == {ids[0]: "used"}
    assert reconcile_member(member_id) == []


def test_closure_of_more_unused_coupons_than_one_transaction_takes_removes_them_all(table):
    count = 2 * COUPONS_IN_CLOSURE + 7
    member_id, _ = _member_with_coupons(count)
    privacy.close(SUB)
    assert _coupon_statuses(member_id) == {}


def _after_the_batches_check(monkeypatch, change) -> None:
    """Run `change` once, right after the coupon batches read the member they check."""
    read = privacy_store.read_live_range
    done = []

    def read_then_change(member_id):
        state = read(member_id)
        if not done:
            done.append(True)
            change()
        return state

    monkeypatch.setattr(privacy_store, "read_live_range", read_then_change)


def test_a_freeze_between_the_check_and_a_coupon_batch_is_refused_as_frozen(table,
                                                                             monkeypatch):
    member_id, _ = _member_with_coupons(COUPONS_IN_CLOSURE + 3)
    _after_the_batches_check(monkeypatch, lambda: admin_members.change_status(
        member_id, StatusChange(status="frozen", reason="review"), actor="admin:ops"))
    with pytest.raises(MemberFrozen):
        privacy.close(SUB)
    statuses = _coupon_statuses(member_id)
    assert len(statuses) == COUPONS_IN_CLOSURE + 3
    assert set(statuses.values()) == {"available"}


def test_a_closure_that_commits_between_the_check_and_a_batch_is_answered_again(
        table, monkeypatch):
    member_id, _ = _member_with_coupons(COUPONS_IN_CLOSURE + 3)
    first = []
    _after_the_batches_check(monkeypatch, lambda: first.append(privacy.close(SUB)))
    answer, replayed = privacy.close(SUB)
    assert first == [(answer, False)]
    assert replayed
    assert _coupon_statuses(member_id) == {}
