"""WeChat Pay and Alipay through their SDKs, against notifications and query answers signed
with generated keys as the providers sign them (membership_local.fakepay); secrets from
moto's Secrets Manager."""
import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import boto3
import pytest

from membership.domain.members import member_id_for
from membership.domain.payments import (
    MalformedNotification,
    NotificationExpired,
    NotificationSignatureInvalid,
    PaymentMerchantMismatch,
    PaymentState,
    PlanTerm,
    plan_attach,
    topup_attach,
)
from membership.domain.topups import PaymentNotVerified, PaymentProviderNotConfigured
from membership.errors import Unavailable
from membership.services.payments import PaymentClaim, PlanClaim, VerifiedPayment
from membership_local.fakepay import (
    WECHATPAY_SECRET,
    AlipayKeys,
    WechatPayKeys,
    alipay_sign_string,
    rsa_sign,
    rsa_verify,
)

MEMBER = member_id_for("user-a")


@pytest.fixture
def wx(fake_providers):
    from membership.services import wechatpay

    return wechatpay


@pytest.fixture
def ali(fake_providers):
    from membership.services import alipay

    return alipay


def wechat_claim(reference="WX1", amount=10_000, member=MEMBER):
    return PaymentClaim(member_id=member, reference=reference, amount=amount,
                        channel="wechat_pay")


def alipay_claim(reference="AL1", amount=10_000, member=MEMBER):
    return PaymentClaim(member_id=member, reference=reference, amount=amount, channel="alipay")


# ---- vectors: the signatures and the AEAD the providers use ----------------------------

def test_a_sha256_with_rsa_signature_verifies_only_its_own_message(provider_keys):
    keys, _ = provider_keys
    signature = rsa_sign(keys.platform_key, "1700000000\nnonce\n{}\n")
    assert rsa_verify(keys.platform_key.public_key(), "1700000000\nnonce\n{}\n", signature)
    assert not rsa_verify(keys.platform_key.public_key(), "1700000000\nnonce\n{ }\n", signature)
    assert not rsa_verify(keys.merchant_key.public_key(), "1700000000\nnonce\n{}\n", signature)


def test_the_sdk_decrypts_a_resource_sealed_with_the_apiv3_key(provider_keys):
    from wechatpayv3.utils import aes_decrypt

    keys, _ = provider_keys
    resource = keys.encrypt({"out_trade_no": "WX1", "amount": {"total": 1}})
    plain = aes_decrypt(nonce=resource["nonce"], ciphertext=resource["ciphertext"],
                        associated_data=resource["associated_data"], apiv3_key=keys.api_v3_key)
    assert json.loads(plain) == {"out_trade_no": "WX1", "amount": {"total": 1}}
    assert aes_decrypt(nonce=resource["nonce"], ciphertext=resource["ciphertext"],
                       associated_data="refund", apiv3_key=keys.api_v3_key) is None


def test_the_sdk_verifies_alipays_signature_over_sorted_fields_without_sign_type(provider_keys):
    from membership.services.alipay import _import_sdk

    AliPay = _import_sdk().AliPay
    _, keys = provider_keys
    sdk = AliPay(appid=keys.app_id, app_private_key_string=keys.secret()["appPrivateKey"],
                 alipay_public_key_string=keys.secret()["alipayPublicKey"])
    fields = keys.sign_fields({"b": "2", "a": "1", "sign_type": "RSA2"})
    signature = fields.pop("sign")
    assert alipay_sign_string(fields, exclude_sign_type=True) == "a=1&b=2"
    assert sdk.verify(dict(fields), signature)
    assert not sdk.verify({**fields, "a": "9"}, signature)


# ---- WeChat Pay notifications -----------------------------------------------------------

def test_wechatpay_notification_is_verified_and_decrypted(wx, provider_keys):
    keys, _ = provider_keys
    tx = keys.transaction("WX1", 10_000, topup_attach(MEMBER))
    headers, body = keys.notification("TRANSACTION.SUCCESS", tx)
    notification = wx.read_notification(headers, body)
    assert notification.event_type == "TRANSACTION.SUCCESS"
    payment = notification.payment
    assert (payment.reference, payment.amount, payment.currency, payment.state) == (
        "WX1", 10_000, "CNY", PaymentState.PAID)
    assert (payment.merchant_id, payment.app_id, payment.attach) == (
        keys.mchid, keys.appid, topup_attach(MEMBER))


def test_wechatpay_notification_with_a_tampered_body_is_refused(wx, provider_keys):
    keys, _ = provider_keys
    headers, body = keys.notification("TRANSACTION.SUCCESS",
                                      keys.transaction("WX1", 10_000, topup_attach(MEMBER)))
    tampered = body.replace('"TRANSACTION.SUCCESS"', '"TRANSACTION.SUCCESS" ')
    with pytest.raises(NotificationSignatureInvalid):
        wx.read_notification(headers, tampered)


def test_wechatpay_notification_with_a_stale_timestamp_is_refused(wx, provider_keys):
    keys, _ = provider_keys
    headers, body = keys.notification(
        "TRANSACTION.SUCCESS", keys.transaction("WX1", 10_000, topup_attach(MEMBER)),
        timestamp=int(time.time()) - 301)
    with pytest.raises(NotificationExpired):
        wx.read_notification(headers, body)


def test_wechatpay_notification_signed_by_another_key_is_refused(wx, provider_keys):
    keys, _ = provider_keys
    impostor = WechatPayKeys(api_v3_key=keys.api_v3_key, platform_key_id=keys.platform_key_id)
    headers, body = impostor.notification(
        "TRANSACTION.SUCCESS", impostor.transaction("WX1", 10_000, topup_attach(MEMBER)))
    with pytest.raises(NotificationSignatureInvalid):
        wx.read_notification(headers, body)


def test_wechatpay_notification_naming_an_unknown_key_is_refused(wx, provider_keys):
    keys, _ = provider_keys
    headers, body = keys.notification("TRANSACTION.SUCCESS",
                                      keys.transaction("WX1", 10_000, topup_attach(MEMBER)))
    with pytest.raises(NotificationSignatureInvalid, match="unknown key"):
        wx.read_notification({**headers, "Wechatpay-Serial": "PUB_KEY_ID_OTHER"}, body)


def test_wechatpay_notification_sealed_with_another_apiv3_key_is_malformed(wx, provider_keys):
    keys, _ = provider_keys
    other = WechatPayKeys(platform_key=keys.platform_key, platform_key_id=keys.platform_key_id)
    headers, body = other.notification("TRANSACTION.SUCCESS",
                                       other.transaction("WX1", 10_000, topup_attach(MEMBER)))
    with pytest.raises(MalformedNotification, match="decrypted"):
        wx.read_notification(headers, body)


@pytest.mark.parametrize("header", ["Wechatpay-Signature", "Wechatpay-Timestamp",
                                    "Wechatpay-Nonce", "Wechatpay-Serial"])
def test_wechatpay_notification_without_a_signature_header_is_malformed(wx, provider_keys,
                                                                        header):
    keys, _ = provider_keys
    headers, body = keys.notification("TRANSACTION.SUCCESS",
                                      keys.transaction("WX1", 10_000, topup_attach(MEMBER)))
    del headers[header]
    with pytest.raises(MalformedNotification):
        wx.read_notification(headers, body)


def test_wechatpay_refund_notification_reads_the_refunds_amount(wx, provider_keys):
    keys, _ = provider_keys
    resource = keys.refund("WX1", total=10_000, refund=3_000)
    headers, body = keys.notification("REFUND.SUCCESS", resource)
    refund = wx.read_notification(headers, body).refund
    assert (refund.payment_reference, refund.refund_reference, refund.amount) == (
        "WX1", resource["refund_id"], 3_000)


def test_wechatpay_refund_by_another_merchant_is_refused(wx, provider_keys):
    keys, _ = provider_keys
    resource = {**keys.refund("WX1", total=10_000, refund=3_000), "mchid": "1900000999"}
    headers, body = keys.notification("REFUND.SUCCESS", resource)
    with pytest.raises(PaymentMerchantMismatch):
        wx.read_notification(headers, body)


def test_wechatpay_notification_of_another_event_carries_nothing_to_apply(wx, provider_keys):
    keys, _ = provider_keys
    headers, body = keys.notification("REFUND.ABNORMAL", keys.refund("WX1", 10_000, 3_000))
    notification = wx.read_notification(headers, body)
    assert (notification.payment, notification.refund) == (None, None)


# ---- WeChat Pay order query -------------------------------------------------------------

def test_wechatpay_verifier_confirms_a_paid_topup_of_this_member(wx, fake_providers):
    fake_providers.pay("wechat_pay", "WX1", 10_000, topup_attach(MEMBER))
    assert wx.WechatPayVerifier().verify(wechat_claim()) == VerifiedPayment(
        reference="WX1", amount=10_000, channel="wechat_pay")


def test_wechatpay_verifier_reports_the_captured_amount_for_the_service_to_compare(
        wx, fake_providers):
    fake_providers.pay("wechat_pay", "WX1", 9_999, topup_attach(MEMBER))
    assert wx.WechatPayVerifier().verify(wechat_claim(amount=10_000)).amount == 9_999


def test_wechatpay_verifier_refuses_an_unknown_reference(wx, fake_providers):
    with pytest.raises(PaymentNotVerified, match="knows no payment"):
        wx.WechatPayVerifier().verify(wechat_claim("WX-UNKNOWN"))


@pytest.mark.parametrize("state", ["NOTPAY", "CLOSED", "REFUND", "PAYERROR", "USERPAYING"])
def test_wechatpay_verifier_refuses_an_unpaid_closed_or_refunded_order(wx, fake_providers,
                                                                       state):
    fake_providers.pay("wechat_pay", "WX1", 10_000, topup_attach(MEMBER), state=state)
    with pytest.raises(PaymentNotVerified):
        wx.WechatPayVerifier().verify(wechat_claim())


def test_wechatpay_verifier_refuses_another_merchants_order(wx, fake_providers):
    order = fake_providers.pay("wechat_pay", "WX1", 10_000, topup_attach(MEMBER))
    order.mchid = "1900000999"
    with pytest.raises(PaymentMerchantMismatch):
        wx.WechatPayVerifier().verify(wechat_claim())


def test_wechatpay_verifier_refuses_a_payment_for_another_member(wx, fake_providers):
    fake_providers.pay("wechat_pay", "WX1", 10_000, topup_attach(member_id_for("user-b")))
    with pytest.raises(PaymentNotVerified, match="another member"):
        wx.WechatPayVerifier().verify(wechat_claim())


def test_wechatpay_verifier_refuses_a_plan_payment_as_a_topup(wx, fake_providers):
    fake_providers.pay("wechat_pay", "WX1", 1_900, plan_attach(MEMBER, "PLUS", "monthly", 1))
    with pytest.raises(PaymentNotVerified, match="plan"):
        wx.WechatPayVerifier().verify(wechat_claim(amount=1_900))


@pytest.mark.parametrize("fault", ["timeout", 500, 502, 429])
def test_wechatpay_verifier_maps_timeouts_and_server_errors_to_unavailable(wx, fake_providers,
                                                                           fault):
    fake_providers.pay("wechat_pay", "WX1", 10_000, topup_attach(MEMBER))
    fake_providers.faults["wechat_pay"] = fault
    with pytest.raises(Unavailable):
        wx.WechatPayVerifier().verify(wechat_claim())


def test_wechatpay_verifier_refuses_a_query_answer_it_cannot_verify(wx, fake_providers,
                                                                    provider_keys):
    keys, _ = provider_keys
    fake_providers.pay("wechat_pay", "WX1", 10_000, topup_attach(MEMBER))
    genuine = fake_providers.wechatpay
    fake_providers.wechatpay = WechatPayKeys(
        mchid=keys.mchid, appid=keys.appid, merchant_key=keys.merchant_key,
        merchant_serial=keys.merchant_serial, platform_key_id=keys.platform_key_id)
    try:
        with pytest.raises(Unavailable, match="verified"):
            wx.WechatPayVerifier().verify(wechat_claim())
    finally:
        fake_providers.wechatpay = genuine


# ---- Alipay notifications ---------------------------------------------------------------

def test_alipay_notification_is_verified_and_read(ali, provider_keys):
    _, keys = provider_keys
    body = keys.notification(keys.trade("AL1", 8_888, topup_attach(MEMBER)))
    payment = ali.read_notification(body).payment
    assert (payment.reference, payment.amount, payment.state, payment.attach) == (
        "AL1", 8_888, PaymentState.PAID, topup_attach(MEMBER))


def test_alipay_notification_with_a_tampered_field_is_refused(ali, provider_keys):
    _, keys = provider_keys
    fields = dict(parse_qsl(keys.notification(keys.trade("AL1", 100, topup_attach(MEMBER)))))
    fields["total_amount"] = "100.00"
    with pytest.raises(NotificationSignatureInvalid):
        ali.read_notification(urlencode(fields))


def test_alipay_notification_with_a_stale_notify_time_is_refused(ali, provider_keys):
    _, keys = provider_keys
    sent = datetime.now(UTC) - timedelta(minutes=6)
    body = keys.notification(keys.trade("AL1", 100, topup_attach(MEMBER), notify_time=sent))
    with pytest.raises(NotificationExpired):
        ali.read_notification(body)


def test_alipay_notification_for_another_app_is_refused(ali, provider_keys):
    _, keys = provider_keys
    body = keys.notification(keys.trade("AL1", 100, topup_attach(MEMBER), app_id="2021999"))
    with pytest.raises(PaymentMerchantMismatch):
        ali.read_notification(body)


def test_alipay_notification_signed_by_another_key_is_refused(ali, provider_keys):
    _, keys = provider_keys
    impostor = AlipayKeys(app_id=keys.app_id, seller_id=keys.seller_id)
    with pytest.raises(NotificationSignatureInvalid):
        ali.read_notification(impostor.notification(impostor.trade("AL1", 100, None)))


@pytest.mark.parametrize("body", ["", "not a form", "a=1&a=2", "sign=x&app_id=1"])
def test_alipay_notification_that_is_not_alipays_form_is_malformed(ali, body):
    with pytest.raises(MalformedNotification):
        ali.read_notification(body)


def test_alipay_refund_notification_reads_the_refunded_total(ali, provider_keys):
    _, keys = provider_keys
    fields = keys.trade("AL1", 10_000, topup_attach(MEMBER))
    fields.update(refund_fee="30.00", out_biz_no="RF1", gmt_refund=fields["notify_time"])
    refund = ali.read_notification(keys.notification(fields)).refund
    assert (refund.payment_reference, refund.refund_reference, refund.refunded_total,
            refund.amount) == ("AL1", "RF1", 3_000, None)


def test_alipay_wait_buyer_pay_notification_is_not_a_payment(ali, provider_keys):
    _, keys = provider_keys
    body = keys.notification(keys.trade("AL1", 100, topup_attach(MEMBER),
                                        status="WAIT_BUYER_PAY"))
    assert ali.read_notification(body).payment.state is PaymentState.NOT_PAID


# ---- Alipay trade query -----------------------------------------------------------------

def test_alipay_verifier_confirms_a_paid_topup_of_this_member(ali, fake_providers):
    fake_providers.pay("alipay", "AL1", 10_000, topup_attach(MEMBER))
    assert ali.AlipayVerifier().verify(alipay_claim()) == VerifiedPayment(
        reference="AL1", amount=10_000, channel="alipay")


def test_alipay_verifier_refuses_an_unknown_reference(ali, fake_providers):
    with pytest.raises(PaymentNotVerified, match="knows no payment"):
        ali.AlipayVerifier().verify(alipay_claim("AL-UNKNOWN"))


@pytest.mark.parametrize("status", ["WAIT_BUYER_PAY", "TRADE_CLOSED"])
def test_alipay_verifier_refuses_an_unpaid_or_closed_trade(ali, fake_providers, status):
    fake_providers.pay("alipay", "AL1", 10_000, topup_attach(MEMBER), state=status)
    with pytest.raises(PaymentNotVerified):
        ali.AlipayVerifier().verify(alipay_claim())


def test_alipay_verifier_refuses_a_payment_for_another_member(ali, fake_providers):
    fake_providers.pay("alipay", "AL1", 10_000, topup_attach(member_id_for("user-b")))
    with pytest.raises(PaymentNotVerified, match="another member"):
        ali.AlipayVerifier().verify(alipay_claim())


@pytest.mark.parametrize("fault", ["timeout", 500, 503])
def test_alipay_verifier_maps_timeouts_and_server_errors_to_unavailable(ali, fake_providers,
                                                                        fault):
    fake_providers.pay("alipay", "AL1", 10_000, topup_attach(MEMBER))
    fake_providers.faults["alipay"] = fault
    with pytest.raises(Unavailable):
        ali.AlipayVerifier().verify(alipay_claim())


# ---- a plan term's payment, by either provider's query ----------------------------------

PLUS_MONTH = PlanClaim("PLUS", "monthly")


def plan_claim(channel, reference, *, member=MEMBER, plan=PLUS_MONTH, price=1_900):
    return PaymentClaim(member_id=member, reference=reference, amount=price, channel=channel,
                        plan=plan)


@pytest.fixture(params=["wechat_pay", "alipay"])
def provider(request, fake_providers):
    """(channel, reference, its verifier) of each provider."""
    from membership.services.alipay import AlipayVerifier
    from membership.services.wechatpay import WechatPayVerifier

    channel = request.param
    return (channel, "WX1" if channel == "wechat_pay" else "AL1",
            (WechatPayVerifier if channel == "wechat_pay" else AlipayVerifier)())


def test_a_plan_payment_is_verified_with_the_term_its_attach_names(provider, fake_providers):
    channel, reference, verifier = provider
    fake_providers.pay(channel, reference, 1_900, plan_attach(MEMBER, "PLUS", "monthly", 4))
    assert verifier.verify(plan_claim(channel, reference)) == VerifiedPayment(
        reference=reference, amount=1_900, channel=channel, plan_term=PlanTerm("monthly", 4))


@pytest.mark.parametrize(("amount", "attach", "claim"), [
    (1_800, plan_attach(MEMBER, "PLUS", "monthly", 1), {}),  # not the price
    (4_900, plan_attach(MEMBER, "PLUS", "quarterly", 1), {}),  # another kind of term
    (1_900, plan_attach(MEMBER, "GOLD", "monthly", 1), {}),  # another plan
    (1_900, plan_attach(member_id_for("user-b"), "PLUS", "monthly", 1), {}),  # another member
    (1_900, topup_attach(MEMBER), {}),  # a top-up's payment
    (1_900, None, {}),  # no attach
    (1_900, plan_attach(MEMBER, "PLUS", "monthly", 1), {"member": member_id_for("user-b")}),
])
def test_any_other_payment_does_not_verify_a_plan_purchase(provider, fake_providers, amount,
                                                           attach, claim):
    channel, reference, verifier = provider
    fake_providers.pay(channel, reference, amount, attach)
    with pytest.raises(PaymentNotVerified) as refused:
        verifier.verify(plan_claim(channel, reference, **claim))
    assert refused.value.code == "payment_not_verified"


def test_an_unpaid_or_unknown_plan_payment_is_not_verified(provider, fake_providers):
    channel, reference, verifier = provider
    with pytest.raises(PaymentNotVerified, match="knows no payment"):
        verifier.verify(plan_claim(channel, reference))
    fake_providers.pay(channel, reference, 1_900, plan_attach(MEMBER, "PLUS", "monthly", 1),
                       state="NOTPAY" if channel == "wechat_pay" else "WAIT_BUYER_PAY")
    with pytest.raises(PaymentNotVerified, match="not paid"):
        verifier.verify(plan_claim(channel, reference))


@pytest.mark.parametrize("fault", ["timeout", 502])
def test_a_plan_payments_query_that_times_out_is_unavailable(provider, fake_providers, fault):
    channel, reference, verifier = provider
    fake_providers.pay(channel, reference, 1_900, plan_attach(MEMBER, "PLUS", "monthly", 1))
    fake_providers.faults[channel] = fault
    with pytest.raises(Unavailable):
        verifier.verify(plan_claim(channel, reference))


def test_a_top_up_claim_refuses_a_plan_payment(provider, fake_providers):
    channel, reference, verifier = provider
    fake_providers.pay(channel, reference, 1_900, plan_attach(MEMBER, "PLUS", "monthly", 1))
    with pytest.raises(PaymentNotVerified, match="plan"):
        verifier.verify(PaymentClaim(MEMBER, reference, 1_900, channel))


# ---- configuration ----------------------------------------------------------------------

def test_a_provider_without_a_secret_name_is_not_configured(wx, monkeypatch):
    from membership import config

    monkeypatch.setenv("WECHATPAY_SECRET_NAME", "")
    config.get_settings.cache_clear()
    with pytest.raises(PaymentProviderNotConfigured):
        wx.WechatPayVerifier().verify(wechat_claim())


def test_a_secret_that_cannot_be_read_makes_the_provider_unavailable(wx, monkeypatch):
    from membership import config

    monkeypatch.setenv("WECHATPAY_SECRET_NAME", "no-such-secret")
    config.get_settings.cache_clear()
    with pytest.raises(Unavailable):
        wx.WechatPayVerifier().verify(wechat_claim())


def test_a_secret_missing_fields_makes_the_provider_unavailable(wx, monkeypatch):
    from membership import config

    boto3.client("secretsmanager").create_secret(Name="partial", SecretString='{"mchid": "1"}')
    monkeypatch.setenv("WECHATPAY_SECRET_NAME", "partial")
    config.get_settings.cache_clear()
    with pytest.raises(Unavailable, match="incomplete"):
        wx.WechatPayVerifier().verify(wechat_claim())


def test_a_rotated_secret_takes_effect_once_the_cache_expires(wx, fake_providers, monkeypatch):
    from membership import config
    from membership.services import payment_secrets

    monkeypatch.setenv("PAYMENT_SECRET_CACHE_SECONDS", "0")
    config.get_settings.cache_clear()
    payment_secrets.reset()
    fake_providers.pay("wechat_pay", "WX1", 10_000, topup_attach(MEMBER))
    assert wx.WechatPayVerifier().verify(wechat_claim()).amount == 10_000
    rotated = {**fake_providers.wechatpay.secret(), "appid": "wx-rotated"}
    boto3.client("secretsmanager").put_secret_value(SecretId=WECHATPAY_SECRET,
                                                    SecretString=json.dumps(rotated))
    with pytest.raises(PaymentMerchantMismatch):  # the order was paid to the app before
        wx.WechatPayVerifier().verify(wechat_claim())


def test_the_provider_verifier_sends_each_channel_to_its_provider(fake_providers):
    from membership.services.payment_providers import ProviderVerifier

    fake_providers.pay("wechat_pay", "WX1", 10_000, topup_attach(MEMBER))
    fake_providers.pay("alipay", "AL1", 20_000, topup_attach(MEMBER))
    verifier = ProviderVerifier()
    assert verifier.verify(wechat_claim()).amount == 10_000
    assert verifier.verify(alipay_claim(amount=20_000)).amount == 20_000
    with pytest.raises(PaymentNotVerified):
        verifier.verify(PaymentClaim(MEMBER, "X1", 100, "unionpay"))
