"""WeChat Pay (微信支付, API v3) on the `wechatpayv3` SDK: the order query and the signed
payment and refund notifications.

The SDK (and `requests`, `cryptography`) is imported when a verifier first needs it, so
other functions never load it. Keys come from the secret named by `WECHATPAY_SECRET_NAME`
(docs/payments.md); WeChat Pay's responses and notifications are checked against the
WeChat Pay public key (微信支付公钥) mode: the `Wechatpay-Serial` of everything the SDK
accepts is that key's id.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from membership.config import get_settings
from membership.domain import calendar
from membership.domain.payments import (
    MalformedNotification,
    Merchant,
    NotificationSignatureInvalid,
    PaymentMerchantMismatch,
    PaymentState,
    ProviderPayment,
    ProviderRefund,
    check_sent_in_window,
)
from membership.errors import Unavailable
from membership.observability import logger
from membership.services import payment_secrets
from membership.services.payments import PaymentClaim, VerifiedPayment, verify_by_query

CHANNEL = "wechat_pay"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
NOTIFICATION_HEADERS = ("wechatpay-serial", "wechatpay-signature", "wechatpay-timestamp",
                        "wechatpay-nonce")
STATES = {
    "SUCCESS": PaymentState.PAID,
    "REFUND": PaymentState.REFUNDED,
    "CLOSED": PaymentState.CLOSED,
    "REVOKED": PaymentState.CLOSED,
    "NOTPAY": PaymentState.NOT_PAID,
    "USERPAYING": PaymentState.NOT_PAID,
    "PAYERROR": PaymentState.NOT_PAID,
}
PAYMENT_EVENT = "TRANSACTION.SUCCESS"
REFUND_EVENT = "REFUND.SUCCESS"


class WechatPayConfig(BaseModel):
    """The secret's JSON (docs/payments.md)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mchid: str = Field(min_length=1)
    appid: str = Field(min_length=1)
    api_v3_key: str = Field(alias="apiV3Key", min_length=32, max_length=32)
    merchant_private_key: str = Field(alias="merchantPrivateKey", min_length=1)
    merchant_cert_serial_no: str = Field(alias="merchantCertSerialNo", min_length=1)
    platform_public_key: str = Field(alias="platformPublicKey", min_length=1)
    platform_public_key_id: str = Field(alias="platformPublicKeyId", min_length=1)

    @property
    def merchant(self) -> Merchant:
        return Merchant(merchant_id=self.mchid, app_id=self.appid)


@dataclass(frozen=True)
class Client:
    config: WechatPayConfig
    sdk: object  # wechatpayv3.WeChatPay


def _build(config: WechatPayConfig) -> Client:
    from wechatpayv3 import WeChatPay, WeChatPayType

    settings = get_settings()
    sdk = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,  # only queried here: the type is not used
        mchid=config.mchid, private_key=config.merchant_private_key,
        cert_serial_no=config.merchant_cert_serial_no, appid=config.appid,
        apiv3_key=config.api_v3_key, public_key=config.platform_public_key,
        public_key_id=config.platform_public_key_id,
        timeout=(settings.payment_provider_timeout_seconds,
                 settings.payment_provider_timeout_seconds))
    # The SDK has no setting for its gateway; a local stack points it at a fake provider.
    sdk._core._gate_way = settings.wechatpay_endpoint.rstrip("/")
    return Client(config=config, sdk=sdk)


def client() -> Client:
    name = payment_secrets.configured(get_settings().wechatpay_secret_name, "WeChat Pay")
    return payment_secrets.client_for(name, WechatPayConfig, _build)


# ---- what WeChat Pay says, as the domain's terms ------------------------------------

def _time(text: str | None) -> datetime | None:
    return calendar.utc(datetime.fromisoformat(text)) if text else None


def payment_of(data: dict) -> ProviderPayment:
    """A transaction (query answer or decrypted notification resource)."""
    try:
        amount = data.get("amount") or {}
        total = amount.get("total")
        if not isinstance(total, int) or isinstance(total, bool):
            total = 0
        return ProviderPayment(
            channel=CHANNEL, reference=str(data["out_trade_no"]),
            transaction_id=data.get("transaction_id"),
            state=STATES.get(str(data.get("trade_state")), PaymentState.NOT_PAID),
            amount=total, currency=str(amount.get("currency", "")),
            merchant_id=data.get("mchid"), app_id=data.get("appid"),
            attach=data.get("attach") or None, paid_at=_time(data.get("success_time")))
    except (KeyError, TypeError, AttributeError, ValueError):
        raise MalformedNotification("the transaction lacks its order number or is malformed"
                                    ) from None


def refund_of(data: dict, merchant: Merchant) -> ProviderRefund:
    try:
        if data.get("mchid") != merchant.merchant_id:
            raise PaymentMerchantMismatch("the refund was made by another merchant account")
        refund = (data.get("amount") or {})["refund"]
        if not isinstance(refund, int) or isinstance(refund, bool) or refund <= 0:
            raise MalformedNotification("the refund's amount is not a positive integer")
        return ProviderRefund(channel=CHANNEL, payment_reference=str(data["out_trade_no"]),
                              refund_reference=str(data["refund_id"]), amount=refund)
    except (KeyError, TypeError, AttributeError):
        raise MalformedNotification("the refund lacks its order number, refund id or amount"
                                    ) from None


# ---- the order query ----------------------------------------------------------------

def query(reference: str) -> ProviderPayment | None:
    """The order by the merchant's order number; None when WeChat Pay does not know it."""
    import requests

    sdk = client().sdk
    try:
        status, text = sdk.query(out_trade_no=reference)
    except requests.RequestException as exc:
        logger.warning("WeChat Pay query failed", extra={"error": type(exc).__name__})
        raise Unavailable("WeChat Pay could not be reached; try again") from None
    except Exception as exc:  # noqa: BLE001 - the SDK raises Exception for a bad signature
        logger.error("WeChat Pay answered with a response that failed verification",
                     extra={"error": str(exc)})
        raise Unavailable("WeChat Pay's answer could not be verified; try again") from None
    if status == 404 or status == 400:
        return None
    if not 200 <= status < 300:
        # 5xx and 429: try again; 401/403: this deployment's keys are wrong, and the
        # payment may well be good, so it is not refused either.
        logger.error("WeChat Pay query answered an error", extra={"status": status})
        raise Unavailable("WeChat Pay is not answering; try again", providerStatus=status)
    try:
        return payment_of(json.loads(text))
    except (ValueError, MalformedNotification):
        raise Unavailable("WeChat Pay answered something unreadable; try again") from None


class WechatPayVerifier:
    """A top-up's or a plan term's payment, confirmed by WeChat Pay's order query
    (docs/payments.md)."""

    def verify(self, claim: PaymentClaim) -> VerifiedPayment:
        return verify_by_query(claim, channel=CHANNEL, provider="WeChat Pay", query=query,
                               merchant=lambda: client().config.merchant)


# ---- notifications ------------------------------------------------------------------

@dataclass(frozen=True)
class Notification:
    event_type: str
    payment: ProviderPayment | None = None
    refund: ProviderRefund | None = None


def read_notification(headers: dict[str, str], body: str,
                      now: datetime | None = None) -> Notification:
    """Authenticate a notification (signature, key id, time window) and decrypt its
    resource (AEAD_AES_256_GCM with the APIv3 key). Raises before anything is trusted."""
    now = now or datetime.now(UTC)
    headers = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in NOTIFICATION_HEADERS if not headers.get(h)]
    if missing:
        raise MalformedNotification("the notification lacks WeChat Pay's signature headers",
                                    missing=missing)
    if not body:
        raise MalformedNotification("the notification has no body")
    wx = client()
    if headers["wechatpay-serial"] != wx.config.platform_public_key_id:
        # Checked here: the SDK would go and download platform certificates for it.
        raise NotificationSignatureInvalid("the notification is signed by an unknown key",
                                           serial=headers["wechatpay-serial"][:64])
    headers.setdefault("wechatpay-signature-type", SIGNATURE_TYPE)
    if headers["wechatpay-signature-type"] != SIGNATURE_TYPE:
        raise NotificationSignatureInvalid("unsupported signature type")
    try:
        sent_at = datetime.fromtimestamp(int(headers["wechatpay-timestamp"]), UTC)
    except (ValueError, OverflowError, OSError):
        raise MalformedNotification("Wechatpay-Timestamp is not a Unix time") from None
    result = _callback(wx, headers, body)
    check_sent_in_window(sent_at, now, get_settings().payment_notification_window_seconds)
    event_type = str(result.get("event_type", ""))
    resource = result.get("resource")
    if not isinstance(resource, dict):
        raise MalformedNotification("the notification's resource is not an object")
    if event_type == PAYMENT_EVENT:
        return Notification(event_type, payment=payment_of(resource))
    if event_type == REFUND_EVENT:
        return Notification(event_type, refund=refund_of(resource, wx.config.merchant))
    return Notification(event_type)


def _callback(wx: Client, headers: dict[str, str], body: str) -> dict:
    from wechatpayv3.utils import rsa_verify

    try:
        result = wx.sdk.callback(headers, body)
    except Exception:  # noqa: BLE001 - the SDK raises Exception for unknown algorithms
        raise MalformedNotification("the notification's signature or resource uses an "
                                    "algorithm WeChat Pay does not send") from None
    if result:
        return result
    # The SDK answers None for a bad signature and for a resource it cannot decrypt.
    if not rsa_verify(headers["wechatpay-timestamp"], headers["wechatpay-nonce"], body,
                      headers["wechatpay-signature"], wx.sdk._core._public_key):
        raise NotificationSignatureInvalid(
            "the notification's signature does not match its body")
    logger.error("a signed WeChat Pay notification could not be decrypted: check apiV3Key")
    raise MalformedNotification("the notification's resource could not be decrypted")
