"""Bad input gets a clear 4xx with a stable code, writes nothing, and bricks no member.

Through the real handlers against DynamoDB Local: bodies no route should parse, text
with control characters, a ledger cursor of another asset, profile fields set to null,
business timestamps without an offset or out of range, and order events that cannot be
parsed (they fail into the dead-letter path instead).
"""
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from membership.domain.members import member_id_for
from membership.domain.program import Program, default_program
from membership.handlers import checkout as checkout_handler
from membership.handlers import members as members_handler
from membership.handlers import order_events, payment_events
from membership.handlers import topups as topups_handler
from membership.handlers.events import MalformedEvent
from membership.storage import ledger
from membership.storage.models import MemberItem, ProgramItem
from membership.storage.program import load_program

SIGNUP = {"phone": "13812345678", "nickname": "Lin", "channel": "app", "storeId": "store-1"}
JSON_HEADERS = {"content-type": "application/json"}


def call(module, event, ctx):
    response = module.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"] or "null")


def signed_up(apigw_event, ctx, sub="user-a"):
    status, body = call(members_handler, apigw_event("POST", "/v1/members", SIGNUP, sub=sub),
                        ctx)
    assert status == 201, body
    return body["memberId"]


def member_of(member_id):
    return MemberItem.get(*MemberItem.key(member_id), consistent_read=True).to_domain()


def table_snapshot():
    """Every item as stored: a refused request must leave all of them alone."""
    page = MemberItem._get_connection().scan(consistent_read=True)
    assert "LastEvaluatedKey" not in page  # a test table holds a few items
    return sorted(json.dumps(item, sort_keys=True) for item in page["Items"])


def raw_event(apigw_event, method, path, body, headers=None, base64_body=False, **kwargs):
    event = apigw_event(method, path, None, headers=headers, **kwargs)
    if base64_body:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = body
    return event


# ---- item 4: no member can be bricked ---------------------------------------------------

def test_a_null_nickname_is_refused_and_the_member_stays_readable(
        table, apigw_event, lambda_context):
    member_id = signed_up(apigw_event, lambda_context)
    before = member_of(member_id)
    status, body = call(members_handler, apigw_event(
        "PATCH", "/v1/members/me", {"nickname": None}, sub="user-a"), lambda_context)
    assert status == 422 and body["code"] == "validation_failed"
    assert member_of(member_id) == before
    status, profile = call(members_handler, apigw_event("GET", "/v1/members/me", sub="user-a"),
                           lambda_context)
    assert status == 200 and profile["nickname"] == "Lin"


def test_a_null_store_removes_the_store_and_the_member_stays_readable(
        table, apigw_event, lambda_context):
    signed_up(apigw_event, lambda_context)
    status, body = call(members_handler, apigw_event(
        "PATCH", "/v1/members/me", {"storeId": None}, sub="user-a"), lambda_context)
    assert status == 200 and body["storeId"] is None
    status, profile = call(members_handler, apigw_event("GET", "/v1/members/me", sub="user-a"),
                           lambda_context)
    assert status == 200 and profile["storeId"] is None and profile["nickname"] == "Lin"


def test_a_member_whose_nickname_was_removed_earlier_is_still_readable(
        table, apigw_event, lambda_context):
    member_id = signed_up(apigw_event, lambda_context)
    # What a `{"nickname": null}` edit left behind before it was refused.
    MemberItem(*MemberItem.key(member_id)).update(actions=[MemberItem.nickname.remove()])
    status, profile = call(members_handler, apigw_event("GET", "/v1/members/me", sub="user-a"),
                           lambda_context)
    assert status == 200 and profile["nickname"] == ""
    status, fixed = call(members_handler, apigw_event(
        "PATCH", "/v1/members/me", {"nickname": "Lin"}, sub="user-a"), lambda_context)
    assert status == 200 and fixed["nickname"] == "Lin"


# ---- item 9: bodies no route parses -------------------------------------------------------

DEEP = "[" * 5_000 + "]" * 5_000
HUGE_INT = '{"amount": ' + "9" * 5_000 + ', "paymentReference": "test-1", "channel": "alipay"}'


@pytest.mark.parametrize("label, body, headers, base64_body, status, code", [
    ("deeply nested JSON", DEEP, JSON_HEADERS, False, 400, "malformed_body"),
    ("nested 40 levels", '{"nickname": ' + "[" * 40 + "]" * 40 + "}", JSON_HEADERS, False,
     400, "malformed_body"),
    ("an integer of 5,000 digits", HUGE_INT, JSON_HEADERS, False, 400, "malformed_body"),
    ("NaN", '{"nickname": NaN}', JSON_HEADERS, False, 400, "malformed_body"),
    ("invalid UTF-8", b'{"nickname": "\xff\xfe"}', JSON_HEADERS, True, 400, "malformed_body"),
    ("invalid base64", "%%%not base64", JSON_HEADERS, None, 400, "malformed_body"),
    ("text/plain", '{"nickname": "x"}', {"content-type": "text/plain"}, False, 415,
     "unsupported_media_type"),
    ("no content type", '{"nickname": "x"}', {}, False, 415, "unsupported_media_type"),
    ("another charset", '{"nickname": "x"}',
     {"content-type": "application/json; charset=latin-1"}, False, 415,
     "unsupported_media_type"),
    ("a NUL in text", '{"nickname": "a\\u0000b"}', JSON_HEADERS, False, 422, "invalid_text"),
    ("a bidi override in text", '{"nickname": "abc\\u202egnp.exe"}', JSON_HEADERS, False, 422,
     "invalid_text"),
    ("a lone surrogate in text", '{"nickname": "a\\ud800"}', JSON_HEADERS, False, 422,
     "invalid_text"),
    ("a control character in a key", '{"nick\\u0007name": "x"}', JSON_HEADERS, False, 422,
     "invalid_text"),
])
def test_a_body_no_route_parses_is_a_clear_4xx_and_writes_nothing(
        table, apigw_event, lambda_context, label, body, headers, base64_body, status, code):
    member_id = signed_up(apigw_event, lambda_context)
    before = (member_of(member_id), table_snapshot())
    event = raw_event(apigw_event, "PATCH", "/v1/members/me",
                      body.encode() if isinstance(body, str) and base64_body else body,
                      headers=headers, base64_body=bool(base64_body), sub="user-a")
    if base64_body is None:
        event["isBase64Encoded"] = True
    answer_status, answer = call(members_handler, event, lambda_context)
    assert (answer_status, answer["code"]) == (status, code), label
    assert answer["message"]
    assert (member_of(member_id), table_snapshot()) == before


@pytest.mark.parametrize("body, status, code", [
    (HUGE_INT, 400, "malformed_body"),
    ('{"amount": 1e999, "paymentReference": "test-1", "channel": "alipay"}', 422,
     "validation_failed"),
    ('{"amount": 10000, "paymentReference": "test-1", "channel": "alipay\\u0000"}', 422,
     "invalid_text"),
])
def test_a_top_up_with_a_body_no_route_parses_credits_nothing(
        table, apigw_event, lambda_context, body, status, code):
    member_id = signed_up(apigw_event, lambda_context)
    event = raw_event(apigw_event, "POST", "/v1/members/me/topups", body,
                      headers={**JSON_HEADERS, "Idempotency-Key": "k1"}, sub="user-a")
    answer_status, answer = call(topups_handler, event, lambda_context)
    assert (answer_status, answer["code"]) == (status, code)
    assert member_of(member_id).balance_principal == 0


def test_control_characters_in_the_query_are_refused(table, apigw_event, lambda_context):
    signed_up(apigw_event, lambda_context)
    status, body = call(members_handler, apigw_event(
        "GET", "/v1/members/me/ledger", sub="user-a",
        query={"asset": "points", "cursor": "abc\x00"}), lambda_context)
    assert status == 400 and body["code"] == "invalid_text"


def test_a_ledger_cursor_of_another_asset_is_refused(table, apigw_event, lambda_context):
    member_id = signed_up(apigw_event, lambda_context)
    balance_key = {"PK": {"S": f"MEMBER#{member_id}"}, "SK": {"S": "ENTRY#balance#zzz"}}
    cursor = base64.urlsafe_b64encode(json.dumps(balance_key).encode()).decode()
    status, body = call(members_handler, apigw_event(
        "GET", "/v1/members/me/ledger", sub="user-a",
        query={"asset": "points", "cursor": cursor}), lambda_context)
    assert status == 422 and body["code"] == "invalid_cursor"


@pytest.mark.parametrize("cursor", [
    "not base64!", base64.urlsafe_b64encode(b"[[[[]]]]").decode(),
    base64.urlsafe_b64encode(b'{"PK": {"S": 1}, "SK": {"S": []}}').decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_a_cursor_this_api_did_not_issue_is_refused(table, apigw_event, lambda_context, cursor):
    signed_up(apigw_event, lambda_context)
    status, body = call(members_handler, apigw_event(
        "GET", "/v1/members/me/ledger", sub="user-a",
        query={"asset": "points", "cursor": cursor}), lambda_context)
    assert status == 422 and body["code"] == "invalid_cursor"


def test_a_cursor_the_api_issued_pages_on(table, apigw_event, lambda_context):
    signed_up(apigw_event, lambda_context)
    status, first = call(members_handler, apigw_event(
        "GET", "/v1/members/me/ledger", sub="user-a", query={"asset": "points", "limit": "1"}),
        lambda_context)
    assert status == 200 and len(first["entries"]) == 1 and first["nextCursor"]
    status, second = call(members_handler, apigw_event(
        "GET", "/v1/members/me/ledger", sub="user-a",
        query={"asset": "points", "cursor": first["nextCursor"]}), lambda_context)
    assert status == 200 and second["entries"] == [] and second["nextCursor"] is None


def test_a_hold_with_an_oversized_number_is_refused(table, apigw_event, lambda_context):
    member_id = signed_up(apigw_event, lambda_context)
    body = json.dumps({"orderId": "SO-1", "memberId": member_id}).replace(
        "}", ', "points": ' + "1" * 4_400 + "}")
    event = raw_event(apigw_event, "POST", "/v1/checkout/holds", body, headers=JSON_HEADERS,
                      sub="orders", scopes=["orders"])
    status, answer = call(checkout_handler, event, lambda_context)
    assert status == 400 and answer["code"] == "malformed_body"
    assert member_of(member_id).points_available == 100


# ---- item 4: business timestamps -----------------------------------------------------------

def envelope(detail_type, detail, source="brand.orders"):
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
            "source": source, "account": "123456789012", "time": "2026-03-15T01:00:00Z",
            "region": "us-east-1", "resources": [], "detail": detail}


def paid_event(member_id, paid_at):
    return {"orderId": "SO-1", "memberId": member_id, "paidAt": paid_at,
            "lines": [{"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme",
                       "quantity": 1, "unitPrice": 10_000}],
            "amounts": {"subtotal": 10_000, "discount": 0, "pointsUsed": 0, "balanceUsed": 0,
                        "cashPaid": 10_000}}


def signed_up_directly(sub="shopper"):
    from membership.domain.members import SignupRequest
    from membership.services import members as member_service

    member_service.signup(sub, SignupRequest(phone="13812345678", nickname="S", channel="app"))
    return member_id_for(sub)


@pytest.mark.parametrize("paid_at", [
    "2026-03-14T12:00:00",  # no offset
    "2026-03-14",  # a date, not an instant
    1_773_460_800,  # an epoch number
    "1999-12-31T23:59:59Z",
    "2101-01-01T00:00:00Z",
    "0001-01-01T00:00:00+05:00",  # overflows on conversion to UTC
    "9999-12-31T23:59:59-05:00",
])
def test_an_order_paid_at_an_impossible_time_is_refused_and_writes_nothing(
        table, lambda_context, paid_at):
    member_id = signed_up_directly()
    before = ledger.read_live_range(member_id)
    with pytest.raises(MalformedEvent, match="paidAt"):
        order_events.handler(envelope("order.paid", paid_event(member_id, paid_at)),
                             lambda_context)
    assert ledger.read_live_range(member_id) == before
    assert ledger.read_guard("order.paid:SO-1") is None


def test_an_order_paid_more_than_a_day_in_the_future_is_refused(table, lambda_context):
    member_id = signed_up_directly()
    later = (datetime.now(UTC) + timedelta(days=1, minutes=5)).isoformat()
    with pytest.raises(MalformedEvent, match="future"):
        order_events.handler(envelope("order.paid", paid_event(member_id, later)),
                             lambda_context)
    assert ledger.read_guard("order.paid:SO-1") is None


def test_an_order_paid_a_little_ahead_of_our_clock_is_accepted(table, lambda_context):
    member_id = signed_up_directly()
    skewed = (datetime.now(UTC) + timedelta(minutes=3)).isoformat()
    result = order_events.handler(envelope("order.paid", paid_event(member_id, skewed)),
                                  lambda_context)
    assert result["replayed"] is False
    assert member_of(member_id).points_pending > 0


@pytest.mark.parametrize("detail_type, field", [
    ("order.refunded", "refundedAt"), ("order.cancelled", "cancelledAt"),
    ("order.completed", "completedAt")])
@pytest.mark.parametrize("value", ["2026-03-14T12:00:00", "1970-01-01T00:00:00Z"])
def test_every_order_timestamp_needs_an_offset_and_a_sane_year(
        table, lambda_context, detail_type, field, value):
    detail = {"orderId": "SO-1", "memberId": "Mabcdefghij", field: value}
    if detail_type == "order.refunded":
        detail["refundId"] = "RF-1"
    with pytest.raises(MalformedEvent, match=field):
        order_events.handler(envelope(detail_type, detail), lambda_context)


@pytest.mark.parametrize("event", [
    None, [], "order.paid", {"detail-type": "order.paid"},
    envelope("order.paid", {"orderId": "SO-1"}),
    envelope("order.paid", {"orderId": "SO-1", "deep": json.loads("[" * 500 + "]" * 500)}),
    envelope("order.shipped", {"orderId": "SO-1"}),
])
def test_an_order_event_that_cannot_be_parsed_fails_into_the_dlq_path(
        table, lambda_context, event):
    with pytest.raises(MalformedEvent):
        order_events.handler(event, lambda_context)


def test_an_order_event_with_control_characters_fails_into_the_dlq_path(table, lambda_context):
    member_id = signed_up_directly()
    detail = paid_event(member_id, datetime.now(UTC).isoformat())
    detail["lines"][0]["sku"] = "TEE\u202e"
    with pytest.raises(MalformedEvent, match="control or bidirectional"):
        order_events.handler(envelope("order.paid", detail), lambda_context)
    assert ledger.read_guard("order.paid:SO-1") is None


def test_a_payment_notice_without_an_offset_fails_into_the_dlq_path(table, lambda_context):
    notice = {"paymentReference": "test-1", "refundReference": "r-1", "amount": 100,
              "occurredAt": "2026-03-15T09:00:00"}
    with pytest.raises(MalformedEvent, match="occurredAt"):
        payment_events.handler(envelope("payment.refunded", notice, source="payments"),
                               lambda_context)


# ---- item 4: the program's offers ----------------------------------------------------------

def _program_with_offer(**window):
    document = default_program().model_dump(mode="json", by_alias=True)
    document["topup"]["offers"] = [{"minAmount": 100, "bonus": 10, **window}]
    return document


@pytest.mark.parametrize("window", [
    {"validFrom": "2026-03-01T00:00:00"},
    {"validUntil": "2026-03-31T23:59:59"},
    {"validFrom": "1900-01-01T00:00:00Z"},
    {"validUntil": "2200-01-01T00:00:00Z"},
    {"validFrom": "2026-04-01T00:00:00Z", "validUntil": "2026-03-01T00:00:00Z"},
])
def test_a_program_with_offers_the_calendar_cannot_place_is_refused_when_stored(window):
    with pytest.raises(ValueError):
        Program.model_validate(_program_with_offer(**window))


def test_a_program_with_an_aware_offer_window_is_accepted():
    program = Program.model_validate(_program_with_offer(
        validFrom="2026-03-01T00:00:00+08:00", validUntil="2026-04-01T00:00:00+08:00"))
    assert program.topup.offers[0].valid_from.utcoffset() == timedelta(hours=8)


def test_a_stored_program_that_no_longer_validates_answers_503_not_500(
        table, apigw_event, lambda_context):
    signed_up(apigw_event, lambda_context)
    ProgramItem(*ProgramItem.key(), document=json.dumps(_program_with_offer(
        validFrom="2026-03-01T00:00:00")), updated_at=datetime.now(UTC)).save()
    from membership.storage.program import forget_cached_program

    forget_cached_program()
    try:
        status, body = call(topups_handler, apigw_event(
            "POST", "/v1/members/me/topups",
            {"amount": 10_000, "paymentReference": "test-1", "channel": "alipay"},
            sub="user-a", headers={"Idempotency-Key": "k1"}), lambda_context)
        assert status == 503 and body["code"] == "program_invalid"
    finally:
        ProgramItem(*ProgramItem.key()).delete()
        forget_cached_program()


def test_a_valid_stored_program_loads_as_stored(table):
    program = default_program()
    ProgramItem(*ProgramItem.key(), document=program.model_dump_json(by_alias=True),
                updated_at=datetime.now(UTC)).save()
    from membership.storage.program import forget_cached_program

    forget_cached_program()
    assert load_program() == program


def test_a_refund_with_a_null_amount_is_refused_not_taken_for_everything(
        table, apigw_event, lambda_context):
    from membership.handlers import admin_topups

    member_id = signed_up(apigw_event, lambda_context)
    status, topup = call(topups_handler, apigw_event(
        "POST", "/v1/members/me/topups",
        {"amount": 10_000, "paymentReference": "test-1", "channel": "alipay"},
        sub="user-a", headers={"Idempotency-Key": "k1"}), lambda_context)
    assert status == 201
    status, body = call(admin_topups, apigw_event(
        "POST", f"/v1/admin/topups/{topup['topupId']}/refunds",
        {"refundReference": "r-1", "amount": None}, sub="operator", scopes=["admin"],
        headers={"Idempotency-Key": "rk1"}), lambda_context)
    assert status == 422 and body["code"] == "validation_failed"
    assert member_of(member_id).balance_principal == 10_000
