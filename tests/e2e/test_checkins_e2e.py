"""Check-ins and tasks through the local stack: HTTP for the member's calls, the real
`aws events put-events` against the local event bus for the order system's review.posted."""
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

pytestmark = pytest.mark.e2e


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def put_events(stack, tmp_path, entries) -> None:
    path = tmp_path / f"entries-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(entries))
    events_url = json.loads((stack.key_file.parent / "stack.json").read_text())["events_url"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    done = subprocess.run(
        [_bin("aws"), "events", "put-events", "--endpoint-url", events_url,
         "--entries", f"file://{path}", "--output", "json"],
        capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["FailedEntryCount"] == 0


def order_entry(detail_type, detail):
    return {"Source": "brand.orders", "DetailType": detail_type, "Detail": json.dumps(detail),
            "EventBusName": "membership"}


def join(stack, **fields) -> tuple[str, str]:
    sub = f"checker-{uuid.uuid4().hex[:12]}"
    phone = "139" + "".join(random.choice("0123456789") for _ in range(8))
    created = requests.post(f"{stack.api_url}/v1/members", headers=stack.auth(sub), timeout=30,
                            json={"phone": phone, "nickname": "Checker", "channel": "app",
                                  **fields})
    assert created.status_code == 201, created.text
    return sub, created.json()["memberId"]


def points(stack, sub) -> int:
    profile = requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub), timeout=30)
    assert profile.status_code == 200, profile.text
    return profile.json()["points"]["available"]


def checkins(stack, sub, method="POST", **kwargs):
    return requests.request(method, f"{stack.api_url}/v1/members/me/checkins",
                            headers=stack.auth(sub), timeout=30, **kwargs)


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


def test_check_in_once_a_day_then_the_calendar(stack):
    sub, _ = join(stack)
    first = checkins(stack, sub)
    assert first.status_code == 201, first.text
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert (first.json()["date"], first.json()["points"], first.json()["streak"]) == (
        today, 5, 1)
    again = checkins(stack, sub, json={})
    assert again.status_code == 409 and again.json()["code"] == "already_checked_in"
    assert points(stack, sub) == 105
    calendar = checkins(stack, sub, "GET", params={"month": today[:7]})
    assert calendar.status_code == 200, calendar.text
    assert calendar.json()["checkedInToday"] is True
    assert calendar.json()["days"] == [{"date": today, "makeUp": False}]
    assert checkins(stack, sub, "GET", params={"month": "2025-13"}).status_code == 422


def test_a_make_up_before_joining_is_refused_with_its_reason(stack):
    sub, _ = join(stack)
    yesterday = (datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(days=1)).date()
    refused = checkins(stack, sub, json={"date": yesterday.isoformat()})
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "makeup_not_allowed"
    assert refused.json()["details"]["reason"] == "before_joined"
    assert points(stack, sub) == 100


def test_the_program_lists_tasks_and_a_profile_task_completes_once(stack):
    sub, _ = join(stack, storeId="store-001")
    program = requests.get(f"{stack.api_url}/v1/program", headers=stack.auth(sub), timeout=30)
    assert {t["id"] for t in program.json()["tasks"]} == {"profile_completed", "review_posted"}
    assert program.json()["checkin"]["makeUpPerMonth"] == 2
    url = f"{stack.api_url}/v1/members/me/tasks/profile_completed/completions"
    done = requests.post(url, headers=stack.auth(sub), timeout=30)
    assert done.status_code == 201, done.text
    twice = requests.post(url, headers=stack.auth(sub), timeout=30, json={})
    assert twice.status_code == 409 and twice.json()["code"] == "task_already_completed"
    assert points(stack, sub) == 150


def test_a_review_of_a_paid_order_through_the_bus_earns_once(stack, tmp_path):
    sub, member_id = join(stack)
    order_id = f"SO-{uuid.uuid4().hex[:10]}"
    paid_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    put_events(stack, tmp_path, [order_entry("order.paid", {
        "orderId": order_id, "memberId": member_id, "storeId": "store-001", "paidAt": paid_at,
        "lines": [{"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme",
                   "quantity": 1, "unitPrice": 10_000}],
        "amounts": {"subtotal": 10_000, "discount": 0, "pointsUsed": 0, "balanceUsed": 0,
                    "cashPaid": 10_000}})])
    profile = f"{stack.api_url}/v1/members/me"
    assert wait_for(lambda: requests.get(profile, headers=stack.auth(sub), timeout=30)
                    .json()["points"]["pending"] == 100)
    review = order_entry("review.posted", {"memberId": member_id, "orderId": order_id,
                                           "reviewId": "RV-1"})
    put_events(stack, tmp_path, [review, review])  # a duplicate delivery too
    assert wait_for(lambda: points(stack, sub) == 110)
    time.sleep(1)
    assert points(stack, sub) == 110


def test_the_openapi_document_has_the_check_in_and_task_routes(stack):
    document = requests.get(f"{stack.api_url}/openapi.json", timeout=30).json()
    assert {"post", "get"} <= set(document["paths"]["/v1/members/me/checkins"])
    assert "post" in document["paths"]["/v1/members/me/tasks/{taskId}/completions"]
