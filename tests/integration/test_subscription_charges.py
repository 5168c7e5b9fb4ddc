"""Inbound `subscription.charged` through the real handler, against DynamoDB Local: one
extension per (subscription, cycle), a wrong amount refused, a new term after a lapse, a
cycle already paid by hand recorded for a refund."""
import json
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from membership.domain import calendar
from membership.domain.members import SignupRequest, member_id_for
from membership.domain.subscriptions import SubscriptionRequest, local_date
from membership.handlers import subscription_charges as handler
from membership.handlers.events import MalformedEvent
from membership.services import members as member_service
from membership.services import subscriptions as service
from membership.services.ledger import reconcile_member
from membership.storage import subscriptions as store
from membership.storage.models import GuardItem, MemberItem

EVENTS = Path(__file__).resolve().parents[2] / "events"
SUB = "plus-charged"
START = date(2026, 1, 31)


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)


def envelope(detail: dict) -> dict:
    return {"version": "0", "id": str(uuid.uuid4()), "source": "payments",
            "account": "123456789012", "time": "2026-02-28T01:00:00Z", "region": "cn-north-1",
            "resources": [], "detail-type": "subscription.charged", "detail": detail}


def plus_member(now=None):
    now = now or at(START)
    member_service.signup(SUB, SignupRequest(phone="13922220000", nickname="c", channel="app"),
                          now=now - timedelta(hours=1))
    service.purchase(SUB, "k1", SubscriptionRequest.model_validate(
        {"planId": "PLUS", "term": "monthly", "paymentReference": "test-plus-hand-1",
         "channel": "wechat_pay"}), now=now)
    return member_id_for(SUB)


def charge(member_id, cycle=2, amount=1900, ref="test-auto-0002", when=None):
    when = when or datetime.now(UTC)
    return {"subscriptionId": f"{member_id}.PLUS", "cycle": cycle, "paymentReference": ref,
            "amount": amount, "chargedAt": calendar.wire(when, "Asia/Shanghai")}


def deliver(detail, ctx):
    return handler.handler(envelope(detail), ctx)


def terms_of(member_id):
    return store.read(member_id)[1].get("PLUS", [])


def ends_at(member_id):
    return MemberItem.get(*MemberItem.key(member_id), consistent_read=True
                          ).to_domain().paid_plan.ends_at


def test_a_charge_extends_the_plan_from_its_end(table, lambda_context):
    now = datetime.now(UTC)
    member_id = plus_member(now - timedelta(days=20))
    before = ends_at(member_id)
    result = deliver(charge(member_id, when=now), lambda_context)
    assert result["extended"] is True and result["replayed"] is False
    [_, renewed] = terms_of(member_id)
    assert renewed.seq == 2 and renewed.record.starts_at == before + calendar.LAST_MICROSECOND
    assert ends_at(member_id) == renewed.record.ends_at
    assert reconcile_member(member_id) == []


def test_a_charge_delivered_five_times_some_at_once_extends_once(table, lambda_context):
    now = datetime.now(UTC)
    member_id = plus_member(now - timedelta(days=20))
    detail = charge(member_id, when=now)
    results = []
    threads = [threading.Thread(target=lambda: results.append(deliver(detail, lambda_context)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results += [deliver(detail, lambda_context) for _ in range(2)]
    assert len(results) == 5
    assert [r["replayed"] for r in results].count(False) == 1
    assert len(terms_of(member_id)) == 2
    assert len({r["endsAt"] for r in results}) == 1


def test_a_wrong_amount_is_refused_and_writes_nothing(table, lambda_context):
    now = datetime.now(UTC)
    member_id = plus_member(now - timedelta(days=20))
    before = MemberItem.get(*MemberItem.key(member_id), consistent_read=True).to_domain()
    with pytest.raises(Exception) as refused:
        deliver(charge(member_id, amount=1800, when=now), lambda_context)
    assert getattr(refused.value, "code", "") == "charge_amount_mismatch"
    after = MemberItem.get(*MemberItem.key(member_id), consistent_read=True).to_domain()
    assert after == before and len(terms_of(member_id)) == 1
    with pytest.raises(GuardItem.DoesNotExist):
        GuardItem.get(*GuardItem.key(f"subscription:charge:{member_id}.PLUS:2"))


def test_after_a_lapse_the_charge_starts_a_new_term_at_charged_at(table, lambda_context):
    now = datetime.now(UTC)
    member_id = plus_member(now - timedelta(days=60))
    charged_at = (now - timedelta(hours=2)).replace(microsecond=0)
    result = deliver(charge(member_id, when=charged_at), lambda_context)
    assert result["extended"] is False
    [_, fresh] = terms_of(member_id)
    assert fresh.record.starts_at == charged_at
    assert ends_at(member_id) == fresh.record.ends_at > now


def test_a_cycle_already_paid_by_hand_never_extends_and_is_recorded_for_refund(
        table, lambda_context):
    now = datetime.now(UTC)
    member_id = plus_member(now - timedelta(days=20))
    service.purchase(SUB, "k2", SubscriptionRequest.model_validate(
        {"planId": "PLUS", "term": "monthly", "paymentReference": "test-plus-hand-2",
         "channel": "wechat_pay"}), now=now - timedelta(days=1))
    before = ends_at(member_id)
    result = deliver(charge(member_id, cycle=2, when=now), lambda_context)
    assert result["duplicate"] is True and result["termId"] == f"{member_id}.PLUS.0002"
    assert deliver(charge(member_id, cycle=2, when=now), lambda_context)["replayed"] is True
    assert ends_at(member_id) == before and len(terms_of(member_id)) == 2
    guard = GuardItem.get(*GuardItem.key(f"subscription:charge:{member_id}.PLUS:2"))
    [event] = [e for e in guard.outbox if e["detailType"] == "subscription.charge_duplicated"]
    detail = json.loads(event["detail"])
    schema = json.loads((EVENTS / "schemas" / "subscription.charge_duplicated.json").read_text())
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        detail)
    assert (detail["amount"], detail["paymentReference"]) == (1900, "test-auto-0002")


def test_a_cycle_ahead_of_the_next_term_fails_until_its_turn(table, lambda_context):
    now = datetime.now(UTC)
    member_id = plus_member(now - timedelta(days=20))
    with pytest.raises(Exception) as early:
        deliver(charge(member_id, cycle=3, ref="test-auto-0003", when=now), lambda_context)
    assert getattr(early.value, "code", "") == "charge_out_of_order"
    deliver(charge(member_id, cycle=2, when=now), lambda_context)
    assert deliver(charge(member_id, cycle=3, ref="test-auto-0003", when=now),
                   lambda_context)["extended"] is True
    assert len(terms_of(member_id)) == 3


def test_the_same_cycle_with_another_payload_is_refused(table, lambda_context):
    now = datetime.now(UTC)
    member_id = plus_member(now - timedelta(days=20))
    deliver(charge(member_id, when=now), lambda_context)
    with pytest.raises(Exception) as refused:
        deliver(charge(member_id, ref="test-auto-other", when=now), lambda_context)
    assert getattr(refused.value, "code", "") == "charge_refused"


def test_an_unknown_subscription_is_refused(table, lambda_context):
    with pytest.raises(Exception) as refused:
        deliver(charge("Mabcdefghijkl", when=datetime.now(UTC)), lambda_context)
    assert getattr(refused.value, "code", "") == "subscription_not_found"


@pytest.mark.parametrize("detail", [
    {}, {"subscriptionId": "x", "cycle": 1, "paymentReference": "r", "amount": 1,
         "chargedAt": "2026-01-01T00:00:00+08:00"},
    {"subscriptionId": "Mabcdefghijkl.PLUS", "cycle": 1, "paymentReference": "r",
     "amount": 19.0, "chargedAt": "2026-01-01T00:00:00+08:00"},
    {"subscriptionId": "Mabcdefghijkl.PLUS", "cycle": 0, "paymentReference": "r",
     "amount": 1900, "chargedAt": "2026-01-01T00:00:00"},
])
def test_a_malformed_charge_is_refused(table, lambda_context, detail):
    with pytest.raises(MalformedEvent):
        deliver(detail, lambda_context)


def test_a_charge_moves_the_daily_schedule_to_the_new_term(table, lambda_context):
    from membership.services import subscription_schedule as daily

    now = datetime.now(UTC)
    member_id = plus_member(now - timedelta(days=60))
    deliver(charge(member_id, when=now), lambda_context)
    item = store.read(member_id)[0]["PLUS"]
    assert item.GSI1SK.startswith(local_date(now, "Asia/Shanghai").isoformat())
    report = daily.run_daily(now=now)
    assert report.packs == 2  # the lapsed term's month 0 was never visited; the new term's
