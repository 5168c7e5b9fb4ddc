"""Paid plan (PLUS) through the local stack over HTTP: buy with a test reference, extend
from balance, read, switch auto-renew; the profile agrees."""
import random
import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e

PATH = "/v1/members/me/subscriptions"


def new_member(stack) -> str:
    sub = f"plus-{uuid.uuid4().hex[:12]}"
    phone = "139" + "".join(random.choice("0123456789") for _ in range(8))
    created = requests.post(f"{stack.api_url}/v1/members", headers=stack.auth(sub), timeout=30,
                            json={"phone": phone, "nickname": "Plus", "channel": "app"})
    assert created.status_code == 201, created.text
    return sub


def buy(stack, sub, key, body):
    return requests.post(f"{stack.api_url}{PATH}", json=body, timeout=30,
                         headers={**stack.auth(sub), "Idempotency-Key": key})


def test_a_member_buys_extends_from_balance_and_reads_the_plan(stack):
    sub = new_member(stack)
    paid = buy(stack, sub, "k1", {"planId": "PLUS", "term": "monthly", "channel": "alipay",
                                  "paymentReference": f"test-{uuid.uuid4().hex}"})
    assert paid.status_code == 201, paid.text
    assert (paid.json()["status"], paid.json()["extended"]) == ("active", False)
    topup = requests.post(f"{stack.api_url}/v1/members/me/topups", timeout=30,
                          headers={**stack.auth(sub), "Idempotency-Key": "t1"},
                          json={"amount": 10_000, "paymentReference": f"test-{uuid.uuid4().hex}",
                                "channel": "alipay"})
    assert topup.status_code == 201, topup.text
    extended = buy(stack, sub, "k2", {"planId": "PLUS", "term": "monthly", "payWith": "balance"})
    assert extended.status_code == 201, extended.text
    assert extended.json()["extended"] is True
    assert extended.json()["balance"]["total"] == 10_000 + 500 - 1_900
    toggled = requests.patch(f"{stack.api_url}{PATH}/current", json={"autoRenew": True},
                             headers=stack.auth(sub), timeout=30)
    assert toggled.status_code == 200, toggled.text
    view = requests.get(f"{stack.api_url}{PATH}", headers=stack.auth(sub), timeout=30).json()
    assert (view["status"], view["autoRenew"], len(view["terms"])) == ("active", True, 2)
    assert view["endsAt"] == extended.json()["endsAt"]
    assert view["nextRenewalOn"] == view["endsAt"][:10]
    profile = requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub),
                           timeout=30).json()
    assert profile["paidPlan"] == {"planId": "PLUS", "endsAt": view["endsAt"], "active": True}


def test_a_second_trial_is_409_trial_used(stack):
    sub = new_member(stack)
    first = buy(stack, sub, "t1", {"planId": "PLUS", "term": "trial"})
    assert first.status_code == 201, first.text
    again = buy(stack, sub, "t2", {"planId": "PLUS", "term": "trial"})
    assert (again.status_code, again.json()["code"]) == (409, "trial_used")


def test_plus_doubles_the_quoted_and_earned_points_and_an_operator_refunds_the_term(
        stack, tmp_path):
    """Buy with a test reference → the quote shows the member price and doubled points →
    order.paid earns them → the operator refunds the term, less the bonus points used."""
    from datetime import UTC, datetime

    from test_orders_e2e import LINES, aws_put_events, order_entry, profile, wait_for

    sub = new_member(stack)
    member_id = requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub),
                             timeout=30).json()["memberId"]
    paid = buy(stack, sub, "k1", {"planId": "PLUS", "term": "monthly", "channel": "alipay",
                                  "paymentReference": f"test-{uuid.uuid4().hex}"})
    assert paid.status_code == 201, paid.text
    orders = stack.auth("order-system", "orders")
    quote = requests.post(f"{stack.api_url}/v1/checkout/quote", headers=orders, timeout=30,
                          json={"memberId": member_id, "lines": LINES})
    assert quote.status_code == 200, quote.text
    q = quote.json()
    # The default PLUS has no member price of its own: the better of tier and plan is the
    # tier's; its points bonus doubles V1's points and it ships free.
    assert (q["paidPlan"], q["memberPriceBy"], q["tierDiscount"]) == ("PLUS", "tier", 0)
    assert (q["pointsToEarn"], q["pointsMultiplierPct"], q["freeShipping"]) == (400, 200, True)
    order_id = f"SO-{uuid.uuid4().hex[:10]}"
    answer = aws_put_events(stack, tmp_path, [order_entry("order.paid", {
        "orderId": order_id, "memberId": member_id, "storeId": "store-001",
        "paidAt": datetime.now(UTC).isoformat(), "lines": LINES,
        "amounts": {"subtotal": 20_000, "discount": 0, "pointsUsed": 0, "balanceUsed": 0,
                    "cashPaid": 20_000}})])
    assert answer["FailedEntryCount"] == 0
    assert wait_for(lambda: profile(stack, sub)["points"]["pending"] == 400), profile(stack, sub)
    view = requests.get(f"{stack.api_url}{PATH}", headers=stack.auth(sub), timeout=30).json()
    assert view["savedThisTerm"]["bonusPoints"] == 200
    refund = requests.post(
        f"{stack.api_url}/v1/admin/subscriptions/{view['subscriptionId']}/refunds",
        headers=stack.auth("operator", "admin"), timeout=30,
        json={"refundId": f"RF-{uuid.uuid4().hex[:10]}", "reason": "member asked"})
    assert refund.status_code == 201, refund.text
    body = refund.json()
    # A benefit was used: no cooling-off refund; unused whole days pro rata minus 200 fen.
    # (the wire's instants carry the program's local offset: their dates are local dates)
    starts = datetime.fromisoformat(view["terms"][0]["startsAt"]).date()
    ends = datetime.fromisoformat(view["terms"][0]["endsAt"]).date()
    today = datetime.fromisoformat(body["refundedAt"]).date()
    days, unused = (ends - starts).days + 1, (ends - today).days
    assert (body["rule"], body["payout"]) == ("pro_rata", "provider")
    assert body["amount"] == max(1_900 * unused // days - 200, 0)
    after = requests.get(f"{stack.api_url}{PATH}", headers=stack.auth(sub), timeout=30).json()
    assert after["status"] == "refunded"
    assert profile(stack, sub)["paidPlan"]["active"] is False
