"""Export and account closure through the real handlers, against DynamoDB Local."""
from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from privacy_flows import (
    CapturedLogs,
    Person,
    call,
    empty_the_balance,
    live_a_life,
    order,
    paid_detail,
    sign_up,
    top_up,
)

from membership.domain.members import PaidPlanState
from membership.errors import MemberClosed
from membership.handlers import members, privacy
from membership.services.ledger import post_legs, reconcile_member
from membership.storage import ledger as store
from membership.storage.models import MemberItem
from membership_local.apigw import member_event


def close(ctx, person):
    return call(privacy, ctx, "DELETE", "/v1/members/me", sub=person.subject)


def export(ctx, person):
    return call(privacy, ctx, "GET", "/v1/members/me/export", sub=person.subject)


def item_keys():
    return sorted((i.PK, i.SK) for i in MemberItem.scan())


def raw_items():
    from membership.config import get_settings
    from membership.storage.table import connection

    client = connection().client
    items, key = [], None
    while True:
        page = client.scan(TableName=get_settings().table_name,
                           **({"ExclusiveStartKey": key} if key else {}))
        items += page["Items"]
        key = page.get("LastEvaluatedKey")
        if not key:
            return items


# ---- export -----------------------------------------------------------------------------

def test_export_holds_every_kind_of_record_of_the_member(table, lambda_context):
    person = Person()
    live_a_life(lambda_context, person)
    status, doc = export(lambda_context, person)
    assert status == 200
    assert doc["profile"]["phone"] == person.e164
    assert doc["profile"]["nickname"] == person.nickname
    assert doc["profile"]["birthday"] == person.birthday
    assert doc["profile"]["gender"] == "female"
    assert doc["consents"]["marketing"]["granted"] is False
    assert [c["granted"] for c in doc["consents"]["history"]] == [False]
    ledger = doc["ledger"]
    assert "topup" in {e["sourceType"] for e in ledger["balance"]}
    assert any(e["amount"] < 0 for e in ledger["balance"])
    assert {e["sourceType"] for e in ledger["points"]} >= {"signup", "checkin", "task",
                                                           "order.paid", "order.completed"}
    assert ledger["growth"]
    assert doc["lots"] and {h["status"] for h in doc["holds"]} == {"captured", "released"}
    assert sorted(o["order_id"] for o in doc["orders"]) == ["P1-SO-1", "P1-SO-2"]
    assert len(doc["topups"]) == 1 and doc["topups"][0]["principal"] == 50_000
    assert any(m["days"] for m in doc["checkins"]["months"].values())
    assert "milk_powder" in {t["tag"] for t in doc["tags"]}
    assert len(doc["otherRecords"]["coupon"]) == 2  # claimed and granted
    # The PLUS month bought from the balance and refunded: the run and its refunded term.
    assert [s["planId"] for s in doc["subscriptions"]] == ["PLUS"]
    terms = [r for r in doc["otherRecords"]["subscription"] if r.get("termId")]
    assert len(terms) == 1 and terms[0]["refundedAt"]
    assert doc["assets"]["balance"]["principal"] == sum(
        e["amount"] for e in ledger["balance"] if e["bucket"] == "principal")


def test_export_entries_are_every_entry_of_the_ledger(table, lambda_context):
    person = Person()
    live_a_life(lambda_context, person)
    _, doc = export(lambda_context, person)
    exported = sorted(e["entryId"] for asset in doc["ledger"].values() for e in asset)
    assert exported == sorted(e.entry_id for e in store.all_entries(person.member_id))


def test_export_is_gzip_compressed_when_the_client_accepts_it(table, lambda_context):
    person = Person()
    sign_up(lambda_context, person)
    response = privacy.handler(member_event(
        "GET", "/v1/members/me/export", None, sub=person.subject,
        headers={"Accept-Encoding": "gzip"}), lambda_context)
    assert response["statusCode"] == 200 and response["isBase64Encoded"]
    doc = json.loads(gzip.decompress(base64.b64decode(response["body"])))
    assert doc["profile"]["memberId"] == person.member_id


def test_export_of_someone_who_never_signed_up_is_404(table, lambda_context):
    assert export(lambda_context, Person())[0] == 404


# ---- consent and profile ---------------------------------------------------------------

def test_each_consent_change_is_recorded_with_its_time(table, lambda_context):
    person = Person()
    sign_up(lambda_context, person)
    for granted in (False, True):
        status, body = call(members, lambda_context, "PATCH", "/v1/members/me",
                            {"marketingConsent": granted}, sub=person.subject)
        assert status == 200 and body["marketingConsent"] is granted
    _, doc = export(lambda_context, person)
    history = doc["consents"]["history"]
    assert [(c["purpose"], c["granted"], c["source"]) for c in history] == [
        ("marketing", False, "member"), ("marketing", True, "member")]
    assert history[0]["at"] < history[1]["at"] == doc["consents"]["marketing"]["since"]


def test_marketing_consent_is_granted_by_default_since_signup(table, lambda_context):
    person = Person()
    sign_up(lambda_context, person)
    _, doc = export(lambda_context, person)
    assert doc["consents"]["marketing"] == {"granted": True,
                                            "since": doc["profile"]["createdAt"]}
    assert doc["consents"]["history"] == []


def test_the_birthday_is_set_once(table, lambda_context):
    person = Person()
    sign_up(lambda_context, person)
    patch = lambda body: call(members, lambda_context, "PATCH", "/v1/members/me", body,  # noqa: E731
                              sub=person.subject)
    assert patch({"birthday": "1990-07-15"})[0] == 200
    assert patch({"birthday": "1990-07-15"})[0] == 200
    status, body = patch({"birthday": "1991-01-01"})
    assert status == 409 and body["code"] == "birthday_already_set"
    assert patch({"gender": "male"})[1]["birthday"] == "1990-07-15"


# ---- closure refused ----------------------------------------------------------------------

def test_closure_is_refused_while_stored_value_remains(table, lambda_context):
    person = Person()
    sign_up(lambda_context, person)
    top_up(lambda_context, person, 10_000, "test-close-1")
    before = item_keys()
    status, body = close(lambda_context, person)
    assert status == 409 and body["code"] == "account_not_empty"
    [remaining] = body["details"]["remaining"]
    assert (remaining["kind"], remaining["principal"], remaining["bonus"]) == (
        "stored_value", 10_000, 500)
    assert "refunds" in remaining["how"]
    assert item_keys() == before
    assert call(members, lambda_context, "GET", "/v1/members/me", sub=person.subject)[0] == 200


def test_closure_is_refused_while_a_hold_is_open(table, lambda_context):
    from membership.handlers import checkout

    person = Person()
    sign_up(lambda_context, person)
    status, _ = call(checkout, lambda_context, "POST", "/v1/checkout/holds",
                     {"orderId": "SO-9", "memberId": person.member_id, "points": 50},
                     sub="order-system", scopes=("orders",))
    assert status == 201
    before = item_keys()
    status, body = close(lambda_context, person)
    assert status == 409 and body["code"] == "account_not_empty"
    [remaining] = body["details"]["remaining"]
    assert (remaining["kind"], remaining["points"]) == ("open_hold", 50)
    assert item_keys() == before


def test_closure_is_refused_while_a_paid_term_is_active(table, lambda_context):
    person = Person()
    sign_up(lambda_context, person)
    now = datetime.now(UTC)
    post_legs(person.member_id, "test-plan", lambda b: b.set(paid_plan=PaidPlanState(
        plan_id="PLUS", started_at=now, ends_at=now + timedelta(days=30))),
        source_type="test", reason="test")
    status, body = close(lambda_context, person)
    assert status == 409
    [remaining] = body["details"]["remaining"]
    assert (remaining["kind"], remaining["id"]) == ("paid_term", "PLUS")


def test_closure_names_every_thing_that_remains(table, lambda_context):
    from membership.handlers import checkout

    person = Person()
    sign_up(lambda_context, person)
    top_up(lambda_context, person, 10_000, "test-close-2")
    call(checkout, lambda_context, "POST", "/v1/checkout/holds",
         {"orderId": "SO-9", "memberId": person.member_id, "balance": 500},
         sub="order-system", scopes=("orders",))
    _, body = close(lambda_context, person)
    assert sorted(r["kind"] for r in body["details"]["remaining"]) == [
        "open_hold", "stored_value"]


# ---- closure ------------------------------------------------------------------------------

def closed_person(ctx) -> tuple[Person, dict]:
    person = Person()
    life = live_a_life(ctx, person)
    empty_the_balance(ctx, person, life["topups"])
    status, body = close(ctx, person)
    assert status == 200, body
    return person, body


def test_closure_erases_personal_data_forfeits_points_and_keeps_a_reconciling_ledger(
        table, lambda_context):
    person, answer = closed_person(lambda_context)
    assert answer["forfeitedPoints"] > 0
    assert {"phone", "nickname", "birthday", "gender", "checkins"} <= set(answer["erased"])
    item = MemberItem.get(*MemberItem.key(person.member_id), consistent_read=True)
    assert (item.phone, item.subject, item.birthday, item.gender, item.store_id) == (
        None, None, None, None, None)
    assert item.status == "closed" and item.marketing_consent is False
    assert (item.points_available, item.points_pending) == (0, 0)
    forfeits = [e for e in store.all_entries(person.member_id) if e.reason == "account_closed"]
    assert sum(-e.amount for e in forfeits) == answer["forfeitedPoints"]
    assert store.all_lots(person.member_id) == []
    assert reconcile_member(person.member_id) == []


def test_closure_marks_the_kept_records_retained_for_three_years(table, lambda_context):
    from membership.domain.calendar import parse_iso

    person, answer = closed_person(lambda_context)
    item = MemberItem.get(*MemberItem.key(person.member_id), consistent_read=True)
    assert item.retain_until == item.closed_at.replace(year=item.closed_at.year + 3)
    assert parse_iso(answer["retainedUntil"]) == item.retain_until


def test_the_closed_members_items_hold_no_personal_data(table, lambda_context):
    person, _ = closed_person(lambda_context)
    text = json.dumps(raw_items())
    for name, secret in person.secrets().items():
        assert secret not in text, f"{name} is still stored"


def test_closure_emits_member_closed_in_its_outbox(table, lambda_context):
    from membership.storage.models import GuardItem

    person, answer = closed_person(lambda_context)
    guard = GuardItem.get(*GuardItem.key(f"closure:{person.member_id}"))
    [event] = guard.outbox
    detail = json.loads(event["detail"])
    assert event["detailType"] == "member.closed"
    assert detail["memberId"] == person.member_id
    assert detail["forfeitedPoints"] == answer["forfeitedPoints"]


def test_after_closure_the_member_routes_answer_404(table, lambda_context):
    person, _ = closed_person(lambda_context)
    for method, path in (("GET", "/v1/members/me"), ("PATCH", "/v1/members/me")):
        body = {"nickname": "x"} if method == "PATCH" else None
        status, answer = call(members, lambda_context, method, path, body, sub=person.subject)
        assert (status, answer["code"]) == (404, "member_closed")
    assert export(lambda_context, person)[0] == 404


def test_closing_twice_answers_the_first_answer_again(table, lambda_context):
    person, answer = closed_person(lambda_context)
    assert close(lambda_context, person) == (200, answer)


def test_the_phone_signs_up_again_as_a_new_member(table, lambda_context):
    person, _ = closed_person(lambda_context)
    again = Person(2)
    again.national, again.e164 = person.national, person.e164
    new_id = sign_up(lambda_context, again)
    assert new_id != person.member_id
    status, profile = call(members, lambda_context, "GET", "/v1/members/me", sub=again.subject)
    assert status == 200 and profile["points"]["available"] == 100


def test_the_closed_login_cannot_sign_up_again(table, lambda_context):
    person, _ = closed_person(lambda_context)
    status, body = call(members, lambda_context, "POST", "/v1/members",
                        {"phone": person.national, "nickname": "again", "channel": "app"},
                        sub=person.subject)
    assert (status, body["code"]) == (409, "account_closed")


def test_an_order_event_for_a_closed_member_fails_for_the_dead_letter_queue(
        table, lambda_context):
    person, _ = closed_person(lambda_context)
    before = item_keys()
    with CapturedLogs() as logs, pytest.raises(MemberClosed):
        order(lambda_context, "order.paid", paid_detail(person.member_id, "SO-77"))
    assert item_keys() == before
    assert "closed the account" in logs.text


def test_export_pages_through_a_long_ledger(table, lambda_context, monkeypatch):
    from membership.storage import privacy as privacy_store
    from membership_local.long_ledger import seed_long_ledger

    person = Person()
    seed_long_ledger(person.subject, person.national, 60)
    monkeypatch.setattr(privacy_store, "PAGE_LIMIT", 7)
    calls = []
    real_query = type(MemberItem._get_connection()).query

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("exclusive_start_key"))
        return real_query(self, *args, **kwargs)

    monkeypatch.setattr(type(MemberItem._get_connection()), "query", counting)
    status, doc = export(lambda_context, person)
    assert status == 200
    assert len(doc["ledger"]["points"]) == 61 and len(calls) >= 60 // 7
    assert reconcile_member(person.member_id) == []


def test_member_closed_in_the_outbox_matches_its_schema(table, lambda_context):
    from pathlib import Path

    from jsonschema import Draft202012Validator

    from membership.storage.models import GuardItem

    person, _ = closed_person(lambda_context)
    [event] = GuardItem.get(*GuardItem.key(f"closure:{person.member_id}")).outbox
    schema = json.loads((Path(__file__).resolve().parents[2] / "events" / "schemas"
                         / "member.closed.json").read_text(encoding="utf-8"))
    Draft202012Validator(schema).validate(json.loads(event["detail"]))


# ---- closure larger than one transaction ---------------------------------------------------

def _many_lots(member_id: str, count: int) -> None:
    """`count` lots no merge can shrink: half pending (one per paid order still in its
    return window), half available with distinct expiries (earned on distinct days)."""
    from membership.storage.program import load_program

    now = datetime.now(UTC)

    def credit(b, low, high):
        for i in range(low, high):
            b.credit_points(7, lot_id=f"many-{i:03d}", pending=i % 2 == 0,
                            available_at=now + timedelta(days=7) if i % 2 == 0 else None,
                            expires_at=now + timedelta(days=400 + i))

    for low in range(0, count, 40):
        key = f"many-lots-{member_id}-{low}"
        high = min(low + 40, count)
        store.post(member_id, key, lambda state, low=low, high=high, key=key: _build(
            state, load_program(), key, lambda b: credit(b, low, high), now))


def _build(state, program, key, legs, now):
    from membership.domain.ledger import PostingBuilder

    b = PostingBuilder(state, program, source_key=key, source_type="test", reason="seed",
                       actor="test", now=now)
    legs(b)
    return b.build()


def test_a_closure_over_more_than_100_items_forfeits_in_batches_then_closes(
        table, lambda_context):
    from membership.storage.ledger import MAX_TRANSACTION_ITEMS

    person = Person()
    sign_up(lambda_context, person)
    count = 120  # each lot is an item and a forfeiting entry: ~240 items in one closure
    _many_lots(person.member_id, count)
    assert 2 * len(store.all_lots(person.member_id)) > MAX_TRANSACTION_ITEMS
    before = store.read_live_range(person.member_id).member
    held = before.points_available + before.points_pending

    status, answer = close(lambda_context, person)

    assert status == 200, answer
    item = MemberItem.get(*MemberItem.key(person.member_id), consistent_read=True)
    assert item.status == "closed" and item.phone is None
    assert (item.points_available, item.points_pending) == (0, 0)
    assert store.all_lots(person.member_id) == []
    forfeits = [e for e in store.all_entries(person.member_id) if e.reason == "account_closed"]
    assert sum(-e.amount for e in forfeits) == held == answer["forfeitedPoints"] + sum(
        -e.amount for e in forfeits if e.source_type == "closure_forfeit")
    assert {e.source_type for e in forfeits} <= {"closure_forfeit", "closure"}
    # 121 lots: two batches of 40, then closure with the last 41 (~88 items)
    assert len({e.source_key for e in forfeits if e.source_type == "closure_forfeit"}) == 2
    assert reconcile_member(person.member_id) == []
    assert close(lambda_context, person) == (200, answer)


def test_a_frozen_member_cannot_close_the_account(table, lambda_context):
    from membership.handlers import admin_members

    person = Person()
    sign_up(lambda_context, person)
    status, body = call(admin_members, lambda_context, "PATCH",
                        f"/v1/admin/members/{person.member_id}",
                        {"status": "frozen", "reason": "dispute"}, sub="ops", scopes=("admin",))
    assert status == 200, body
    before = item_keys()
    status, body = close(lambda_context, person)
    assert (status, body["code"], body["details"]["action"]) == (
        403, "member_frozen", "account_closure")
    assert item_keys() == before


def test_a_closed_member_can_be_neither_frozen_nor_unfrozen(table, lambda_context):
    from membership.handlers import admin_members

    person, _ = closed_person(lambda_context)
    for wanted in ("frozen", "active"):
        status, body = call(admin_members, lambda_context, "PATCH",
                            f"/v1/admin/members/{person.member_id}",
                            {"status": wanted, "reason": "try"}, sub="ops", scopes=("admin",))
        assert (status, body["code"]) == (404, "member_closed"), (wanted, body)
    assert MemberItem.get(*MemberItem.key(person.member_id)).status == "closed"
