"""Checkout and order events through the local stack: HTTP for quote and hold, the real
`aws events put-events` against the local event bus for the order system's events."""
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "events" / "samples"


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def home(stack) -> Path:
    return stack.key_file.parent


def events_url(stack) -> str:
    return json.loads((home(stack) / "stack.json").read_text())["events_url"]


def aws_put_events(stack, tmp_path, entries) -> dict:
    path = tmp_path / f"entries-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(entries))
    return aws_put_events_file(stack, path)


def aws_put_events_file(stack, path) -> dict:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    done = subprocess.run(
        [_bin("aws"), "events", "put-events", "--endpoint-url", events_url(stack),
         "--entries", f"file://{path}", "--output", "json"],
        capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def new_member(stack) -> tuple[str, str]:
    sub = f"shopper-{uuid.uuid4().hex[:12]}"
    phone = "139" + "".join(random.choice("0123456789") for _ in range(8))
    created = requests.post(f"{stack.api_url}/v1/members", headers=stack.auth(sub), timeout=30,
                            json={"phone": phone, "nickname": "Shopper", "channel": "app"})
    assert created.status_code == 201, created.text
    return sub, created.json()["memberId"]


def profile(stack, sub) -> dict:
    answer = requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


LINES = [{"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 2,
          "unitPrice": 10_000}]


def order_entry(detail_type, detail):
    return {"Source": "brand.orders", "DetailType": detail_type, "Detail": json.dumps(detail),
            "EventBusName": "membership"}


def paid_entry(member_id, order_id, points=0):
    paid_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return order_entry("order.paid", {
        "orderId": order_id, "memberId": member_id, "storeId": "store-001", "paidAt": paid_at,
        "lines": LINES, "amounts": {"subtotal": 20_000, "discount": 0, "pointsUsed": points,
                                    "balanceUsed": 0, "cashPaid": 20_000 - points}})


def test_quote_hold_then_paid_events_settle_once(stack, tmp_path):
    sub, member_id = new_member(stack)
    orders = stack.auth("order-system", "orders")
    quote = requests.post(f"{stack.api_url}/v1/checkout/quote", headers=orders, timeout=30,
                          json={"memberId": member_id, "lines": LINES, "pointsToRedeem": 100})
    assert quote.status_code == 200, quote.text
    assert (quote.json()["pointsValue"], quote.json()["payable"]) == (100, 19_900)
    order_id = f"SO-{uuid.uuid4().hex[:10]}"
    hold = requests.post(f"{stack.api_url}/v1/checkout/holds", headers=orders, timeout=30,
                         json={"orderId": order_id, "memberId": member_id, "points": 100})
    assert hold.status_code == 201, hold.text
    # The order system delivers order.paid three times in one call.
    answer = aws_put_events(stack, tmp_path, [paid_entry(member_id, order_id, points=100)] * 3)
    assert answer["FailedEntryCount"] == 0
    settled = wait_for(lambda: profile(stack, sub)["points"]["pending"] == 199)
    assert settled, profile(stack, sub)
    aws_put_events(stack, tmp_path, [order_entry("order.completed", {
        "orderId": order_id, "memberId": member_id})])
    assert wait_for(lambda: profile(stack, sub)["points"]["available"] == 199)
    assert profile(stack, sub)["points"]["pending"] == 0


def test_a_refund_sent_before_its_payment_is_applied_once_the_payment_lands(stack, tmp_path):
    sub, member_id = new_member(stack)
    order_id = f"SO-{uuid.uuid4().hex[:10]}"
    aws_put_events(stack, tmp_path, [order_entry("order.refunded", {
        "orderId": order_id, "memberId": member_id, "refundId": "RF-1"})])
    time.sleep(0.5)
    aws_put_events(stack, tmp_path, [paid_entry(member_id, order_id)])
    # Paid earns 200 pending points; the whole-order refund takes them back again.
    assert wait_for(lambda: profile(stack, sub)["growth"]["rolling12Months"] == 0
                    and profile(stack, sub)["points"]["pending"] == 0, timeout=40)
    points = profile(stack, sub)["points"]
    assert (points["available"], points["pending"]) == (100, 0)  # the signup gift only


def test_the_sample_entries_file_is_accepted_and_a_malformed_event_reaches_the_dlq(
        stack, tmp_path):
    answer = aws_put_events_file(stack, SAMPLES / "order.paid.json")
    assert answer["FailedEntryCount"] == 0 and answer["Entries"][0]["EventId"]
    marker = f"SO-bad-{uuid.uuid4().hex[:8]}"
    aws_put_events(stack, tmp_path, [order_entry("order.paid", {"orderId": marker})])

    def listed():
        done = subprocess.run(
            [_bin("membership-local"), "dlq", "--json"], capture_output=True, text=True,
            timeout=60, env={**os.environ, "MEMBERSHIP_LOCAL_HOME": str(home(stack))},
            check=True)
        return [json.loads(line) for line in done.stdout.splitlines()
                if marker in line]

    records = wait_for(listed, timeout=60)
    assert records, "the malformed event never reached the local DLQ"
    assert records[0]["rule"] == "OrderEventsFunction.OrderPaid"
    assert records[0]["attempts"] > 1
