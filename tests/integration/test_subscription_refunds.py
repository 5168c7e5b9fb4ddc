"""An operator refunds a paid-plan term (POST /v1/admin/subscriptions/{id}/refunds),
against DynamoDB Local. Amounts are checked to the fen on the documented example: PLUS
monthly (1900 fen) bought 10 Jan 09:00 Shanghai, ending at the end of 10 Feb (32 days)."""
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from membership.domain.members import SignupRequest, member_id_for
from membership.domain.subscription_refunds import SubscriptionRefundRequest
from membership.domain.subscriptions import SubscriptionRequest
from membership.handlers import admin_subscriptions, order_events
from membership.services import members as member_service
from membership.services import subscription_refunds as service
from membership.services import subscriptions as subscription_service
from membership.services.ledger import reconcile_member
from membership.storage import ledger
from membership.storage import subscriptions as store
from membership.storage.models import GuardItem

EVENTS = Path(__file__).resolve().parents[2] / "events"
SUB = "plus-refund"
BOUGHT = datetime(2026, 1, 10, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def shanghai(day, hour=12):
    return datetime(2026, 1, day, hour - 8, 0, tzinfo=UTC)


def signed_up(balance=0):
    member_service.signup(SUB, SignupRequest(phone="13812345678", nickname="R", channel="app"))
    member_id = member_id_for(SUB)
    if balance:
        from membership.domain.ledger import PostingBuilder
        from membership.storage.program import load_program

        def build(state):
            b = PostingBuilder(state, load_program(), source_key=f"seed:{member_id}",
                               source_type="test", reason="seed", actor="test",
                               now=datetime.now(UTC))
            b.credit_balance("principal", balance)
            return b.build()
        ledger.post(member_id, f"seed:{member_id}", build)
    return member_id


def buy(at=BOUGHT, reference="test-refund-1", pay_with_balance=False):
    body = {"planId": "PLUS", "term": "monthly"}
    body |= ({"payWith": "balance"} if pay_with_balance
             else {"paymentReference": reference, "channel": "wechat_pay"})
    return subscription_service.purchase(SUB, reference, SubscriptionRequest.model_validate(
        body), now=at).body


def subscription_id(member_id):
    return f"{member_id}.PLUS"


def refund(member_id, at, refund_id="RF-1", **body):
    return service.refund(subscription_id(member_id), SubscriptionRefundRequest.model_validate(
        {"refundId": refund_id, "reason": "member asked", **body}), actor="admin:ops",
        now=at).body


def earn_bonus(ctx, member_id, yuan):
    """An order paid on 11 Jan, while the term was active: `yuan` bonus points above V1's
    rate."""
    paid_at = shanghai(11)
    fen = yuan * 100
    order_events.handler({
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "order.paid",
        "source": "brand.orders", "account": "123456789012", "time": "2026-01-11T04:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {
            "orderId": f"SO-{yuan}", "memberId": member_id, "paidAt": paid_at.isoformat(),
            "lines": [{"lineId": "1", "sku": "X", "category": "c", "brand": "b",
                       "quantity": 1, "unitPrice": fen}],
            "amounts": {"subtotal": fen, "discount": 0, "pointsUsed": 0, "balanceUsed": 0,
                        "cashPaid": fen}}}, ctx)
    assert store.read(member_id)[1]["PLUS"][0].benefits.bonus_points == yuan


def http_refund(apigw_event, ctx, sub_id, body, scopes=("admin",)):
    raw = body if isinstance(body, str) else json.dumps(body)
    response = admin_subscriptions.handler(apigw_event(
        "POST", f"/v1/admin/subscriptions/{sub_id}/refunds", raw, sub="ops", scopes=scopes,
        headers={"content-type": "application/json"}), ctx)
    return response["statusCode"], json.loads(response["body"] or "null"), response["headers"]


def outbox(source_key):
    (event,) = GuardItem.get(*GuardItem.key(source_key)).outbox
    return event["detailType"], json.loads(event["detail"])


def validate(detail_type, detail):
    schema = json.loads((EVENTS / "schemas" / f"{detail_type}.json").read_text())
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        detail)


def term(member_id, seq=1):
    return store.read(member_id)[1]["PLUS"][seq - 1]


# ---- amounts ----------------------------------------------------------------------------

def test_inside_cooling_off_with_nothing_used_refunds_the_full_price(table):
    member_id = signed_up()
    buy()
    body = refund(member_id, shanghai(17, 20))
    assert (body["amount"], body["rule"], body["payout"]) == (1_900, "cooling_off", "provider")
    detail_type, detail = outbox("subscription.refund:RF-1")
    assert detail_type == "subscription.refunded" and detail["amount"] == 1_900
    assert detail["paymentReference"] == "test-refund-1"
    validate(detail_type, detail)


def test_outside_cooling_off_with_nothing_used_refunds_unused_days_pro_rata(table):
    member_id = signed_up()
    buy()
    body = refund(member_id, shanghai(20))
    assert (body["amount"], body["rule"], body["unusedDays"]) == (1_900 * 21 // 32, "pro_rata",
                                                                  21)
    assert body["amount"] == 1_246


def test_inside_cooling_off_with_a_benefit_used_refunds_pro_rata_minus_its_value(
        table, lambda_context):
    member_id = signed_up()
    buy()
    earn_bonus(lambda_context, member_id, 300)
    body = refund(member_id, shanghai(12))
    assert (body["amount"], body["benefitsValue"]) == (1_900 * 29 // 32 - 300, 300)
    assert body["amount"] == 1_421


def test_outside_cooling_off_with_a_benefit_used_refunds_pro_rata_minus_its_value(
        table, lambda_context):
    member_id = signed_up()
    buy()
    earn_bonus(lambda_context, member_id, 300)
    assert refund(member_id, shanghai(20))["amount"] == 1_246 - 300


def test_benefits_worth_more_than_the_unused_days_refund_nothing_never_below_zero(
        table, lambda_context):
    member_id = signed_up()
    buy()
    earn_bonus(lambda_context, member_id, 1_500)
    body = refund(member_id, shanghai(20))
    assert (body["amount"], body["payout"]) == (0, "none")
    assert term(member_id).record.refunded_at is not None


# ---- effects ----------------------------------------------------------------------------

def test_a_balance_paid_term_goes_back_to_principal_in_the_same_posting(table):
    member_id = signed_up(balance=5_000)
    buy(pay_with_balance=True, reference="key-balance")
    body = refund(member_id, shanghai(20))
    assert (body["amount"], body["payout"], body["toPrincipal"]) == (1_246, "balance", 1_246)
    assert body["balance"] == {"principal": 5_000 - 1_900 + 1_246, "bonus": 0,
                               "total": 5_000 - 1_900 + 1_246}
    entries = [e for e in ledger.all_entries(member_id) if e.source_type == "subscription_refund"]
    assert [(e.asset, e.bucket, e.amount) for e in entries] == [("balance", "principal", 1_246)]
    assert reconcile_member(member_id) == []
    _, detail = outbox("subscription.refund:RF-1")
    assert detail["payout"] == "balance"


def test_the_term_ends_at_once_and_the_plan_with_it(table):
    member_id = signed_up()
    buy()
    at = shanghai(20)
    body = refund(member_id, at)
    assert term(member_id).record.refunded_at == at
    plan = ledger.read_live_range(member_id).member.paid_plan
    assert plan.ends_at == at and datetime.fromisoformat(body["endsAt"]) == at


def test_refunding_the_latest_term_moves_the_plan_end_back_to_the_term_before(table):
    member_id = signed_up()
    buy()
    buy(at=shanghai(15), reference="test-refund-2")  # extends from the end of 10 Feb
    first_end = term(member_id, 1).record.ends_at
    body = refund(member_id, shanghai(20))
    assert body["termId"].endswith(".0002") and body["amount"] == 1_900  # 2nd: in cooling-off
    assert ledger.read_live_range(member_id).member.paid_plan.ends_at == first_end
    assert term(member_id, 1).record.refunded_at is None


def test_an_earlier_term_with_a_later_one_unrefunded_is_refused(table):
    member_id = signed_up()
    buy()
    buy(at=shanghai(15), reference="test-refund-2")
    first = term(member_id, 1).record.term_id
    with pytest.raises(Exception) as refused:
        refund(member_id, shanghai(20), termId=first)
    assert refused.value.code == "refund_later_terms_first"


# ---- exactly once -----------------------------------------------------------------------

def test_the_same_refund_replayed_answers_the_first_and_credits_once(table, apigw_event,
                                                                     lambda_context):
    member_id = signed_up(balance=5_000)
    buy(at=datetime.now(UTC) - timedelta(days=10), pay_with_balance=True, reference="key-b")
    body = {"refundId": "RF-9", "reason": "member asked"}
    status, first, headers = http_refund(apigw_event, lambda_context, subscription_id(member_id),
                                         body)
    assert status == 201, first
    assert headers["Idempotent-Replayed"] == "false"
    status, again, headers = http_refund(apigw_event, lambda_context,
                                         subscription_id(member_id), body)
    assert (status, again) == (201, first) and headers["Idempotent-Replayed"] == "true"
    member = ledger.read_live_range(member_id).member
    assert member.balance_principal == 5_000 - 1_900 + first["amount"]


def test_the_same_refund_id_with_another_body_is_refused(table, apigw_event, lambda_context):
    member_id = signed_up()
    buy(at=datetime.now(UTC) - timedelta(days=10))
    sub_id = subscription_id(member_id)
    http_refund(apigw_event, lambda_context, sub_id, {"refundId": "RF-9", "reason": "a"})
    status, body, _ = http_refund(apigw_event, lambda_context, sub_id,
                                  {"refundId": "RF-9", "reason": "another"})
    assert (status, body["code"]) == (409, "payload_mismatch")


def test_nothing_left_to_refund_is_409(table, apigw_event, lambda_context):
    member_id = signed_up()
    buy(at=datetime.now(UTC) - timedelta(days=10))
    sub_id = subscription_id(member_id)
    http_refund(apigw_event, lambda_context, sub_id, {"refundId": "RF-1", "reason": "a"})
    status, body, _ = http_refund(apigw_event, lambda_context, sub_id,
                                  {"refundId": "RF-2", "reason": "a"})
    assert (status, body["code"]) == (409, "nothing_to_refund")


def test_an_unknown_subscription_is_404(table, apigw_event, lambda_context):
    member_id = signed_up()
    status, body, _ = http_refund(apigw_event, lambda_context, subscription_id(member_id),
                                  {"refundId": "RF-1", "reason": "a"})
    assert (status, body["code"]) == (404, "subscription_not_found")


def test_a_member_token_cannot_refund(table, apigw_event, lambda_context):
    member_id = signed_up()
    buy(at=datetime.now(UTC) - timedelta(days=10))
    status, _, _ = http_refund(apigw_event, lambda_context, subscription_id(member_id),
                               {"refundId": "RF-1", "reason": "a"}, scopes=("member",))
    assert status == 403
    assert term(member_id).record.refunded_at is None


# ---- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "", "not json", "[]", {}, {"refundId": "RF-1"}, {"reason": "a"},
    {"refundId": "", "reason": "a"}, {"refundId": "RF 1", "reason": "a"},
    {"refundId": "RF-1", "reason": ""}, {"refundId": "RF-1", "reason": "a", "amount": 5},
    {"refundId": "RF-1", "reason": "a", "termId": "nope"}, {"refundId": 7, "reason": "a"},
    {"refundId": "RF-1", "reason": "a", "termId": None},
])
def test_a_bad_refund_body_is_a_clear_4xx_and_changes_nothing(table, apigw_event,
                                                              lambda_context, body):
    member_id = signed_up()
    buy(at=datetime.now(UTC) - timedelta(days=10))
    status, answer, _ = http_refund(apigw_event, lambda_context, subscription_id(member_id),
                                    body)
    if status == 201:  # an explicit null termId means the default term: that is valid
        assert body == {"refundId": "RF-1", "reason": "a", "termId": None}
        return
    assert 400 <= status < 500 and answer["code"], answer
    assert term(member_id).record.refunded_at is None


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.dictionaries(st.sampled_from(["refundId", "termId", "reason", "x"]),
                    st.one_of(st.none(), st.integers(), st.text(max_size=80),
                              st.lists(st.integers(), max_size=2)), max_size=4),
    st.text(max_size=40)),
    sub_id=st.one_of(st.just("Mabc.PLUS"), st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzM.", min_size=1, max_size=30)))
def test_any_refund_body_gets_a_4xx_or_a_refund_never_a_500(table, apigw_event,
                                                            lambda_context, body, sub_id):
    status, answer, _ = http_refund(apigw_event, lambda_context, sub_id, body)
    assert 400 <= status < 500, answer
