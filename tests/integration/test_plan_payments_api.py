"""PLUS bought through WeChat Pay and Alipay: the providers' signed notifications with a plan
attach and the app's own `POST /v1/members/me/subscriptions`, through the real handlers,
against DynamoDB Local, the fake providers (keys generated, signing as they do) and moto's
Secrets Manager. A payment buys the one term its attach names, once, whichever of the two
arrives first; every refusal writes nothing (docs/payments.md, "Paid plans")."""
import json
import uuid

import pytest

from membership.domain.members import member_id_for
from membership.domain.payments import ProviderRefund, plan_attach, topup_attach
from membership.domain.subscription_refunds import SubscriptionRefundRequest
from membership.handlers import members as members_handler
from membership.handlers import payment_notifications as notifications_handler
from membership.handlers import subscriptions as subscriptions_handler
from membership.services import payment_notifications, subscription_refunds
from membership.storage import subscriptions as store
from membership.storage.models import GuardItem
from membership_local.apigw import http_event

WECHAT_PATH = "/v1/payments/wechatpay/notifications"
ALIPAY_PATH = "/v1/payments/alipay/notifications"
PATH = "/v1/members/me/subscriptions"
SUB, OTHER_SUB = "plus-payer", "plus-other"
MEMBER, OTHER = member_id_for(SUB), member_id_for(OTHER_SUB)
ACK = {"wechat_pay": (200, {"code": "SUCCESS", "message": "OK"}), "alipay": (200, "success")}
PRICE = {"monthly": 1_900, "quarterly": 4_900, "yearly": 14_900}


@pytest.fixture
def providers(table, fake_providers, monkeypatch, reset_caches):
    """The table, the fakes, and the purchase route verifying through them."""
    monkeypatch.setenv("PAYMENT_VERIFIER",
                       "membership.services.payment_providers.ProviderVerifier")
    reset_caches()
    return fake_providers


@pytest.fixture(params=["wechat_pay", "alipay"])
def channel(request):
    return request.param


def signup(apigw_event, ctx, sub=SUB, phone="13812345678"):
    response = members_handler.handler(apigw_event(
        "POST", "/v1/members", {"phone": phone, "nickname": "Lin", "channel": "app"}, sub=sub),
        ctx.next_invocation())
    assert response["statusCode"] == 201, response["body"]


def notify(ctx, channel, headers, body):
    path = WECHAT_PATH if channel == "wechat_pay" else ALIPAY_PATH
    response = notifications_handler.handler(
        http_event("POST", path, body, headers={k.lower(): v for k, v in headers.items()}),
        ctx.next_invocation())
    text = response.get("body") or ""
    return response["statusCode"], json.loads(text) if text.startswith("{") else text


def pay(providers, channel, reference, attach, amount=1_900):
    """The member pays at the provider; its notification is not sent yet."""
    return providers.pay(channel, reference, amount, attach)


def notified(providers, ctx, channel, reference):
    return notify(ctx, channel,
                  *providers.payment_notification(providers.orders[(channel, reference)]))


def app_buy(apigw_event, ctx, reference, channel, term="monthly", sub=SUB, plan="PLUS",
            key=None):
    response = subscriptions_handler.handler(apigw_event(
        "POST", PATH, {"planId": plan, "term": term, "paymentReference": reference,
                       "channel": channel},
        sub=sub, headers={"Idempotency-Key": key or uuid.uuid4().hex}), ctx.next_invocation())
    return response["statusCode"], json.loads(response["body"]), response["headers"]


def view(apigw_event, ctx, sub=SUB, plan=None):
    query = {"planId": plan} if plan else None
    response = subscriptions_handler.handler(
        apigw_event("GET", PATH, sub=sub, query=query), ctx.next_invocation())
    return response["statusCode"], json.loads(response["body"])


def terms(member=MEMBER):
    return store.read(member)[1].get("PLUS", [])


def items(dynamodb_local, table):
    return sorted((i["PK"]["S"], i["SK"]["S"], json.dumps(i, sort_keys=True)) for i in
                  dynamodb_local.client().scan(TableName=table, ConsistentRead=True)["Items"])


def reference_for(channel, n=1):
    return f"{'WX' if channel == 'wechat_pay' else 'AL'}PLUS{n}"


# ---- a payment buys its term once, whichever arrives first -------------------------------

def test_a_plan_notification_buys_the_term_and_answers_the_providers_ack(
        providers, channel, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    assert notified(providers, lambda_context, channel, reference) == ACK[channel]
    (term,) = terms()
    assert (term.seq, term.record.term, term.record.price, term.payment_reference,
            term.channel, term.paid_with) == (1, "monthly", 1_900, reference, channel, "payment")
    status, plan = view(apigw_event, lambda_context)
    assert (status, plan["status"], plan["nextTerm"]) == (200, "active", 2)
    # The event of the purchase, as from the member's own call.
    (event,) = GuardItem.get(*GuardItem.key(f"subscription:payment:{reference}")).outbox
    detail = json.loads(event["detail"])
    assert (event["detailType"], detail["paymentReference"], detail["paidWith"]) == (
        "subscription.started", reference, "payment")


def test_a_replayed_plan_notification_changes_nothing(providers, channel, apigw_event,
                                                      lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    headers, body = providers.payment_notification(providers.orders[(channel, reference)])
    assert notify(lambda_context, channel, headers, body) == ACK[channel]
    after_first = items(dynamodb_local, table)
    for _ in range(2):  # the same delivery again, and a fresh one of the same payment
        assert notify(lambda_context, channel, headers, body) == ACK[channel]
        assert notified(providers, lambda_context, channel, reference) == ACK[channel]
    assert items(dynamodb_local, table) == after_first
    assert len(terms()) == 1


def test_the_notification_before_the_apps_call_buys_once_and_the_call_replays_it(
        providers, channel, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    assert notified(providers, lambda_context, channel, reference) == ACK[channel]
    before = items(dynamodb_local, table)
    status, body, headers = app_buy(apigw_event, lambda_context, reference, channel)
    assert (status, headers["Idempotent-Replayed"]) == (201, "true"), body
    assert (body["term"]["termId"], body["term"]["paymentReference"]) == (
        f"{MEMBER}.PLUS.0001", reference)
    assert items(dynamodb_local, table) == before
    assert len(terms()) == 1


def test_the_notification_after_the_apps_call_is_acknowledged_and_buys_nothing_more(
        providers, channel, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    status, body, headers = app_buy(apigw_event, lambda_context, reference, channel)
    assert (status, headers["Idempotent-Replayed"]) == (201, "false"), body
    before = items(dynamodb_local, table)
    assert notified(providers, lambda_context, channel, reference) == ACK[channel]
    assert items(dynamodb_local, table) == before
    assert len(terms()) == 1


def test_a_term_bought_by_notification_counts_once_in_the_programs_metrics(
        providers, channel, apigw_event, lambda_context):
    from membership.domain import calendar
    from membership.storage.metrics import flows
    from membership.storage.program import load_program

    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    for _ in range(2):
        notified(providers, lambda_context, channel, reference)
    app_buy(apigw_event, lambda_context, reference, channel)
    (term,) = terms()
    month = calendar.month_of(term.record.starts_at, load_program().time_zone)
    assert flows(month).paid_starts == 1


def test_the_notification_alone_is_enough_and_the_next_payment_extends(
        providers, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    pay(providers, "wechat_pay", "WXPLUS1", plan_attach(MEMBER, "PLUS", "monthly", 1))
    pay(providers, "alipay", "ALPLUS2", plan_attach(MEMBER, "PLUS", "quarterly", 2),
        amount=4_900)
    assert notified(providers, lambda_context, "wechat_pay", "WXPLUS1")[0] == 200
    assert notified(providers, lambda_context, "alipay", "ALPLUS2")[0] == 200
    first, second = terms()
    assert (second.seq, second.record.term, second.extended) == (2, "quarterly", True)
    assert second.record.starts_at > first.record.ends_at
    assert view(apigw_event, lambda_context)[1]["nextTerm"] == 3


# ---- refused, and nothing written --------------------------------------------------------

def refused_notification(providers, ctx, channel, reference, dynamodb_local, table):
    before = items(dynamodb_local, table)
    status, answer = notified(providers, ctx, channel, reference)
    assert items(dynamodb_local, table) == before, "a refused notification wrote something"
    return status, answer["code"]


def refused_call(apigw_event, ctx, dynamodb_local, table, reference, channel, **kwargs):
    before = items(dynamodb_local, table)
    status, body, _ = app_buy(apigw_event, ctx, reference, channel, **kwargs)
    assert items(dynamodb_local, table) == before, "a refused purchase wrote something"
    return status, body["code"]


@pytest.mark.parametrize("amount", [1_800, 2_000, 4_900])
def test_a_payment_of_another_amount_than_the_price_buys_nothing(
        providers, channel, amount, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1), amount)
    assert refused_notification(providers, lambda_context, channel, reference,
                                dynamodb_local, table) == (422, "payment_not_verified")
    assert refused_call(apigw_event, lambda_context, dynamodb_local, table, reference,
                        channel) == (422, "payment_not_verified")
    assert terms() == []


def test_a_payment_for_another_plan_buys_nothing(providers, channel, apigw_event,
                                                 lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "GOLD", "monthly", 1))
    # The notification names a plan the program does not sell; the member's call for PLUS
    # presents a payment made for GOLD.
    assert refused_notification(providers, lambda_context, channel, reference,
                                dynamodb_local, table) == (404, "plan_not_found")
    assert refused_call(apigw_event, lambda_context, dynamodb_local, table, reference,
                        channel) == (422, "payment_not_verified")


def test_a_payment_for_another_member_cannot_be_claimed(providers, channel, apigw_event,
                                                        lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    signup(apigw_event, lambda_context, sub=OTHER_SUB, phone="13912345678")
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    assert refused_call(apigw_event, lambda_context, dynamodb_local, table, reference,
                        channel, sub=OTHER_SUB) == (422, "payment_not_verified")
    # Its notification buys the term for the member it was made for.
    assert notified(providers, lambda_context, channel, reference) == ACK[channel]
    assert (len(terms(MEMBER)), terms(OTHER)) == (1, [])


def test_a_notification_for_a_member_who_never_signed_up_is_404(providers, channel,
                                                                lambda_context,
                                                                dynamodb_local, table):
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    assert refused_notification(providers, lambda_context, channel, reference,
                                dynamodb_local, table) == (404, "member_not_found")


@pytest.mark.parametrize("number", [2, 7])
def test_a_payment_for_another_term_number_buys_nothing(providers, channel, number,
                                                        apigw_event, lambda_context,
                                                        dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", number))
    assert refused_notification(providers, lambda_context, channel, reference,
                                dynamodb_local, table) == (422, "payment_not_verified")
    assert refused_call(apigw_event, lambda_context, dynamodb_local, table, reference,
                        channel) == (422, "payment_not_verified")


def test_a_payment_for_another_kind_of_term_cannot_buy_this_one(providers, channel,
                                                                apigw_event, lambda_context,
                                                                dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    assert refused_call(apigw_event, lambda_context, dynamodb_local, table, reference,
                        channel, term="quarterly") == (422, "payment_not_verified")


def test_two_payments_for_the_same_next_term_buy_one_term(providers, channel, apigw_event,
                                                          lambda_context, dynamodb_local,
                                                          table):
    """The member paid twice for the next month (two devices): the first to arrive buys
    term 1; the other names a term that exists now and is refused, for the brand to refund."""
    signup(apigw_event, lambda_context)
    first, second = reference_for(channel, 1), reference_for(channel, 2)
    for reference in (first, second):
        pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    assert notified(providers, lambda_context, channel, first) == ACK[channel]
    assert refused_notification(providers, lambda_context, channel, second,
                                dynamodb_local, table) == (422, "payment_not_verified")
    assert refused_call(apigw_event, lambda_context, dynamodb_local, table, second,
                        channel) == (422, "payment_not_verified")
    assert [t.payment_reference for t in terms()] == [first]


def test_a_top_up_payment_cannot_buy_a_plan_nor_a_plan_payment_top_up(
        providers, channel, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, topup_attach(MEMBER))
    assert refused_call(apigw_event, lambda_context, dynamodb_local, table, reference,
                        channel) == (422, "payment_not_verified")


@pytest.mark.parametrize("fault", ["timeout", 502])
def test_a_provider_that_times_out_is_503_and_nothing_is_written(
        providers, channel, fault, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    providers.faults[channel] = fault
    assert refused_call(apigw_event, lambda_context, dynamodb_local, table, reference,
                        channel) == (503, "temporarily_unavailable")
    providers.faults.clear()
    status, body, _ = app_buy(apigw_event, lambda_context, reference, channel)
    assert (status, body["term"]["termId"]) == (201, f"{MEMBER}.PLUS.0001")  # the retry


# ---- refunds of plan payments -------------------------------------------------------------

def refund_notice(providers, channel, reference, amount):
    order = providers.refund(channel, reference, amount)
    return providers.refund_notification(order, amount)


def test_a_provider_refund_of_a_term_refunded_by_the_operator_is_acknowledged(
        providers, channel, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    notified(providers, lambda_context, channel, reference)
    refunded = subscription_refunds.refund(
        f"{MEMBER}.PLUS", SubscriptionRefundRequest(refundId="PRF-1", reason="asked"),
        actor="admin:ops")
    assert (refunded.body["payout"], refunded.body["amount"]) == ("provider", 1_900)
    before = items(dynamodb_local, table)
    # The payment system paid it out at the provider, which says so.
    assert notify(lambda_context, channel,
                  *refund_notice(providers, channel, reference, 1_900)) == ACK[channel]
    assert items(dynamodb_local, table) == before


def test_a_provider_refund_of_a_running_term_is_acknowledged_and_flagged_not_applied(
        providers, channel, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    notified(providers, lambda_context, channel, reference)
    before = items(dynamodb_local, table)
    assert notify(lambda_context, channel,
                  *refund_notice(providers, channel, reference, 1_000)) == ACK[channel]
    assert items(dynamodb_local, table) == before
    (term,) = terms()
    assert term.record.refunded_at is None  # a person refunds it: the rule decides
    outcome = payment_notifications.apply_refund(ProviderRefund(
        channel=channel, payment_reference=reference, refund_reference="R2", amount=1_000))
    assert (outcome.action, outcome.body["termId"], outcome.body["reason"]) == (
        "plan_refund_unmatched", term.record.term_id, "term_not_refunded")


def test_a_refund_of_a_plan_payment_not_applied_yet_is_404_so_the_provider_retries(
        providers, channel, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    reference = reference_for(channel)
    pay(providers, channel, reference, plan_attach(MEMBER, "PLUS", "monthly", 1))
    before = items(dynamodb_local, table)
    status, answer = notify(lambda_context, channel,
                            *refund_notice(providers, channel, reference, 1_900))
    assert (status, answer["code"]) == (404, "topup_not_found")
    assert items(dynamodb_local, table) == before


# ---- what the app reads to build the attach ----------------------------------------------

def test_the_read_names_the_next_term_number_of_any_plan(providers, apigw_event,
                                                         lambda_context):
    signup(apigw_event, lambda_context)
    status, plan = view(apigw_event, lambda_context)
    assert (status, plan["planId"], plan["nextTerm"]) == (200, None, None)
    status, plan = view(apigw_event, lambda_context, plan="PLUS")
    assert (status, plan["planId"], plan["status"], plan["nextTerm"]) == (
        200, "PLUS", None, 1)
    pay(providers, "wechat_pay", "WXPLUS1", plan_attach(MEMBER, "PLUS", "monthly", 1))
    notified(providers, lambda_context, "wechat_pay", "WXPLUS1")
    assert view(apigw_event, lambda_context, plan="PLUS")[1]["nextTerm"] == 2
    assert view(apigw_event, lambda_context)[1]["nextTerm"] == 2


@pytest.mark.parametrize(("plan", "status", "code"), [
    ("GOLD", 404, "plan_not_found"), ("has space", 422, "validation_failed"),
    ("P" * 17, 422, "validation_failed")])
def test_reading_a_plan_the_program_has_not_is_a_clear_4xx(providers, apigw_event,
                                                           lambda_context, plan, status, code):
    signup(apigw_event, lambda_context)
    got, body = view(apigw_event, lambda_context, plan=plan)
    assert (got, body["code"]) == (status, code)


def test_the_attach_the_app_builds_from_the_read_buys_the_term(providers, apigw_event,
                                                               lambda_context):
    signup(apigw_event, lambda_context)
    for n, term in enumerate(("monthly", "yearly", "monthly"), start=1):
        plan = view(apigw_event, lambda_context, plan="PLUS")[1]
        reference = f"WXPLUS{n}"
        pay(providers, "wechat_pay", reference,
            plan_attach(MEMBER, "PLUS", term, plan["nextTerm"]), PRICE[term])
        status, body, _ = app_buy(apigw_event, lambda_context, reference, "wechat_pay",
                                  term=term)
        assert (status, body["term"]["termId"]) == (201, f"{MEMBER}.PLUS.{n:04d}"), body
    assert [t.record.term for t in terms()] == ["monthly", "yearly", "monthly"]
