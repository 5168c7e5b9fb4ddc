"""Providers' notifications and the app's own top-up call, through the real handlers,
against DynamoDB Local, fake WeChat Pay / Alipay (keys generated, signing as they do) and
moto's Secrets Manager. Paid plans through the providers: test_plan_payments_api.py."""
import json
import time
import uuid
from urllib.parse import parse_qsl, urlencode

import pytest

from membership.domain.members import member_id_for
from membership.domain.payments import topup_attach
from membership.domain.topups import topup_id_for
from membership.handlers import members as members_handler
from membership.handlers import payment_notifications as notifications_handler
from membership.handlers import topups as topups_handler
from membership.storage.models import MemberItem
from membership_local.apigw import http_event

WECHAT_PATH = "/v1/payments/wechatpay/notifications"
ALIPAY_PATH = "/v1/payments/alipay/notifications"
SUB = "user-a"
MEMBER = member_id_for(SUB)


@pytest.fixture
def providers(table, fake_providers, monkeypatch, reset_caches):
    """The table, the fakes, and the top-up route verifying through them."""
    monkeypatch.setenv("PAYMENT_VERIFIER",
                       "membership.services.payment_providers.ProviderVerifier")
    reset_caches()
    return fake_providers


def signup(apigw_event, ctx, sub=SUB, phone="13812345678"):
    response = members_handler.handler(apigw_event(
        "POST", "/v1/members", {"phone": phone, "nickname": "Lin", "channel": "app"}, sub=sub),
        ctx)
    assert response["statusCode"] == 201, response["body"]


def notify(ctx, path, headers, body):
    response = notifications_handler.handler(
        http_event("POST", path, body, headers={k.lower(): v for k, v in headers.items()}),
        ctx.next_invocation())
    text = response.get("body") or ""
    payload = json.loads(text) if text.startswith("{") else text
    return response["statusCode"], payload


def wechat_paid(fake, reference, amount, attach, **changes):
    keys = fake.wechatpay
    return keys.notification("TRANSACTION.SUCCESS",
                             {**keys.transaction(reference, amount, attach), **changes})


def app_top_up(apigw_event, ctx, reference, amount=50_000, channel="wechat_pay", key=None):
    response = topups_handler.handler(apigw_event(
        "POST", "/v1/members/me/topups",
        {"amount": amount, "paymentReference": reference, "channel": channel}, sub=SUB,
        headers={"Idempotency-Key": key or uuid.uuid4().hex}), ctx.next_invocation())
    return response["statusCode"], json.loads(response["body"]), response["headers"]


def balance():
    m = MemberItem.get(*MemberItem.key(MEMBER), consistent_read=True).to_domain()
    return m.balance_principal, m.balance_bonus


def items(dynamodb_local, table):
    return sorted((i["PK"]["S"], i["SK"]["S"]) for i in
                  dynamodb_local.client().scan(TableName=table, ConsistentRead=True)["Items"])


# ---- WeChat Pay: crediting once ---------------------------------------------------------

def test_wechatpay_notification_credits_the_topup_and_acknowledges(
        providers, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    status, body = notify(lambda_context, WECHAT_PATH,
                          *wechat_paid(providers, "WX1", 50_000, topup_attach(MEMBER)))
    assert (status, body) == (200, {"code": "SUCCESS", "message": "OK"})
    assert balance() == (50_000, 5_000)


def test_notification_before_the_apps_call_credits_once_and_the_call_replays_it(
        providers, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    providers.pay("wechat_pay", "WX1", 50_000, topup_attach(MEMBER))
    assert notify(lambda_context, WECHAT_PATH,
                  *providers.payment_notification(providers.orders[("wechat_pay", "WX1")])
                  )[0] == 200
    status, body, headers = app_top_up(apigw_event, lambda_context, "WX1")
    assert (status, headers["Idempotent-Replayed"]) == (201, "true")
    assert body["topupId"] == topup_id_for("WX1") and body["principal"] == 50_000
    assert balance() == (50_000, 5_000)


def test_notification_after_the_apps_call_is_acknowledged_and_credits_nothing_more(
        providers, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    providers.pay("wechat_pay", "WX1", 50_000, topup_attach(MEMBER))
    status, _, headers = app_top_up(apigw_event, lambda_context, "WX1")
    assert (status, headers["Idempotent-Replayed"]) == (201, "false")
    assert notify(lambda_context, WECHAT_PATH,
                  *providers.payment_notification(providers.orders[("wechat_pay", "WX1")])
                  ) == (200, {"code": "SUCCESS", "message": "OK"})
    assert balance() == (50_000, 5_000)


def test_a_replayed_notification_applies_once(providers, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    headers, body = wechat_paid(providers, "WX1", 50_000, topup_attach(MEMBER))
    answers = [notify(lambda_context, WECHAT_PATH, headers, body) for _ in range(3)]
    assert {a[0] for a in answers} == {200}
    assert balance() == (50_000, 5_000)


def test_a_notification_for_a_reference_credited_with_another_amount_is_409(
        providers, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    providers.pay("wechat_pay", "WX1", 50_000, topup_attach(MEMBER))
    app_top_up(apigw_event, lambda_context, "WX1")
    before = items(dynamodb_local, table)
    status, body = notify(lambda_context, WECHAT_PATH,
                          *wechat_paid(providers, "WX1", 60_000, topup_attach(MEMBER)))
    assert (status, body["code"]) == (409, "payment_reference_used")
    assert items(dynamodb_local, table) == before


# ---- WeChat Pay: refused, and nothing written -------------------------------------------

def refused(dynamodb_local, table, lambda_context, headers, body, path=WECHAT_PATH):
    before = items(dynamodb_local, table)
    status, answer = notify(lambda_context, path, headers, body)
    assert items(dynamodb_local, table) == before, "a refused notification wrote something"
    assert balance() == (0, 0)
    return status, answer["code"]


def test_a_tampered_notification_is_401_and_writes_nothing(providers, apigw_event,
                                                           lambda_context, dynamodb_local,
                                                           table):
    signup(apigw_event, lambda_context)
    headers, body = wechat_paid(providers, "WX1", 50_000, topup_attach(MEMBER))
    envelope = json.loads(body)
    envelope["resource"] = providers.wechatpay.encrypt(
        providers.wechatpay.transaction("WX1", 5_000_000, topup_attach(MEMBER)))
    assert refused(dynamodb_local, table, lambda_context, headers,
                   json.dumps(envelope)) == (401, "notification_signature_invalid")


def test_a_stale_notification_is_401_and_writes_nothing(providers, apigw_event,
                                                        lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    keys = providers.wechatpay
    headers, body = keys.notification(
        "TRANSACTION.SUCCESS", keys.transaction("WX1", 50_000, topup_attach(MEMBER)),
        timestamp=int(time.time()) - 3600)
    assert refused(dynamodb_local, table, lambda_context, headers, body) == (
        401, "notification_expired")


def test_a_notification_for_another_merchant_is_422_and_writes_nothing(
        providers, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    headers, body = wechat_paid(providers, "WX1", 50_000, topup_attach(MEMBER),
                                mchid="1900000999")
    assert refused(dynamodb_local, table, lambda_context, headers, body) == (
        422, "payment_merchant_mismatch")


def test_a_notification_without_a_membership_attach_is_422(providers, apigw_event,
                                                           lambda_context, dynamodb_local,
                                                           table):
    signup(apigw_event, lambda_context)
    headers, body = wechat_paid(providers, "WX1", 50_000, None)
    assert refused(dynamodb_local, table, lambda_context, headers, body) == (
        422, "payment_attach_invalid")


def test_a_notification_for_a_member_who_never_signed_up_is_404(providers, lambda_context,
                                                                dynamodb_local, table):
    before = items(dynamodb_local, table)
    status, answer = notify(lambda_context, WECHAT_PATH,
                            *wechat_paid(providers, "WX1", 50_000, topup_attach(MEMBER)))
    assert (status, answer["code"]) == (404, "member_not_found")
    assert items(dynamodb_local, table) == before


def test_a_notification_above_the_topup_maximum_is_422(providers, apigw_event, lambda_context,
                                                       dynamodb_local, table):
    signup(apigw_event, lambda_context)
    headers, body = wechat_paid(providers, "WX1", 500_001, topup_attach(MEMBER))
    assert refused(dynamodb_local, table, lambda_context, headers, body) == (
        422, "topup_above_maximum")


@pytest.mark.parametrize(("headers", "body"), [
    ({}, ""),
    ({}, "{}"),
    ({"content-type": "application/json"}, "not json"),
    ({"wechatpay-serial": "x", "wechatpay-signature": "x", "wechatpay-timestamp": "x",
      "wechatpay-nonce": "x"}, "{}"),
    ({"wechatpay-serial": "PUB", "wechatpay-signature": "!!", "wechatpay-timestamp": "1e99",
      "wechatpay-nonce": "n"}, "[]"),
])
def test_bad_input_on_the_wechatpay_route_is_a_clear_4xx(providers, lambda_context,
                                                         dynamodb_local, table, headers, body):
    before = items(dynamodb_local, table)
    status, answer = notify(lambda_context, WECHAT_PATH, headers, body)
    # The API's own body checks (415, malformed_body) come before the route's.
    assert 400 <= status < 500 and answer["code"] in (
        "malformed_notification", "notification_signature_invalid",
        "unsupported_media_type", "malformed_body")
    assert items(dynamodb_local, table) == before


def test_the_right_key_id_with_a_garbage_signature_is_401(providers, lambda_context):
    keys = providers.wechatpay
    headers, body = keys.notification("TRANSACTION.SUCCESS",
                                      keys.transaction("WX1", 1, topup_attach(MEMBER)))
    headers["Wechatpay-Signature"] = "not base64 at all"
    assert notify(lambda_context, WECHAT_PATH, headers, body)[1]["code"] == (
        "notification_signature_invalid")


def test_an_unconfigured_provider_refuses_its_notifications(providers, lambda_context,
                                                            monkeypatch, reset_caches):
    monkeypatch.setenv("WECHATPAY_SECRET_NAME", "")
    reset_caches()
    status, answer = notify(lambda_context, WECHAT_PATH,
                            *wechat_paid(providers, "WX1", 50_000, topup_attach(MEMBER)))
    assert (status, answer["code"]) == (422, "payment_provider_not_configured")


# ---- the app's own call, verified by the provider ---------------------------------------

def test_the_apps_call_is_credited_when_wechatpay_confirms_it(providers, apigw_event,
                                                              lambda_context):
    signup(apigw_event, lambda_context)
    providers.pay("wechat_pay", "WX1", 50_000, topup_attach(MEMBER))
    status, body, _ = app_top_up(apigw_event, lambda_context, "WX1")
    assert (status, body["principal"], body["bonus"]) == (201, 50_000, 5_000)


def test_the_apps_call_with_a_wrong_amount_is_422_and_writes_nothing(
        providers, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    providers.pay("wechat_pay", "WX1", 40_000, topup_attach(MEMBER))
    before = items(dynamodb_local, table)
    status, body, _ = app_top_up(apigw_event, lambda_context, "WX1", amount=50_000)
    assert (status, body["code"]) == (422, "payment_amount_mismatch")
    assert items(dynamodb_local, table) == before


def test_provider_timeout_is_503_and_writes_nothing(providers, apigw_event, lambda_context,
                                                    dynamodb_local, table):
    signup(apigw_event, lambda_context)
    providers.pay("wechat_pay", "WX1", 50_000, topup_attach(MEMBER))
    providers.faults["wechat_pay"] = "timeout"
    before = items(dynamodb_local, table)
    status, body, _ = app_top_up(apigw_event, lambda_context, "WX1")
    assert (status, body["code"]) == (503, "temporarily_unavailable")
    assert items(dynamodb_local, table) == before
    providers.faults.clear()
    assert app_top_up(apigw_event, lambda_context, "WX1")[0] == 201  # the retry succeeds


def test_the_apps_call_for_an_unpaid_order_is_payment_not_verified(providers, apigw_event,
                                                                   lambda_context):
    signup(apigw_event, lambda_context)
    providers.pay("wechat_pay", "WX1", 50_000, topup_attach(MEMBER), state="NOTPAY")
    status, body, _ = app_top_up(apigw_event, lambda_context, "WX1")
    assert (status, body["code"]) == (422, "payment_not_verified")


# ---- refunds ----------------------------------------------------------------------------

def test_a_wechatpay_refund_notification_refunds_the_topup_once(providers, apigw_event,
                                                                lambda_context):
    signup(apigw_event, lambda_context)
    notify(lambda_context, WECHAT_PATH,
           *wechat_paid(providers, "WX1", 50_000, topup_attach(MEMBER)))
    keys = providers.wechatpay
    headers, body = keys.notification("REFUND.SUCCESS", keys.refund("WX1", 50_000, 20_000))
    for _ in range(2):
        assert notify(lambda_context, WECHAT_PATH, headers, body)[0] == 200
    # 20,000 of 50,000 principal back; the bonus in proportion, 2,000 of 5,000.
    assert balance() == (30_000, 3_000)


def test_a_refund_of_a_payment_never_credited_is_404_so_the_provider_retries(
        providers, lambda_context):
    keys = providers.wechatpay
    status, answer = notify(lambda_context, WECHAT_PATH, *keys.notification(
        "REFUND.SUCCESS", keys.refund("WX-NEVER", 50_000, 50_000)))
    assert (status, answer["code"]) == (404, "topup_not_found")


# ---- Alipay -----------------------------------------------------------------------------

def alipay_notify(providers, lambda_context, fields):
    return notify(lambda_context, ALIPAY_PATH,
                  {"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
                  providers.alipay.notification(fields))


def test_alipay_notification_credits_the_topup_and_answers_success(providers, apigw_event,
                                                                   lambda_context):
    signup(apigw_event, lambda_context)
    fields = providers.alipay.trade("AL1", 100_000, topup_attach(MEMBER))
    assert alipay_notify(providers, lambda_context, fields) == (200, "success")
    assert alipay_notify(providers, lambda_context, {**fields, "trade_status": "TRADE_FINISHED"}
                         ) == (200, "success")
    assert balance() == (100_000, 12_000)


def test_alipay_refund_totals_apply_once_in_any_order(providers, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    alipay_notify(providers, lambda_context,
                  providers.alipay.trade("AL1", 100_000, topup_attach(MEMBER)))

    def refund(total_yuan, out_biz_no):
        fields = providers.alipay.trade("AL1", 100_000, topup_attach(MEMBER))
        fields.update(refund_fee=total_yuan, out_biz_no=out_biz_no,
                      gmt_refund=fields["notify_time"])
        return alipay_notify(providers, lambda_context, fields)

    # Two refunds of 300 and 200 yuan; the second's notice (total 500) arrives first.
    assert refund("500.00", "RF2") == (200, "success")
    assert refund("300.00", "RF1") == (200, "success")
    assert refund("500.00", "RF2") == (200, "success")
    assert balance() == (50_000, 6_000)


def test_alipay_waiting_notification_is_acknowledged_and_credits_nothing(
        providers, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    fields = providers.alipay.trade("AL1", 100_000, topup_attach(MEMBER),
                                    status="WAIT_BUYER_PAY")
    assert alipay_notify(providers, lambda_context, fields) == (200, "success")
    assert balance() == (0, 0)


def test_a_tampered_alipay_notification_is_401_and_writes_nothing(
        providers, apigw_event, lambda_context, dynamodb_local, table):
    signup(apigw_event, lambda_context)
    body = providers.alipay.notification(
        providers.alipay.trade("AL1", 100, topup_attach(MEMBER)))
    fields = dict(parse_qsl(body))
    fields["total_amount"] = "1000.00"
    assert refused(dynamodb_local, table, lambda_context,
                   {"content-type": "application/x-www-form-urlencoded"}, urlencode(fields),
                   path=ALIPAY_PATH) == (401, "notification_signature_invalid")


def test_the_apps_alipay_call_is_credited_when_alipay_confirms_it(providers, apigw_event,
                                                                  lambda_context):
    signup(apigw_event, lambda_context)
    providers.pay("alipay", "AL1", 100_000, topup_attach(MEMBER))
    status, body, _ = app_top_up(apigw_event, lambda_context, "AL1", amount=100_000,
                                 channel="alipay")
    assert (status, body["principal"], body["bonus"]) == (201, 100_000, 12_000)



def test_a_form_body_is_taken_on_the_alipay_route_only(providers, lambda_context):
    body = providers.alipay.notification(
        providers.alipay.trade("AL1", 100, topup_attach(MEMBER)))
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert notify(lambda_context, WECHAT_PATH, form, body)[1]["code"] == (
        "unsupported_media_type")
    assert notify(lambda_context, ALIPAY_PATH, form, "%ff=1") == (400, {
        "code": "malformed_notification",
        "message": "the notification is not a form Alipay sends"})
