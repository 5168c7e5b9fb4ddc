"""Top-ups and their refunds through the real handlers, against DynamoDB Local."""
import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from membership.domain.ledger import PostingBuilder, reconcile
from membership.domain.program import default_program
from membership.domain.topups import DailyTopupLimitExceeded, TopupRequest, topup_id_for
from membership.handlers import admin_topups, payment_events, topups
from membership.handlers import members as members_handler
from membership.services import topups as service
from membership.storage import ledger
from membership.storage.models import GuardItem, MemberItem
from membership.storage.topups import IdempotencyKeyItem, TopupItem

EVENTS = Path(__file__).resolve().parents[2] / "events"
SIGNUP = {"phone": "13812345678", "nickname": "Lin", "channel": "app"}
TOPUP = {"amount": 50_000, "paymentReference": "test-wx-0001", "channel": "wechat_pay"}


def call(module, event, ctx):
    response = module.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"] or "null"), response


def signup(apigw_event, ctx, sub="user-a", phone="13812345678"):
    status, body, _ = call(members_handler,
                           apigw_event("POST", "/v1/members", {**SIGNUP, "phone": phone},
                                       sub=sub), ctx)
    assert status == 201
    return body["memberId"]


def top_up(apigw_event, ctx, body=None, key="key-1", sub="user-a"):
    headers = {"Idempotency-Key": key} if key is not None else {}
    status, answer, raw = call(topups, apigw_event(
        "POST", "/v1/members/me/topups", {**TOPUP, **(body or {})}, sub=sub, headers=headers),
        ctx)
    return status, answer, raw["headers"]


def refund(apigw_event, ctx, topup_id, body, key="refund-key-1", sub="operator"):
    status, answer, _ = call(admin_topups, apigw_event(
        "POST", f"/v1/admin/topups/{topup_id}/refunds", body, sub=sub, scopes=["admin"],
        headers={"Idempotency-Key": key}), ctx)
    return status, answer


def member_of(member_id):
    return MemberItem.get(*MemberItem.key(member_id), consistent_read=True).to_domain()


def balance_entries(member_id):
    return [e for e in ledger.all_entries(member_id) if e.asset == "balance"]


def spend(member_id, amount):
    """What checkout does to stored value, through the ledger core."""
    def build(state):
        b = PostingBuilder(state, default_program(), source_key=f"order:{uuid.uuid4()}",
                           source_type="order", reason="order", actor="system",
                           now=datetime.now(UTC))
        b.debit_balance(amount)
        return b.build()

    ledger.post(member_id, "unused", build)


def key_records():
    return list(IdempotencyKeyItem.scan(IdempotencyKeyItem.PK.startswith("IDEMPOTENCY#")))


def payment_refunded(detail):
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "payment.refunded",
            "source": "payments", "account": "123456789012", "time": "2026-03-15T01:00:00Z",
            "region": "us-east-1", "resources": [], "detail": detail}


# ---- crediting ------------------------------------------------------------------------

def test_top_up_credits_principal_and_bonus(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    status, body, headers = top_up(apigw_event, lambda_context)
    assert status == 201
    assert headers["Idempotent-Replayed"] == "false"
    assert body["topupId"] == topup_id_for("test-wx-0001")
    assert (body["principal"], body["bonus"]) == (50_000, 5_000)
    assert body["balance"] == {"principal": 50_000, "bonus": 5_000, "total": 55_000}
    assert body["creditedAt"].endswith("+08:00")
    assert "memberId" not in body
    m = member_of(member_id)
    assert (m.balance_principal, m.balance_bonus, m.topup_total) == (50_000, 5_000, 50_000)
    assert reconcile(m, ledger.all_entries(member_id), ledger.all_lots(member_id)) == []


def test_profile_shows_the_new_balance(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context)
    _, profile, _ = call(members_handler, apigw_event("GET", "/v1/members/me", sub="user-a"),
                         lambda_context)
    assert profile["balance"] == {"principal": 50_000, "bonus": 5_000, "total": 55_000}


def test_top_up_keeps_a_record_to_refund_later(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, body, _ = top_up(apigw_event, lambda_context)
    record = TopupItem.get(*TopupItem.key(body["topupId"])).to_domain()
    assert (record.member_id, record.principal, record.bonus) == (member_id, 50_000, 5_000)
    assert record.payment_reference == "test-wx-0001" and record.refunded_principal == 0


def test_top_up_outbox_carries_a_schema_valid_topup_credited(table, apigw_event,
                                                            lambda_context):
    signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context)
    guard = GuardItem.get(*GuardItem.key("topup:test-wx-0001"))
    (event,) = guard.outbox
    assert event["detailType"] == "topup.credited"
    schema = json.loads((EVENTS / "schemas" / "topup.credited.json").read_text())
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        json.loads(event["detail"]))


def test_reaching_the_threshold_makes_a_stored_value_member(table, apigw_event,
                                                           lambda_context):
    signup(apigw_event, lambda_context)
    _, first, _ = top_up(apigw_event, lambda_context, {"amount": 99_900})
    _, second, _ = top_up(apigw_event, lambda_context,
                          {"amount": 100, "paymentReference": "test-wx-0002"}, key="key-2")
    assert (first["storedValueMember"], second["storedValueMember"]) == (False, True)
    _, profile, _ = call(members_handler, apigw_event("GET", "/v1/members/me", sub="user-a"),
                         lambda_context)
    assert profile["storedValueMember"] is True
    assert "stored_value_price" in {b["code"] for b in profile["benefits"]}


# ---- idempotency ----------------------------------------------------------------------

def test_replay_with_the_same_key_answers_the_first_response_and_credits_once(
        table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, first, _ = top_up(apigw_event, lambda_context)
    status, again, headers = top_up(apigw_event, lambda_context)
    assert status == 201 and again == first
    assert headers["Idempotent-Replayed"] == "true"
    assert member_of(member_id).balance_principal == 50_000
    assert len(balance_entries(member_id)) == 2


def test_same_payment_with_another_key_credits_once(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, first, _ = top_up(apigw_event, lambda_context, key="key-1")
    status, again, headers = top_up(apigw_event, lambda_context, key="key-2")
    assert status == 201 and again == first
    assert headers["Idempotent-Replayed"] == "true"
    assert member_of(member_id).balance_principal == 50_000


def test_same_key_with_another_body_is_refused_and_writes_nothing(table, apigw_event,
                                                                 lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context)
    status, body, _ = top_up(apigw_event, lambda_context,
                             {"paymentReference": "test-wx-0002"})
    assert status == 422 and body["code"] == "idempotency_key_reused"
    assert member_of(member_id).balance_principal == 50_000
    assert GuardItem.count("SOURCE#topup:test-wx-0002") == 0


def test_same_key_with_another_body_is_refused_even_when_the_limit_would_refuse_it(
        table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context)
    status, body, _ = top_up(apigw_event, lambda_context, {"amount": 1})
    assert status == 422 and body["code"] == "idempotency_key_reused"


def test_keys_are_per_member(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context, sub="user-a")
    signup(apigw_event, lambda_context, sub="user-b", phone="13900001111")
    top_up(apigw_event, lambda_context, sub="user-a", key="k")
    status, body, _ = top_up(apigw_event, lambda_context, {"paymentReference": "test-b"},
                             sub="user-b", key="k")
    assert status == 201 and body["topupId"] == topup_id_for("test-b")


def test_payment_reference_of_another_member_is_refused(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context, sub="user-a")
    b = signup(apigw_event, lambda_context, sub="user-b", phone="13900001111")
    top_up(apigw_event, lambda_context, sub="user-a")
    status, body, _ = top_up(apigw_event, lambda_context, sub="user-b", key="other")
    assert status == 409 and body["code"] == "payment_reference_used"
    assert member_of(b).balance_principal == 0


def test_payment_reference_with_another_amount_is_refused(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context)
    status, body, _ = top_up(apigw_event, lambda_context, {"amount": 60_000}, key="key-2")
    assert status == 409 and body["code"] == "payment_reference_used"


def test_concurrent_top_ups_carrying_one_payment_reference_credit_once(
        table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    barrier = threading.Barrier(6)
    results = []

    def run(n):
        barrier.wait()
        results.append(top_up(apigw_event, lambda_context, key=f"key-{n}"))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(r[0] for r in results) == [201] * 6
    assert [r[2]["Idempotent-Replayed"] for r in results].count("false") == 1
    assert len({json.dumps(r[1], sort_keys=True) for r in results}) == 1
    m = member_of(member_id)
    assert (m.balance_principal, m.balance_bonus) == (50_000, 5_000)
    assert len(balance_entries(member_id)) == 2


def test_concurrent_top_ups_of_different_payments_all_credit(table, apigw_event,
                                                            lambda_context):
    member_id = signup(apigw_event, lambda_context)
    barrier = threading.Barrier(5)
    results = []

    def run(n):
        barrier.wait()
        results.append(top_up(apigw_event, lambda_context,
                              {"amount": 10_000, "paymentReference": f"test-{n}"}, key=f"k{n}"))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [r[0] for r in results] == [201] * 5
    m = member_of(member_id)
    assert (m.balance_principal, m.balance_bonus) == (50_000, 2_500)
    assert reconcile(m, ledger.all_entries(member_id), ledger.all_lots(member_id)) == []


def test_idempotency_key_record_expires(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context)
    (item,) = key_records()
    assert 0 < item.ttl - datetime.now(UTC).timestamp() <= 24 * 3600


# ---- refusals -------------------------------------------------------------------------

def test_missing_idempotency_key_is_400_and_writes_nothing(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    status, body, _ = top_up(apigw_event, lambda_context, key=None)
    assert status == 400 and body["code"] == "idempotency_key_required"
    assert member_of(member_id).balance_principal == 0


def test_unverified_payment_is_refused_and_writes_nothing(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    before = member_of(member_id)
    status, body, _ = top_up(apigw_event, lambda_context, {"paymentReference": "wx-real-1"})
    assert status == 422 and body["code"] == "payment_not_verified"
    assert member_of(member_id) == before


def test_a_default_deploy_refuses_every_top_up_until_a_provider_is_configured(
        table, apigw_event, lambda_context, monkeypatch, reset_caches):
    member_id = signup(apigw_event, lambda_context)
    before = member_of(member_id)
    monkeypatch.delenv("PAYMENT_VERIFIER")  # what a deploy with the default parameter gets
    reset_caches()
    try:
        status, body, _ = top_up(apigw_event, lambda_context)  # a "test-" reference
    finally:
        monkeypatch.undo()
        reset_caches()
    assert status == 422 and body["code"] == "payment_provider_not_configured"
    assert "no payment provider is configured" in body["message"]
    assert member_of(member_id) == before
    assert balance_entries(member_id) == [] and key_records() == []


@pytest.mark.parametrize("changes, code", [
    ({"amount": 99}, "topup_below_minimum"),
    ({"amount": 500_001}, "topup_above_maximum"),
    ({"amount": 100.5}, "validation_failed"),
    ({"amount": 100.0}, "validation_failed"),
    ({"amount": "10000"}, "validation_failed"),
    ({"amount": 0}, "validation_failed"),
    ({"amount": -100}, "validation_failed"),
    ({"channel": "WeChat Pay"}, "validation_failed"),
    ({"paymentReference": "bad ref"}, "validation_failed"),
    ({"memberId": "M123"}, "validation_failed"),
])
def test_invalid_top_up_is_refused_with_its_code_and_writes_nothing(
        table, apigw_event, lambda_context, changes, code):
    member_id = signup(apigw_event, lambda_context)
    before = member_of(member_id)
    status, body, _ = top_up(apigw_event, lambda_context, changes)
    assert status == 422 and body["code"] == code
    assert member_of(member_id) == before
    assert key_records() == []


def test_top_up_before_signup_is_member_not_found(table, apigw_event, lambda_context):
    status, body, _ = top_up(apigw_event, lambda_context, sub="ghost")
    assert status == 404 and body["code"] == "member_not_found"


def test_top_up_needs_the_member_scope(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    status, body, _ = call(topups, apigw_event("POST", "/v1/members/me/topups", TOPUP,
                                               sub="user-a", scopes=["orders"],
                                               headers={"Idempotency-Key": "k"}),
                           lambda_context)
    assert status == 403 and body["code"] == "forbidden"


def test_daily_limit_holds_until_midnight_in_the_program_time_zone(table, apigw_event,
                                                                  lambda_context):
    member_id = signup(apigw_event, lambda_context)
    daily_max = default_program().topup.daily_max
    late = datetime(2026, 3, 14, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    for n in range(daily_max // 500_000):
        service.top_up("user-a", f"k{n}", TopupRequest(
            amount=500_000, paymentReference=f"test-day-{n}", channel="alipay"), now=late)
    one_more = TopupRequest(amount=100, paymentReference="test-after", channel="alipay")
    with pytest.raises(DailyTopupLimitExceeded):
        service.top_up("user-a", "k-late", one_more,
                       now=datetime(2026, 3, 14, 15, 59, 59, tzinfo=UTC))
    answer = service.top_up("user-a", "k-next-day", one_more,
                            now=datetime(2026, 3, 14, 16, 0, tzinfo=UTC))
    assert answer.body["principal"] == 100
    m = member_of(member_id)
    assert (m.topup_day, m.topup_day_amount) == ("2026-03-15", 100)


# ---- refunds --------------------------------------------------------------------------

def test_admin_refund_of_an_unspent_top_up_returns_principal_and_bonus(
        table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, credited, _ = top_up(apigw_event, lambda_context)
    status, body = refund(apigw_event, lambda_context, credited["topupId"],
                          {"refundReference": "test-refund-1"})
    assert status == 201
    assert (body["principal"], body["bonusClawedBack"], body["bonusForgiven"]) == (50_000, 5_000,
                                                                                   0)
    assert body["balance"] == {"principal": 0, "bonus": 0, "total": 0}
    m = member_of(member_id)
    assert m.topup_total == 0
    assert reconcile(m, ledger.all_entries(member_id), ledger.all_lots(member_id)) == []
    guard = GuardItem.get(*GuardItem.key("topup-refund:test-refund-1"))
    assert [e["detailType"] for e in guard.outbox] == ["topup.refunded"]


def test_refund_after_a_partial_spend_is_refused_then_the_unspent_part_goes_back(
        table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, credited, _ = top_up(apigw_event, lambda_context)
    spend(member_id, 20_000)  # principal first: 30,000 principal and 5,000 bonus left
    status, body = refund(apigw_event, lambda_context, credited["topupId"],
                          {"refundReference": "test-refund-1"})
    assert status == 409 and body["code"] == "topup_principal_spent"
    assert body["details"]["refundable"] == 30_000
    assert member_of(member_id).balance_principal == 30_000  # nothing written
    status, body = refund(apigw_event, lambda_context, credited["topupId"],
                          {"refundReference": "test-refund-2", "amount": 30_000}, key="k2")
    assert status == 201
    assert (body["principal"], body["bonusClawedBack"]) == (30_000, 3_000)
    assert body["topup"]["refundedPrincipal"] == 30_000
    m = member_of(member_id)
    assert (m.balance_principal, m.balance_bonus) == (0, 2_000)


def test_admin_refund_replays_with_the_same_key(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, credited, _ = top_up(apigw_event, lambda_context)
    body = {"refundReference": "test-refund-1", "amount": 10_000}
    _, first = refund(apigw_event, lambda_context, credited["topupId"], body)
    status, again = refund(apigw_event, lambda_context, credited["topupId"], body)
    assert status == 201 and again == first
    assert member_of(member_id).balance_principal == 40_000
    status, reused = refund(apigw_event, lambda_context, credited["topupId"],
                            {**body, "amount": 20_000})
    assert status == 422 and reused["code"] == "idempotency_key_reused"


def test_admin_refund_of_an_unknown_top_up_is_404(table, apigw_event, lambda_context):
    status, body = refund(apigw_event, lambda_context, topup_id_for("test-none"),
                          {"refundReference": "r"})
    assert status == 404 and body["code"] == "topup_not_found"


def test_admin_refund_needs_the_admin_scope(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    _, credited, _ = top_up(apigw_event, lambda_context)
    status, body, _ = call(admin_topups, apigw_event(
        "POST", f"/v1/admin/topups/{credited['topupId']}/refunds", {"refundReference": "r"},
        sub="user-a", scopes=["member"], headers={"Idempotency-Key": "k"}), lambda_context)
    assert status == 403 and body["code"] == "forbidden"


def test_payment_refunded_notice_refunds_and_a_redelivery_changes_nothing(
        table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context)
    notice = payment_refunded({"paymentReference": "test-wx-0001",
                               "refundReference": "test-refund-9", "amount": 50_000,
                               "occurredAt": "2026-03-15T09:00:00+08:00"})
    first = payment_events.handler(notice, lambda_context)
    again = payment_events.handler(notice, lambda_context.next_invocation())
    assert first["replayed"] is False and again["replayed"] is True
    assert first["principal"] == 50_000
    m = member_of(member_id)
    assert (m.balance_principal, m.balance_bonus) == (0, 0)


def test_admin_refund_and_the_providers_notice_of_it_apply_once(table, apigw_event,
                                                               lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, credited, _ = top_up(apigw_event, lambda_context)
    refund(apigw_event, lambda_context, credited["topupId"],
           {"refundReference": "test-refund-1", "amount": 10_000})
    result = payment_events.handler(payment_refunded({
        "paymentReference": "test-wx-0001", "refundReference": "test-refund-1",
        "amount": 10_000, "occurredAt": "2026-03-15T09:00:00+08:00"}), lambda_context)
    assert result["replayed"] is True
    assert member_of(member_id).balance_principal == 40_000


def test_payment_refunded_for_spent_principal_fails_for_an_operator(table, apigw_event,
                                                                   lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context)
    spend(member_id, 50_000)
    with pytest.raises(Exception, match="spent"):
        payment_events.handler(payment_refunded({
            "paymentReference": "test-wx-0001", "refundReference": "test-refund-9",
            "amount": 50_000, "occurredAt": "2026-03-15T09:00:00+08:00"}), lambda_context)
    assert member_of(member_id).balance_bonus == 5_000


def test_concurrent_refunds_of_one_top_up_never_exceed_it(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, credited, _ = top_up(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context, {"paymentReference": "test-other"}, key="k2")
    barrier = threading.Barrier(4)
    results = []

    def run(n):
        barrier.wait()
        results.append(refund(apigw_event, lambda_context, credited["topupId"],
                              {"refundReference": f"test-r{n}", "amount": 20_000},
                              key=f"rk{n}"))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(r[0] for r in results)
    assert statuses == [201, 201, 422, 422]
    record = TopupItem.get(*TopupItem.key(credited["topupId"])).to_domain()
    assert record.refunded_principal == 40_000
    m = member_of(member_id)
    assert m.balance_principal == 60_000
    assert reconcile(m, ledger.all_entries(member_id), ledger.all_lots(member_id)) == []
