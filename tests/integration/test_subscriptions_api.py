"""Paid plan (PLUS) purchases, reads and auto-renew through the real handler, against
DynamoDB Local."""
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from membership.domain import calendar
from membership.domain.subscriptions import SubscriptionRequest
from membership.handlers import members as members_handler
from membership.handlers import subscriptions as handler
from membership.handlers import topups as topups_handler
from membership.services import ledger as ledger_service
from membership.services import subscriptions as service
from membership.storage import ledger
from membership.storage import subscriptions as store
from membership.storage.models import GuardItem, MemberItem
from membership.storage.topups import IdempotencyKeyItem

EVENTS = Path(__file__).resolve().parents[2] / "events"
SIGNUP = {"phone": "13812345678", "nickname": "Lin", "channel": "app"}
MONTHLY = {"planId": "PLUS", "term": "monthly", "paymentReference": "test-plus-0001",
           "channel": "wechat_pay"}
BY_BALANCE = {"planId": "PLUS", "term": "monthly", "payWith": "balance"}
SUB = "user-plus"
PATH = "/v1/members/me/subscriptions"


def call(module, event, ctx):
    response = module.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"] or "null"), response


def signup(apigw_event, ctx, sub=SUB):
    status, body, _ = call(members_handler,
                           apigw_event("POST", "/v1/members", SIGNUP, sub=sub), ctx)
    assert status == 201
    return body["memberId"]


def buy(apigw_event, ctx, body, key="buy-1", sub=SUB):
    status, answer, raw = call(handler, apigw_event(
        "POST", PATH, body, sub=sub, headers={"Idempotency-Key": key}), ctx)
    return status, answer, raw["headers"]


def read(apigw_event, ctx, sub=SUB):
    status, body, _ = call(handler, apigw_event("GET", PATH, sub=sub), ctx)
    assert status == 200, body
    return body


def top_up(apigw_event, ctx, amount, reference="test-wx-plus", key="topup-1"):
    status, body, _ = call(topups_handler, apigw_event(
        "POST", "/v1/members/me/topups",
        {"amount": amount, "paymentReference": reference, "channel": "wechat_pay"}, sub=SUB,
        headers={"Idempotency-Key": key}), ctx)
    return status, body


def member_of(member_id):
    return MemberItem.get(*MemberItem.key(member_id), consistent_read=True).to_domain()


def terms_of(member_id):
    return store.read(member_id)[1].get("PLUS", [])


def validate(detail_type, detail):
    schema = json.loads((EVENTS / "schemas" / f"{detail_type}.json").read_text())
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        detail)


def outbox(source_key):
    (event,) = GuardItem.get(*GuardItem.key(source_key)).outbox
    return event["detailType"], json.loads(event["detail"])


def parse(text):
    return datetime.fromisoformat(text)


# ---- buying -----------------------------------------------------------------------------

def test_buying_a_month_with_a_verified_payment_starts_the_plan_now(table, apigw_event,
                                                                    lambda_context):
    member_id = signup(apigw_event, lambda_context)
    before = datetime.now(UTC)
    status, body, headers = buy(apigw_event, lambda_context, MONTHLY)
    assert status == 201, body
    assert headers["Idempotent-Replayed"] == "false"
    assert (body["planId"], body["status"], body["extended"]) == ("PLUS", "active", False)
    term = body["term"]
    assert (term["term"], term["price"], term["paidWith"]) == ("monthly", 1900, "payment")
    assert parse(term["startsAt"]) >= before
    assert term["endsAt"].endswith(".999999+08:00") and body["balance"] is None
    plan = member_of(member_id).paid_plan
    assert plan.plan_id == "PLUS" and calendar.wire(plan.ends_at, "Asia/Shanghai") == (
        body["endsAt"])


def test_a_purchase_announces_a_schema_valid_subscription_started(table, apigw_event,
                                                                  lambda_context):
    signup(apigw_event, lambda_context)
    buy(apigw_event, lambda_context, MONTHLY)
    detail_type, detail = outbox("subscription:payment:test-plus-0001")
    assert detail_type == "subscription.started"
    validate(detail_type, detail)
    assert (detail["price"], detail["paymentReference"]) == (1900, "test-plus-0001")


def test_the_profile_paid_plan_agrees_with_the_terms(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    _, bought, _ = buy(apigw_event, lambda_context, MONTHLY)
    _, profile, _ = call(members_handler, apigw_event("GET", "/v1/members/me", sub=SUB),
                         lambda_context)
    assert profile["paidPlan"] == {"planId": "PLUS", "endsAt": bought["endsAt"],
                                   "active": True}
    assert "plus_points_x2" in {b["code"] for b in profile["benefits"]}
    view = read(apigw_event, lambda_context)
    assert (view["endsAt"], view["status"]) == (bought["endsAt"], "active")


def test_buying_while_active_extends_from_the_current_end(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, first, _ = buy(apigw_event, lambda_context, MONTHLY)
    status, second, _ = buy(apigw_event, lambda_context,
                            {**MONTHLY, "term": "quarterly",
                             "paymentReference": "test-plus-0002"}, key="buy-2")
    assert status == 201, second
    assert second["extended"] is True
    assert parse(second["term"]["startsAt"]) == parse(first["endsAt"]) + timedelta(
        microseconds=1)
    ends = parse(second["endsAt"])
    first_start = parse(first["term"]["startsAt"])
    assert (ends.year * 12 + ends.month) - (first_start.year * 12 + first_start.month) == 4
    assert member_of(member_id).paid_plan.ends_at == parse(second["endsAt"])
    assert member_of(member_id).paid_plan.started_at == parse(first["term"]["startsAt"])
    detail_type, detail = outbox("subscription:payment:test-plus-0002")
    assert detail_type == "subscription.renewed"
    validate(detail_type, detail)


def test_buying_after_a_lapse_starts_now_not_at_the_old_end(table, apigw_event,
                                                            lambda_context):
    member_id = signup(apigw_event, lambda_context)
    long_ago = datetime.now(UTC) - timedelta(days=90)
    old = service.purchase(SUB, "old", SubscriptionRequest.model_validate(
        {**MONTHLY, "paymentReference": "test-plus-old"}), now=long_ago)
    assert parse(old.body["endsAt"]) < datetime.now(UTC)
    assert read(apigw_event, lambda_context)["status"] == "lapsed"
    before = datetime.now(UTC)
    status, body, _ = buy(apigw_event, lambda_context, MONTHLY)
    assert status == 201 and body["extended"] is False
    assert parse(body["term"]["startsAt"]) >= before
    assert member_of(member_id).paid_plan.started_at >= before
    assert len(terms_of(member_id)) == 2


# ---- trial ------------------------------------------------------------------------------

def test_a_trial_runs_seven_days_and_shows_status_trial(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    status, body, _ = buy(apigw_event, lambda_context, {"planId": "PLUS", "term": "trial"})
    assert status == 201, body
    assert (body["status"], body["term"]["price"], body["term"]["paidWith"]) == (
        "trial", 0, "trial")
    start = parse(body["term"]["startsAt"]).astimezone(calendar.zone("Asia/Shanghai"))
    assert parse(body["endsAt"]).date() == start.date() + timedelta(days=7)
    view = read(apigw_event, lambda_context)
    assert (view["status"], view["trialUsed"]) == ("trial", True)


def test_a_second_trial_is_refused_with_trial_used(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    buy(apigw_event, lambda_context, {"planId": "PLUS", "term": "trial"})
    status, body, _ = buy(apigw_event, lambda_context, {"planId": "PLUS", "term": "trial"},
                          key="trial-2")
    assert (status, body["code"]) == (409, "trial_used")
    assert len(terms_of(member_id)) == 1


def test_a_trial_is_once_ever_even_after_it_lapsed(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    service.purchase(SUB, "t-old", SubscriptionRequest.model_validate(
        {"planId": "PLUS", "term": "trial"}), now=datetime.now(UTC) - timedelta(days=60))
    status, body, _ = buy(apigw_event, lambda_context, {"planId": "PLUS", "term": "trial"})
    assert (status, body["code"]) == (409, "trial_used")
    assert len(terms_of(member_id)) == 1


def test_a_paid_term_bought_during_the_trial_starts_after_it(table, apigw_event,
                                                             lambda_context):
    signup(apigw_event, lambda_context)
    _, trial, _ = buy(apigw_event, lambda_context, {"planId": "PLUS", "term": "trial"})
    _, paid, _ = buy(apigw_event, lambda_context, MONTHLY, key="buy-2")
    assert parse(paid["term"]["startsAt"]) == parse(trial["endsAt"]) + timedelta(
        microseconds=1)
    assert paid["status"] == "trial"  # still in the trial until it ends


# ---- idempotency ------------------------------------------------------------------------

def test_the_same_purchase_key_replayed_answers_the_first_response(table, apigw_event,
                                                                   lambda_context):
    member_id = signup(apigw_event, lambda_context)
    _, first, _ = buy(apigw_event, lambda_context, MONTHLY)
    status, again, headers = buy(apigw_event, lambda_context, MONTHLY)
    assert status == 201 and again == first
    assert headers["Idempotent-Replayed"] == "true"
    assert len(terms_of(member_id)) == 1


def test_a_purchase_key_reused_with_another_body_is_refused(table, apigw_event,
                                                            lambda_context):
    member_id = signup(apigw_event, lambda_context)
    buy(apigw_event, lambda_context, MONTHLY)
    status, body, _ = buy(apigw_event, lambda_context,
                          {**MONTHLY, "term": "yearly", "paymentReference": "test-plus-9"})
    assert (status, body["code"]) == (422, "idempotency_key_reused")
    assert len(terms_of(member_id)) == 1


def test_a_balance_purchase_replayed_debits_once(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context, 5_000)
    _, first, _ = buy(apigw_event, lambda_context, BY_BALANCE)
    _, again, headers = buy(apigw_event, lambda_context, BY_BALANCE)
    assert again == first and headers["Idempotent-Replayed"] == "true"
    assert member_of(member_id).balance_principal == 5_000 - 1_900
    assert len(terms_of(member_id)) == 1


def test_a_payment_reference_buys_one_term_whatever_the_key(table, apigw_event,
                                                            lambda_context):
    member_id = signup(apigw_event, lambda_context)
    buy(apigw_event, lambda_context, MONTHLY)
    status, body, _ = buy(apigw_event, lambda_context, {**MONTHLY, "term": "yearly"},
                          key="buy-2")
    assert (status, body["code"]) == (409, "payment_reference_used")
    assert len(terms_of(member_id)) == 1


def test_a_payment_reference_that_topped_up_cannot_buy_a_plan(table, apigw_event,
                                                              lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context, 1_900, reference="test-plus-0001")
    status, body, _ = buy(apigw_event, lambda_context, MONTHLY)
    assert (status, body["code"]) == (409, "payment_reference_used")
    assert terms_of(member_id) == []


def test_a_payment_reference_that_bought_a_plan_cannot_top_up(table, apigw_event,
                                                              lambda_context):
    member_id = signup(apigw_event, lambda_context)
    buy(apigw_event, lambda_context, MONTHLY)
    status, body = top_up(apigw_event, lambda_context, 1_900, reference="test-plus-0001")
    assert (status, body["code"]) == (409, "payment_reference_used")
    assert member_of(member_id).balance_principal == 0


def test_a_balance_key_reused_after_its_record_expired_is_still_refused(table, apigw_event,
                                                                         lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context, 50_000)
    day_ago = datetime.now(UTC) - timedelta(days=2)
    service.purchase(SUB, "old-key", SubscriptionRequest.model_validate(BY_BALANCE),
                     now=day_ago)
    status, body, _ = buy(apigw_event, lambda_context, {**BY_BALANCE, "term": "yearly"},
                          key="old-key")
    assert (status, body["code"]) == (422, "idempotency_key_reused")
    assert len(terms_of(member_id)) == 1


# ---- concurrency ------------------------------------------------------------------------

def _at_once(calls):
    results, barrier = [None] * len(calls), threading.Barrier(len(calls))

    def run(i):
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each call raised
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_purchases_each_extend_once_and_debit_once(table, apigw_event,
                                                              lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context, 50_000)
    request = SubscriptionRequest.model_validate(BY_BALANCE)
    results = _at_once([lambda k=k: service.purchase(SUB, f"c{k}", request) for k in range(4)])
    assert all(isinstance(r, service.Answer) and not r.replayed for r in results), results
    terms = sorted((t.record for t in terms_of(member_id)), key=lambda r: r.starts_at)
    assert len(terms) == 4
    for before, after in itertools.pairwise(terms):
        assert after.starts_at == before.ends_at + timedelta(microseconds=1)
    m = member_of(member_id)
    assert m.balance_principal == 50_000 - 4 * 1_900
    assert m.paid_plan.ends_at == terms[-1].ends_at
    assert ledger_service.reconcile_member(member_id) == []


def test_concurrent_trials_with_different_keys_give_one_trial(table, apigw_event,
                                                              lambda_context):
    member_id = signup(apigw_event, lambda_context)
    request = SubscriptionRequest.model_validate({"planId": "PLUS", "term": "trial"})
    results = _at_once([lambda k=k: service.purchase(SUB, f"t{k}", request) for k in range(4)])
    assert sum(isinstance(r, service.Answer) for r in results) == 1, results
    assert all(getattr(r, "code", "trial_used") == "trial_used" for r in results
               if not isinstance(r, service.Answer))
    assert len(terms_of(member_id)) == 1


# ---- paying from balance ----------------------------------------------------------------

def test_paying_with_balance_debits_it_in_the_same_posting_as_the_term(table, apigw_event,
                                                                       lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context, 10_000)  # + 5 yuan bonus
    status, body, _ = buy(apigw_event, lambda_context, BY_BALANCE)
    assert status == 201, body
    assert body["balance"] == {"principal": 8_100, "bonus": 500, "total": 8_600}
    (term,) = terms_of(member_id)
    assert (term.paid_with, term.paid_principal, term.paid_bonus) == ("balance", 1_900, 0)
    debit = [e for e in ledger.all_entries(member_id) if e.source_type == "subscription"]
    assert [(e.asset, e.bucket, e.amount) for e in debit] == [("balance", "principal", -1_900)]
    assert ledger_service.reconcile_member(member_id) == []


def test_paying_with_too_little_balance_is_refused_and_writes_nothing(table, apigw_event,
                                                                      lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context, 1_000)
    before = member_of(member_id)
    entries = len(ledger.all_entries(member_id))
    keys_before = len(list(IdempotencyKeyItem.scan()))
    status, body, _ = buy(apigw_event, lambda_context, BY_BALANCE)
    assert (status, body["code"]) == (409, "insufficient_balance")
    assert member_of(member_id) == before
    assert len(ledger.all_entries(member_id)) == entries
    assert terms_of(member_id) == [] and store.read(member_id)[0] == {}
    assert len(list(IdempotencyKeyItem.scan())) == keys_before
    assert ledger_service.reconcile_member(member_id) == []


def test_reconcile_passes_after_trial_payment_and_balance_purchases(table, apigw_event,
                                                                    lambda_context):
    member_id = signup(apigw_event, lambda_context)
    top_up(apigw_event, lambda_context, 50_000)
    buy(apigw_event, lambda_context, {"planId": "PLUS", "term": "trial"}, key="k1")
    buy(apigw_event, lambda_context, MONTHLY, key="k2")
    buy(apigw_event, lambda_context, {**BY_BALANCE, "term": "yearly"}, key="k3")
    assert len(terms_of(member_id)) == 3
    assert member_of(member_id).balance_principal == 50_000 - 14_900
    assert ledger_service.reconcile_member(member_id) == []


# ---- refusals ---------------------------------------------------------------------------

def test_an_unverified_payment_is_refused_and_writes_nothing(table, apigw_event,
                                                             lambda_context):
    member_id = signup(apigw_event, lambda_context)
    status, body, _ = buy(apigw_event, lambda_context,
                          {**MONTHLY, "paymentReference": "wx-not-a-test"})
    assert (status, body["code"]) == (422, "payment_not_verified")
    assert terms_of(member_id) == [] and member_of(member_id).paid_plan is None


def test_an_unknown_plan_is_404(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    status, body, _ = buy(apigw_event, lambda_context, {**MONTHLY, "planId": "GOLD"})
    assert (status, body["code"]) == (404, "plan_not_found")


def test_a_purchase_before_signup_is_404(table, apigw_event, lambda_context):
    status, body, _ = buy(apigw_event, lambda_context, BY_BALANCE)
    assert status == 404, body


def test_a_purchase_without_an_idempotency_key_is_refused(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    status, body, _ = call(handler, apigw_event("POST", PATH, MONTHLY, sub=SUB), lambda_context)
    assert 400 <= status < 500 and body["code"]


@pytest.mark.parametrize("body", [
    {},
    {"planId": "PLUS"},
    {"planId": "PLUS", "term": "weekly", "payWith": "balance"},
    {"planId": "PLUS", "term": "monthly"},
    {**MONTHLY, "payWith": "balance"},
    {"planId": "PLUS", "term": "monthly", "paymentReference": "test-x"},
    {"planId": "PLUS", "term": "trial", "payWith": "balance"},
    {"planId": "PLUS", "term": "monthly", "payWith": "cash"},
    {**BY_BALANCE, "extra": 1},
    {**BY_BALANCE, "planId": 7},
    {**BY_BALANCE, "planId": "P" * 40},
    [],
    "not json",
    {**MONTHLY, "paymentReference": "has spaces in it"},
])
def test_a_bad_purchase_body_is_a_clear_4xx_and_writes_nothing(table, apigw_event,
                                                               lambda_context, body):
    member_id = signup(apigw_event, lambda_context)
    status, answer, _ = buy(apigw_event, lambda_context, body)
    assert 400 <= status < 500 and answer["code"], answer
    assert terms_of(member_id) == [] and member_of(member_id).paid_plan is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.text(max_size=20)
    | st.sampled_from(["PLUS", "monthly", "trial", "balance", "test-1", "wechat_pay"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12)
FIELDS = ("planId", "term", "paymentReference", "channel", "payWith")
near_valid = st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, json_values)).map(
    lambda d: {**BY_BALANCE, **d})


def test_any_purchase_body_gets_a_4xx_or_a_purchase_never_a_500(table, apigw_event,
                                                                 lambda_context):
    member_id = signup(apigw_event, lambda_context)
    n = iter(range(10**6))

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(body=json_values | near_valid)
    def check(body):
        terms = len(terms_of(member_id))
        status, answer, _ = call(handler, apigw_event(
            "POST", PATH, json.dumps(body), sub=SUB,
            headers={"Idempotency-Key": f"fuzz-{next(n)}", "content-type": "application/json"}),
            lambda_context)
        assert status in (201, 400, 404, 409, 415, 422), (status, answer)
        assert answer["code"] if status >= 400 else answer["term"]
        assert len(terms_of(member_id)) == terms + (status == 201)

    check()


# ---- reading and auto-renew -------------------------------------------------------------

def test_a_member_who_never_subscribed_reads_no_plan(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    view = read(apigw_event, lambda_context)
    assert (view["status"], view["planId"], view["terms"], view["autoRenew"]) == (
        None, None, [], False)


def test_the_read_lists_terms_newest_first_with_the_run_dates(table, apigw_event,
                                                              lambda_context):
    signup(apigw_event, lambda_context)
    _, first, _ = buy(apigw_event, lambda_context, MONTHLY)
    _, second, _ = buy(apigw_event, lambda_context,
                       {**MONTHLY, "paymentReference": "test-plus-0002"}, key="buy-2")
    view = read(apigw_event, lambda_context)
    assert [t["termId"] for t in view["terms"]] == [second["term"]["termId"],
                                                    first["term"]["termId"]]
    assert [t["status"] for t in view["terms"]] == ["upcoming", "current"]
    assert view["startedAt"] == first["term"]["startsAt"]
    assert view["endsAt"] == second["endsAt"] and view["nextRenewalOn"] is None
    assert view["savedThisTerm"]["total"] == 0


def test_switching_auto_renew_on_gives_the_next_renewal_date(table, apigw_event,
                                                             lambda_context):
    signup(apigw_event, lambda_context)
    _, bought, _ = buy(apigw_event, lambda_context, MONTHLY)
    status, view, _ = call(handler, apigw_event(
        "PATCH", f"{PATH}/current", {"autoRenew": True}, sub=SUB), lambda_context)
    assert status == 200, view
    assert view["autoRenew"] is True
    assert view["nextRenewalOn"] == bought["endsAt"][:10]
    status, view, _ = call(handler, apigw_event(
        "PATCH", f"{PATH}/current", {"autoRenew": False}, sub=SUB), lambda_context)
    assert (view["autoRenew"], view["nextRenewalOn"]) == (False, None)
    assert read(apigw_event, lambda_context)["autoRenew"] is False


def test_auto_renew_without_a_plan_is_404(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    status, body, _ = call(handler, apigw_event(
        "PATCH", f"{PATH}/current", {"autoRenew": True}, sub=SUB), lambda_context)
    assert (status, body["code"]) == (404, "subscription_not_found")


@pytest.mark.parametrize("body", [{}, {"autoRenew": "yes"}, {"autoRenew": 1},
                                  {"autoRenew": True, "x": 1}, None])
def test_a_bad_auto_renew_body_is_a_clear_4xx(table, apigw_event, lambda_context, body):
    signup(apigw_event, lambda_context)
    buy(apigw_event, lambda_context, MONTHLY)
    status, answer, _ = call(handler, apigw_event(
        "PATCH", f"{PATH}/current", body, sub=SUB), lambda_context)
    assert 400 <= status < 500 and answer["code"], answer
    assert read(apigw_event, lambda_context)["autoRenew"] is False


# ---- privacy ----------------------------------------------------------------------------

def test_the_export_carries_the_subscription_and_its_terms(table, apigw_event, lambda_context):
    from membership.handlers import privacy

    signup(apigw_event, lambda_context)
    _, bought, _ = buy(apigw_event, lambda_context, MONTHLY)
    status, doc, _ = call(privacy, apigw_event("GET", "/v1/members/me/export", sub=SUB),
                          lambda_context)
    assert status == 200
    assert doc["subscriptions"][0]["endsAt"] == bought["endsAt"]
    records = doc["otherRecords"]["subscription"]
    assert {r.get("termId") for r in records} >= {bought["term"]["termId"]}
    assert any(r.get("paymentReference") == "test-plus-0001" for r in records)


def test_closing_the_account_is_refused_while_a_term_is_active(table, apigw_event,
                                                              lambda_context):
    from membership.handlers import privacy

    signup(apigw_event, lambda_context)
    buy(apigw_event, lambda_context, {"planId": "PLUS", "term": "trial"})
    status, body, _ = call(privacy, apigw_event("DELETE", "/v1/members/me", sub=SUB),
                           lambda_context)
    assert (status, body["code"]) == (409, "account_not_empty")
