"""Top-ups and PLUS terms paid through the local stack's fake WeChat Pay and Alipay, over
HTTP: the stack runs with `--payment-verifier providers`, so the app's own call is verified
by the fake provider's signed query answer, and `membership-local pay` has the fake
provider notify the API as the real one does."""
import json
import os
import random
import subprocess
import uuid

import pytest
import requests

from membership.domain.members import member_id_for
from membership.domain.payments import plan_attach, topup_attach

pytestmark = pytest.mark.e2e


@pytest.fixture
def pay(paying_stack, local_command):
    """`membership-local pay ...` against the paying stack, as a newcomer runs it."""
    def run(*args: str) -> dict:
        return _pay(local_command, paying_stack, *args)

    return run


def _pay(command, stack, *args: str) -> dict:
    done = subprocess.run([*command, "pay", *args], capture_output=True, text=True,
                          timeout=120,
                          env={**os.environ, "MEMBERSHIP_LOCAL_HOME": str(stack.home)})
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def new_member(stack) -> str:
    sub = f"user-{uuid.uuid4().hex[:12]}"
    phone = "139" + "".join(random.choice("0123456789") for _ in range(8))
    created = requests.post(f"{stack.api_url}/v1/members", headers=stack.auth(sub), timeout=30,
                            json={"phone": phone, "nickname": "Payer", "channel": "app"})
    assert created.status_code == 201, created.text
    return sub


def balance(stack, sub) -> dict:
    profile = requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub), timeout=30)
    assert profile.status_code == 200, profile.text
    return profile.json()["balance"]


def app_top_up(stack, sub, reference, amount, channel):
    return requests.post(f"{stack.api_url}/v1/members/me/topups", timeout=30,
                         headers={**stack.auth(sub), "Idempotency-Key": uuid.uuid4().hex},
                         json={"amount": amount, "paymentReference": reference,
                               "channel": channel})


def fake_url(stack) -> str:
    return json.loads((stack.home / "stack.json").read_text())["fake_providers_url"]


def test_a_topup_paid_through_the_fake_wechatpay_notification_is_credited_once(paying_stack,
                                                                              pay):
    sub = new_member(paying_stack)
    paid = pay("wechatpay", "--sub", sub, "--amount", "50000")
    assert (paid["notified"], paid["status"]) == (True, 200)
    assert json.loads(paid["response"]) == {"code": "SUCCESS", "message": "OK"}
    assert balance(paying_stack, sub) == {"principal": 50_000, "bonus": 5_000, "total": 55_000}
    # The app's own call, after the notification: verified by the fake's query, replayed.
    again = app_top_up(paying_stack, sub, paid["outTradeNo"], 50_000, "wechat_pay")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert balance(paying_stack, sub)["total"] == 55_000


def test_a_wechatpay_refund_notification_refunds_the_topup(paying_stack, pay):
    sub = new_member(paying_stack)
    paid = pay("wechatpay", "--sub", sub, "--amount", "50000")
    refunded = pay("wechatpay", "--sub", sub, "--reference", paid["outTradeNo"],
                   "--refund", "50000")
    assert refunded["status"] == 200, refunded
    assert balance(paying_stack, sub) == {"principal": 0, "bonus": 0, "total": 0}


def test_the_apps_alipay_call_is_verified_by_the_fake_alipay_before_any_notification(
        paying_stack, pay):
    sub = new_member(paying_stack)
    paid = pay("alipay", "--sub", sub, "--amount", "100000", "--no-notify")
    assert paid["notified"] is False
    answer = app_top_up(paying_stack, sub, paid["outTradeNo"], 100_000, "alipay")
    assert answer.status_code == 201, answer.text
    assert (answer.json()["principal"], answer.json()["bonus"]) == (100_000, 12_000)
    wrong = app_top_up(paying_stack, sub, f"AL-{uuid.uuid4().hex[:12]}", 100_000, "alipay")
    assert (wrong.status_code, wrong.json()["code"]) == (422, "payment_not_verified")


def test_a_payment_made_for_another_member_cannot_be_claimed(paying_stack):
    owner, claimant = new_member(paying_stack), new_member(paying_stack)
    reference = f"WX{uuid.uuid4().hex[:20].upper()}"
    requests.post(f"{fake_url(paying_stack)}/_fake/payments", timeout=30, json={
        "channel": "wechat_pay", "outTradeNo": reference, "amount": 10_000,
        "attach": topup_attach(member_id_for(owner)), "notify": False}).raise_for_status()
    stolen = app_top_up(paying_stack, claimant, reference, 10_000, "wechat_pay")
    assert (stolen.status_code, stolen.json()["code"]) == (422, "payment_not_verified")
    assert balance(paying_stack, claimant)["total"] == 0


def test_the_notification_routes_need_no_token_and_refuse_unsigned_bodies(paying_stack):
    for path, content_type, body in (
            ("/v1/payments/wechatpay/notifications", "application/json", b"{}"),
            ("/v1/payments/alipay/notifications", "application/x-www-form-urlencoded",
             b"app_id=1")):
        answer = requests.post(paying_stack.api_url + path, data=body, timeout=30,
                               headers={"content-type": content_type})
        assert answer.status_code == 400 and answer.json()["code"] == "malformed_notification"
    spec = requests.get(f"{paying_stack.api_url}/openapi.json", timeout=60).json()
    assert spec["paths"]["/v1/payments/wechatpay/notifications"]["post"]["security"] == []


# ---- a paid plan (PLUS) bought through the fake providers ---------------------------------

def plan_of(stack, sub) -> dict:
    read = requests.get(f"{stack.api_url}/v1/members/me/subscriptions", timeout=30,
                        headers=stack.auth(sub), params={"planId": "PLUS"})
    assert read.status_code == 200, read.text
    return read.json()


def app_buys_plan(stack, sub, reference, term, channel):
    return requests.post(f"{stack.api_url}/v1/members/me/subscriptions", timeout=30,
                         headers={**stack.auth(sub), "Idempotency-Key": uuid.uuid4().hex},
                         json={"planId": "PLUS", "term": term, "paymentReference": reference,
                               "channel": channel})


def test_a_plus_month_paid_through_the_fake_wechatpay_notification_is_bought_once(
        paying_stack, pay):
    sub = new_member(paying_stack)
    assert plan_of(paying_stack, sub)["nextTerm"] == 1
    # `pay --plan` reads the plan's nextTerm and price, as the app does, and puts them in
    # the payment's attach.
    paid = pay("wechatpay", "--sub", sub, "--plan", "PLUS", "--term", "monthly")
    assert (paid["notified"], paid["status"]) == (True, 200), paid
    assert json.loads(paid["response"]) == {"code": "SUCCESS", "message": "OK"}
    plan = plan_of(paying_stack, sub)
    assert (plan["status"], plan["nextTerm"], len(plan["terms"])) == ("active", 2, 1)
    (term,) = plan["terms"]
    assert (term["status"], term["price"], term["paidWith"], term["paymentReference"]) == (
        "current", 1_900, "payment", paid["outTradeNo"])
    profile = requests.get(f"{paying_stack.api_url}/v1/members/me", timeout=30,
                           headers=paying_stack.auth(sub)).json()
    assert profile["paidPlan"]["endsAt"] == plan["endsAt"]
    # The provider sends the notification again: acknowledged, nothing changes.
    again = pay("wechatpay", "--sub", sub, "--plan", "PLUS", "--term", "monthly",
                "--term-number", "1", "--reference", paid["outTradeNo"])
    assert (again["status"], json.loads(again["response"])["code"]) == (200, "SUCCESS")
    assert plan_of(paying_stack, sub) == plan
    # The app's own call after the notification replays the purchase.
    call = app_buys_plan(paying_stack, sub, paid["outTradeNo"], "monthly", "wechat_pay")
    assert call.status_code == 201 and call.headers["Idempotent-Replayed"] == "true", call.text
    assert plan_of(paying_stack, sub) == plan


def test_a_plus_quarter_claimed_by_the_app_is_verified_by_the_fake_alipay(paying_stack, pay):
    sub = new_member(paying_stack)
    paid = pay("alipay", "--sub", sub, "--plan", "PLUS", "--term", "quarterly", "--no-notify")
    assert paid["notified"] is False
    call = app_buys_plan(paying_stack, sub, paid["outTradeNo"], "quarterly", "alipay")
    assert call.status_code == 201, call.text
    assert call.json()["term"]["termId"].endswith(".PLUS.0001")
    plan = plan_of(paying_stack, sub)
    # Alipay's notification after the app's call buys nothing more.
    late = pay("alipay", "--sub", sub, "--plan", "PLUS", "--term", "quarterly",
               "--term-number", "1", "--reference", paid["outTradeNo"])
    assert (late["status"], late["response"]) == (200, "success")
    assert plan_of(paying_stack, sub) == plan
    # A payment for the term that exists now buys nothing: the brand refunds it.
    stale = requests.post(f"{fake_url(paying_stack)}/_fake/payments", timeout=60, json={
        "channel": "alipay", "outTradeNo": f"AL{uuid.uuid4().hex[:20].upper()}",
        "amount": 4_900, "attach": plan_attach(member_id_for(sub), "PLUS", "quarterly", 1)})
    assert stale.json()["status"] == 422, stale.text
    assert json.loads(stale.json()["response"])["code"] == "payment_not_verified"
    assert plan_of(paying_stack, sub) == plan
