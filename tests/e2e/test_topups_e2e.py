"""Top-ups and refunds through the local stack over HTTP, against the public contract."""
import random
import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e


def new_member(stack) -> str:
    sub = f"user-{uuid.uuid4().hex[:12]}"
    phone = "139" + "".join(random.choice("0123456789") for _ in range(8))
    created = requests.post(f"{stack.api_url}/v1/members", headers=stack.auth(sub), timeout=30,
                            json={"phone": phone, "nickname": "Demo", "channel": "app"})
    assert created.status_code == 201, created.text
    return sub


def top_up(stack, sub, key, **changes):
    body = {"amount": 100_000, "paymentReference": f"test-{uuid.uuid4().hex}",
            "channel": "alipay", **changes}
    return requests.post(f"{stack.api_url}/v1/members/me/topups", json=body, timeout=30,
                         headers={**stack.auth(sub), "Idempotency-Key": key})


def balance(stack, sub) -> dict:
    profile = requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub), timeout=30)
    assert profile.status_code == 200, profile.text
    return profile.json()["balance"]


def test_top_up_credits_principal_and_bonus_and_replays_once(stack):
    sub = new_member(stack)
    reference = f"test-{uuid.uuid4().hex}"
    first = top_up(stack, sub, "k1", paymentReference=reference)
    assert first.status_code == 201, first.text
    assert (first.json()["principal"], first.json()["bonus"]) == (100_000, 12_000)
    assert first.headers["Idempotent-Replayed"] == "false"
    again = top_up(stack, sub, "k1", paymentReference=reference)
    other_key = top_up(stack, sub, "k2", paymentReference=reference)
    assert again.status_code == other_key.status_code == 201
    assert again.json() == other_key.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balance(stack, sub) == {"principal": 100_000, "bonus": 12_000, "total": 112_000}


def test_same_key_with_another_body_is_422(stack):
    sub = new_member(stack)
    assert top_up(stack, sub, "k1").status_code == 201
    reused = top_up(stack, sub, "k1")
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"


def test_top_up_without_an_idempotency_key_is_400(stack):
    sub = new_member(stack)
    response = requests.post(f"{stack.api_url}/v1/members/me/topups", timeout=30,
                             headers=stack.auth(sub),
                             json={"amount": 100, "paymentReference": "test-x",
                                   "channel": "alipay"})
    assert response.status_code == 400 and response.json()["code"] == "idempotency_key_required"


def test_top_up_above_the_maximum_is_refused(stack):
    sub = new_member(stack)
    response = top_up(stack, sub, "k1", amount=500_001)
    assert response.status_code == 422 and response.json()["code"] == "topup_above_maximum"
    assert balance(stack, sub)["total"] == 0


def test_admin_refunds_a_top_up_and_the_member_needs_admin_scope(stack):
    sub = new_member(stack)
    topup_id = top_up(stack, sub, "k1").json()["topupId"]
    url = f"{stack.api_url}/v1/admin/topups/{topup_id}/refunds"
    body = {"refundReference": f"test-refund-{uuid.uuid4().hex}"}
    forbidden = requests.post(url, json=body, timeout=30,
                              headers={**stack.auth(sub), "Idempotency-Key": "r1"})
    assert forbidden.status_code == 403
    refunded = requests.post(url, json=body, timeout=30,
                             headers={**stack.auth("operator", "admin"), "Idempotency-Key": "r1"})
    assert refunded.status_code == 201, refunded.text
    assert (refunded.json()["principal"], refunded.json()["bonusClawedBack"]) == (100_000, 12_000)
    assert balance(stack, sub) == {"principal": 0, "bonus": 0, "total": 0}


def test_payment_refunded_notice_through_the_event_bus_refunds_once(stack, tmp_path):
    # The payment provider's notice arrives on the bus via the real `aws events put-events`.
    import json
    import time

    from test_orders_e2e import aws_put_events

    sub = new_member(stack)
    reference = f"test-{uuid.uuid4().hex}"
    assert top_up(stack, sub, "k-refund", paymentReference=reference).status_code == 201
    detail = {"paymentReference": reference, "refundReference": f"rf-{uuid.uuid4().hex}",
              "amount": 100_000, "channel": "alipay", "reason": "customer request",
              "occurredAt": "2026-11-22T10:00:00+08:00"}
    entry = {"Source": "payments", "DetailType": "payment.refunded",
             "Detail": json.dumps(detail), "EventBusName": "membership"}
    for _ in range(2):  # delivered twice: refunded once
        answer = aws_put_events(stack, tmp_path, [entry])
        assert answer["FailedEntryCount"] == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and balance(stack, sub)["total"] != 0:
        time.sleep(0.3)
    assert balance(stack, sub) == {"principal": 0, "bonus": 0, "total": 0}
