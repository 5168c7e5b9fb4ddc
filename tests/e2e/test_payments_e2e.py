"""Top-ups paid through the local stack's fake WeChat Pay and Alipay, over HTTP: the stack
runs with `--payment-verifier providers`, so the app's own call is verified by the fake
provider's signed query answer, and `membership-local pay` has the fake provider notify
the API as the real one does."""
import json
import os
import random
import subprocess
import uuid

import pytest
import requests

from membership.domain.members import member_id_for
from membership.domain.payments import topup_attach

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
