"""Signup and profile through the real handler, against DynamoDB Local."""
import json
import threading

import pytest

from membership.handlers import members as members_handler
from membership.storage.models import MemberItem, PhoneItem

SIGNUP = {"phone": "13812345678", "nickname": "Lin", "channel": "app", "storeId": "store-001"}


def call(event, context):
    response = members_handler.handler(event, context)
    return response["statusCode"], json.loads(response["body"] or "null")


def signup(apigw_event, ctx, sub="user-a", **changes):
    return call(apigw_event("POST", "/v1/members", {**SIGNUP, **changes}, sub=sub), ctx)


def item_count(table_name):
    return sum(1 for _ in MemberItem.scan())


def test_signup_creates_member_with_signup_gift(table, apigw_event, lambda_context):
    status, body = signup(apigw_event, lambda_context)
    assert status == 201
    assert body["phone"] == "+86138****5678"
    assert body["tier"] == {"id": "V1", "name": "Registered"}
    assert body["points"]["available"] == 100
    assert body["nextTier"] == {"id": "V2", "name": "Silver", "growthNeeded": 1000}
    assert body["balance"] == {"principal": 0, "bonus": 0, "total": 0}


def test_profile_returns_what_signup_created(table, apigw_event, lambda_context):
    _, created = signup(apigw_event, lambda_context)
    status, body = call(apigw_event("GET", "/v1/members/me", sub="user-a"), lambda_context)
    assert status == 200
    assert body == created


def test_same_subject_signing_up_again_gets_existing_member(table, apigw_event, lambda_context):
    _, first = signup(apigw_event, lambda_context)
    status, again = signup(apigw_event, lambda_context, nickname="Other")
    assert status == 200
    assert again["memberId"] == first["memberId"]
    assert again["nickname"] == "Lin"
    assert again["points"]["available"] == 100  # no second gift


def test_phone_of_another_subject_is_refused(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context, sub="user-a")
    status, body = signup(apigw_event, lambda_context, sub="user-b", phone="+86 138 1234 5678")
    assert status == 409
    assert body["code"] == "phone_taken"


def test_profile_before_signup_is_member_not_found(table, apigw_event, lambda_context):
    status, body = call(apigw_event("GET", "/v1/members/me", sub="nobody"), lambda_context)
    assert status == 404
    assert body["code"] == "member_not_found"


def test_member_reads_only_its_own_profile(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context, sub="user-a")
    signup(apigw_event, lambda_context, sub="user-b", phone="13900001111", nickname="B")
    _, a = call(apigw_event("GET", "/v1/members/me", sub="user-a"), lambda_context)
    _, b = call(apigw_event("GET", "/v1/members/me", sub="user-b"), lambda_context)
    assert a["nickname"] == "Lin" and b["nickname"] == "B"
    assert a["memberId"] != b["memberId"]


def test_patch_changes_only_the_callers_profile(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context, sub="user-a")
    signup(apigw_event, lambda_context, sub="user-b", phone="13900001111", nickname="B")
    status, body = call(apigw_event("PATCH", "/v1/members/me", {"nickname": "Lin 2"},
                                    sub="user-a"), lambda_context)
    assert status == 200 and body["nickname"] == "Lin 2"
    _, b = call(apigw_event("GET", "/v1/members/me", sub="user-b"), lambda_context)
    assert b["nickname"] == "B"


def test_patch_before_signup_is_member_not_found(table, apigw_event, lambda_context):
    status, body = call(apigw_event("PATCH", "/v1/members/me", {"nickname": "x"}, sub="ghost"),
                        lambda_context)
    assert status == 404 and body["code"] == "member_not_found"
    assert item_count(table) == 0


@pytest.mark.parametrize("changes, code", [
    ({"phone": "12345"}, "invalid_phone"),
    ({"phone": 13812345678}, "validation_failed"),
    ({"nickname": ""}, "validation_failed"),
    ({"nickname": "x" * 33}, "validation_failed"),
    ({"channel": "x" * 33}, "validation_failed"),
    ({"storeId": "s" * 65}, "validation_failed"),
    ({"referralCode": "bad code!"}, "validation_failed"),
    ({"memberId": "M123"}, "validation_failed"),
    ({"tier": "V4"}, "validation_failed"),
])
def test_invalid_signup_is_rejected_and_writes_nothing(table, apigw_event, lambda_context,
                                                        changes, code):
    status, body = signup(apigw_event, lambda_context, **changes)
    assert status in (400, 422)
    assert body["code"] == code
    assert item_count(table) == 0


def test_body_that_is_not_json_is_400(table, apigw_event, lambda_context):
    event = apigw_event("POST", "/v1/members", None, sub="user-a",
                        headers={"content-type": "application/json"})
    event["body"] = "{not json"
    status, body = call(event, lambda_context)
    assert status == 400 and body["code"] == "malformed_body"
    assert item_count(table) == 0


def test_token_without_member_scope_is_forbidden(table, apigw_event, lambda_context):
    status, body = call(apigw_event("GET", "/v1/members/me", sub="user-a", scopes=["orders"]),
                        lambda_context)
    assert status == 403 and body["code"] == "forbidden"


def test_concurrent_signups_of_one_phone_by_two_subjects_one_wins(table, apigw_event,
                                                                 lambda_context):
    results = []
    barrier = threading.Barrier(2)

    def run(sub):
        barrier.wait()
        results.append(signup(apigw_event, lambda_context, sub=sub))

    threads = [threading.Thread(target=run, args=(s,)) for s in ("user-a", "user-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409]
    phones = list(PhoneItem.scan(PhoneItem.PK.startswith("PHONE#")))
    assert len(phones) == 1
