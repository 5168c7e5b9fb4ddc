"""Signup and profile through the local stack, against the public contract (issue #2)."""
import random
import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e

DEMO = {"nickname": "Demo", "channel": "app", "storeId": "store-001"}


def new_sub() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def new_phone() -> str:
    return "139" + "".join(random.choice("0123456789") for _ in range(8))


def signup(stack, sub, phone, **fields):
    return requests.post(f"{stack.api_url}/v1/members", json={"phone": phone, **DEMO, **fields},
                         headers=stack.auth(sub), timeout=30)


def me(stack, sub):
    return requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub), timeout=30)


def test_signup_then_profile_with_the_masked_phone(stack):
    sub = new_sub()
    created = signup(stack, sub, "13812345678")
    assert created.status_code == 201, created.text
    profile = me(stack, sub)
    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert body["memberId"] == created.json()["memberId"]
    assert body["phone"] == "+86138****5678"
    assert (body["nickname"], body["channel"], body["storeId"]) == ("Demo", "app", "store-001")
    assert body["tier"]["id"] and body["tier"]["name"]
    for key in ("nextTier", "growth", "points", "balance", "benefits", "paidPlan", "createdAt"):
        assert key in body
    assert body["growth"]["rolling12Months"] == 0
    assert body["points"]["available"] == 100  # the default program's signup gift
    assert body["balance"] == {"principal": 0, "bonus": 0, "total": 0}


def test_second_signup_by_the_same_subject_returns_the_member(stack):
    sub, phone = new_sub(), new_phone()
    first = signup(stack, sub, phone)
    assert first.status_code == 201, first.text
    again = signup(stack, sub, phone)
    assert again.status_code == 200, again.text
    assert again.json()["memberId"] == first.json()["memberId"]


def test_phone_held_by_another_subject_is_409(stack):
    phone = new_phone()
    assert signup(stack, new_sub(), phone).status_code == 201
    taken = signup(stack, new_sub(), phone)
    assert taken.status_code == 409, taken.text
    assert taken.json()["code"] == "phone_taken"


def test_profile_before_signup_is_404(stack):
    response = me(stack, new_sub())
    assert response.status_code == 404
    assert response.json()["code"] == "member_not_found"


def test_program_is_readable_by_members(stack):
    response = requests.get(f"{stack.api_url}/v1/program", headers=stack.auth(new_sub()),
                            timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()


def test_a_member_sees_only_their_own_profile(stack):
    alice, bob = new_sub(), new_sub()
    assert signup(stack, alice, new_phone(), nickname="Alice").status_code == 201
    assert signup(stack, bob, new_phone(), nickname="Bob").status_code == 201
    alice_view, bob_view = me(stack, alice).json(), me(stack, bob).json()
    assert alice_view["nickname"] == "Alice"
    assert bob_view["nickname"] == "Bob"
    assert alice_view["memberId"] != bob_view["memberId"]
