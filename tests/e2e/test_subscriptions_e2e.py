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
