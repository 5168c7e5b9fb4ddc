"""Coupons through the local stack: an operator creates a template over HTTP, a member
claims it, the order system quotes and holds with it, and `order.paid` sent with the real
`aws events put-events` marks it used."""
import json
import uuid

import pytest
import requests
from test_orders_e2e import aws_put_events, new_member, order_entry, paid_entry, wait_for

pytestmark = pytest.mark.e2e
LINES = [{"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 2,
          "unitPrice": 10_000}]


def test_claim_quote_hold_and_order_paid_leave_the_coupon_used(stack, tmp_path):
    template_id = f"E2E-{uuid.uuid4().hex[:8]}"
    admin = stack.auth("operator", "admin")
    created = requests.post(f"{stack.api_url}/v1/admin/coupon-templates", headers=admin,
                            timeout=30, json={
                                "templateId": template_id, "name": "20 off 200",
                                "kind": "amount_off", "amountOff": 2_000, "minSpend": 20_000,
                                "validDays": 7, "stock": 5, "claimable": True})
    assert created.status_code == 201, created.text
    sub, member_id = new_member(stack)
    welcome = requests.get(f"{stack.api_url}/v1/members/me/coupons", headers=stack.auth(sub),
                           timeout=30).json()["coupons"]
    assert [c["templateId"] for c in welcome] == ["WELCOME-10OFF100"]  # the signup gift
    claimed = requests.post(f"{stack.api_url}/v1/members/me/coupons",
                            headers={**stack.auth(sub), "Idempotency-Key": "claim-1"},
                            json={"templateId": template_id}, timeout=30)
    assert claimed.status_code == 201, claimed.text
    coupon_id = claimed.json()["couponId"]

    orders = stack.auth("order-system", "orders")
    quote = requests.post(f"{stack.api_url}/v1/checkout/quote", headers=orders, timeout=30,
                          json={"memberId": member_id, "lines": LINES,
                                "couponIds": [coupon_id]})
    assert quote.status_code == 200, quote.text
    assert (quote.json()["couponDiscount"], quote.json()["payable"]) == (2_000, 18_000)
    assert quote.json()["applicableCoupons"][0]["couponId"] == coupon_id
    order_id = f"SO-{uuid.uuid4().hex[:10]}"
    hold = requests.post(f"{stack.api_url}/v1/checkout/holds", headers=orders, timeout=30,
                         json={"orderId": order_id, "memberId": member_id,
                               "couponIds": [coupon_id]})
    assert hold.status_code == 201, hold.text

    entry = paid_entry(member_id, order_id)
    detail = {**json.loads(entry["Detail"]), "couponIds": [coupon_id]}
    detail["lines"] = LINES
    detail["amounts"] = {"subtotal": 20_000, "discount": 2_000, "couponDiscount": 2_000,
                         "pointsUsed": 0, "balanceUsed": 0, "cashPaid": 18_000}
    answer = aws_put_events(stack, tmp_path, [order_entry("order.paid", detail)])
    assert answer["FailedEntryCount"] == 0

    def used():
        page = requests.get(f"{stack.api_url}/v1/members/me/coupons?status=used",
                            headers=stack.auth(sub), timeout=30).json()
        return [c for c in page["coupons"] if c["couponId"] == coupon_id]

    found = wait_for(used, timeout=40)
    assert found and found[0]["orderId"] == order_id
    stock = requests.get(f"{stack.api_url}/v1/admin/coupon-templates/{template_id}",
                         headers=admin, timeout=30).json()
    assert (stock["issued"], stock["redeemed"], stock["remaining"]) == (1, 1, 4)
