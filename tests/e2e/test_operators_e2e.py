"""Operators through the local stack: program versions, lookup, adjustments, freeze, and a
bulk grant fanned out over the local queue to the real worker."""
import random
import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e

OPERATOR = "ops-e2e"


def new_phone() -> str:
    return "137" + "".join(random.choice("0123456789") for _ in range(8))


def signup(stack, sub):
    answer = requests.post(f"{stack.api_url}/v1/members",
                           json={"phone": new_phone(), "nickname": "E", "channel": "app"},
                           headers=stack.auth(sub), timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()


def admin(stack, method, path, **kwargs):
    headers = {**stack.auth(OPERATOR, "admin"), **kwargs.pop("headers", {})}
    return requests.request(method, f"{stack.api_url}{path}", headers=headers, timeout=30,
                            **kwargs)


def grant_when_completed(stack, grant_id: str, timeout: float = 120) -> dict:
    """The grant's status once the local workers completed it (or the last one read)."""
    deadline = time.monotonic() + timeout
    while True:
        body = admin(stack, "GET", f"/v1/admin/grants/{grant_id}").json()
        if body["status"] == "completed" or time.monotonic() >= deadline:
            return body
        time.sleep(0.3)


def test_a_bulk_grant_fans_out_over_the_local_queue(stack):
    members = [signup(stack, f"grantee-{uuid.uuid4().hex[:8]}") for _ in range(5)]
    ids = [m["memberId"] for m in members] + ["M" + "z" * 24]
    grant_id = f"G-{uuid.uuid4().hex[:8]}"
    accepted = admin(stack, "POST", "/v1/admin/grants", json={
        "grantId": grant_id, "points": 300, "reasonCode": "campaign", "memberIds": ids})
    assert accepted.status_code == 202, accepted.text
    body = grant_when_completed(stack, grant_id)
    assert (body["status"], body["total"], body["done"], body["failed"]) == (
        "completed", 6, 5, 1), body
    assert body["failures"][0]["code"] == "member_not_found"
    found = admin(stack, "GET", f"/v1/admin/members/{ids[0]}").json()
    assert found["points"]["available"] == 100 + 300
    assert any(e["sourceType"] == "grant" and e["actor"] == OPERATOR
               for e in found["lastEntries"])


def test_a_tag_grant_is_expanded_by_the_local_worker(stack):
    tag = f"e2e-{uuid.uuid4().hex[:8]}"
    subs = [f"tagged-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    ids = [signup(stack, sub)["memberId"] for sub in subs]
    for member_id in ids[:2]:
        assert admin(stack, "PUT", f"/v1/admin/members/{member_id}/tags/{tag}").status_code == 200
    withdrawn = requests.patch(f"{stack.api_url}/v1/members/me", json={"marketingConsent": False},
                               headers=stack.auth(subs[1]), timeout=30)
    assert withdrawn.status_code == 200, withdrawn.text
    grant_id = f"G-{uuid.uuid4().hex[:8]}"
    accepted = admin(stack, "POST", "/v1/admin/grants", json={
        "grantId": grant_id, "points": 300, "reasonCode": "campaign", "tag": tag})
    assert accepted.status_code == 202, accepted.text
    assert (accepted.json()["tag"], accepted.json()["expanded"]) == (tag, False)
    body = grant_when_completed(stack, grant_id)
    assert (body["status"], body["expanded"], body["total"], body["done"]) == (
        "completed", True, 1, 1), body
    points = [admin(stack, "GET", f"/v1/admin/members/{m}").json()["points"]["available"]
              for m in ids]
    assert points == [100 + 300, 100, 100]


def test_program_versions_through_the_gateway(stack):
    current = admin(stack, "GET", "/v1/admin/program")
    assert current.status_code == 200
    tag, program = current.headers["ETag"], current.json()["program"]
    assert admin(stack, "PUT", "/v1/admin/program", json=program).status_code == 428
    renamed = admin(stack, "PUT", "/v1/admin/program", json={**program, "name": "E2E"},
                    headers={"If-Match": tag})
    assert renamed.status_code == 200, renamed.text
    stale = admin(stack, "PUT", "/v1/admin/program", json=program, headers={"If-Match": tag})
    assert stale.status_code == 412
    back = admin(stack, "PUT", "/v1/admin/program", json=program,
                 headers={"If-Match": renamed.headers["ETag"]})
    assert back.status_code == 200
    versions = admin(stack, "GET", "/v1/admin/program/versions").json()["versions"]
    assert versions[0]["version"] == back.json()["version"]


def test_lookup_adjust_and_freeze_through_the_gateway(stack):
    sub = f"desk-{uuid.uuid4().hex[:8]}"
    member = signup(stack, sub)
    member_id = member["memberId"]
    full = admin(stack, "GET", "/v1/admin/members/" + member_id).json()["contact"]["phone"]
    found = admin(stack, "GET", "/v1/admin/members", params={"phone": full[3:]}).json()
    assert [m["memberId"] for m in found["members"]] == [member_id]
    adjusted = admin(stack, "POST", f"/v1/admin/members/{member_id}/adjustments", json={
        "adjustmentId": f"A-{uuid.uuid4().hex[:8]}", "asset": "points", "amount": -40,
        "reasonCode": "correction", "note": "double credit"})
    assert adjusted.status_code == 201, adjusted.text
    assert adjusted.json()["after"]["points"]["available"] == 60
    frozen = admin(stack, "PATCH", f"/v1/admin/members/{member_id}",
                   json={"status": "frozen", "reason": "e2e"})
    assert frozen.status_code == 200
    hold = requests.post(f"{stack.api_url}/v1/checkout/holds",
                         json={"orderId": f"SO-{uuid.uuid4().hex[:8]}", "memberId": member_id,
                               "points": 10},
                         headers=stack.auth("order-system", "orders"), timeout=30)
    assert (hold.status_code, hold.json()["code"]) == (403, "member_frozen")
    me = requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub), timeout=30)
    assert me.json()["status"] == "frozen"


def test_member_and_orders_tokens_are_refused_on_admin_routes(stack):
    for scope in ("member", "orders"):
        answer = requests.get(f"{stack.api_url}/v1/admin/program",
                              headers=stack.auth("someone", scope), timeout=30)
        assert answer.status_code == 403
