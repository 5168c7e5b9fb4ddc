"""Alipay (支付宝) on `python-alipay-sdk`: the trade query and the signed asynchronous
notifications of payments and refunds.

The SDK (and `pycryptodomex`) is imported when a verifier first needs it, without
pyOpenSSL (`_import_sdk`).
Keys come from the secret named by `ALIPAY_SECRET_NAME` (docs/payments.md), in public-key
mode (公钥模式): the app's private key signs the queries, Alipay's public key checks the
answers and the notifications (RSA2, SHA256withRSA).
"""
from __future__ import annotations

import sys
import threading
import types
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from membership.config import get_settings
from membership.domain.payments import (
    CURRENCY,
    MalformedNotification,
    Merchant,
    NotificationSignatureInvalid,
    PaymentMerchantMismatch,
    PaymentState,
    ProviderPayment,
    ProviderRefund,
    check_sent_in_window,
    yuan_to_fen,
)
from membership.errors import Unavailable
from membership.observability import logger
from membership.services import payment_secrets
from membership.services.payments import PaymentClaim, VerifiedPayment, verify_by_query

CHANNEL = "alipay"
SIGN_TYPE = "RSA2"
# Alipay writes its times on Beijing time.
ALIPAY_ZONE = ZoneInfo("Asia/Shanghai")
STATES = {
    "TRADE_SUCCESS": PaymentState.PAID,
    "TRADE_FINISHED": PaymentState.PAID,
    "WAIT_BUYER_PAY": PaymentState.NOT_PAID,
    "TRADE_CLOSED": PaymentState.CLOSED,
}
SUCCESS_CODE = "10000"
UNAVAILABLE_CODES = {"20000", "20001"}  # service unavailable, authorization missing
MAX_FORM_FIELDS = 100


class AlipayConfig(BaseModel):
    """The secret's JSON (docs/payments.md)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    app_id: str = Field(alias="appId", min_length=1)
    app_private_key: str = Field(alias="appPrivateKey", min_length=1)
    alipay_public_key: str = Field(alias="alipayPublicKey", min_length=1)
    # The merchant's partner id (2088…): when given, notifications must name it.
    seller_id: str | None = Field(default=None, alias="sellerId")

    @property
    def merchant(self) -> Merchant:
        return Merchant(merchant_id=self.seller_id, app_id=self.app_id)


@dataclass(frozen=True)
class Client:
    config: AlipayConfig
    sdk: object  # alipay.AliPay


_sdk_lock = threading.Lock()


class _CertificateModeUnavailable(types.ModuleType):
    def __getattr__(self, name: str):
        raise RuntimeError("Alipay's certificate mode needs pyOpenSSL, which is not shipped; "
                           "this deployment verifies in public-key mode (docs/payments.md)")


def _import_sdk() -> types.ModuleType:
    """python-alipay-sdk, imported without pyOpenSSL.

    The SDK imports pyOpenSSL at module level for its certificate mode (DCAliPay) alone;
    the public-key mode used here never calls it. It is not shipped (layers/Makefile):
    wherever pyOpenSSL is installed, botocore imports it through urllib3's TLS backend at
    every cold start (docs/cold-start.md). So where it is absent, a placeholder stands in
    for it while the SDK is imported, and says why if certificate mode is ever used.
    """
    loaded = sys.modules.get("alipay")
    if loaded is not None:
        return loaded
    with _sdk_lock:
        placeholder = None
        if "OpenSSL" not in sys.modules:
            try:
                import OpenSSL  # noqa: F401 - where it is installed, the SDK gets the real one
            except ImportError:
                placeholder = sys.modules["OpenSSL"] = _CertificateModeUnavailable("OpenSSL")
        try:
            import alipay
        finally:
            if placeholder is not None and sys.modules.get("OpenSSL") is placeholder:
                del sys.modules["OpenSSL"]
    return alipay


def _build(config: AlipayConfig) -> Client:
    _import_sdk()
    from alipay import AliPay
    from alipay.utils import AliPayConfig

    settings = get_settings()
    sdk = AliPay(appid=config.app_id, app_notify_url=None,
                 app_private_key_string=config.app_private_key,
                 alipay_public_key_string=config.alipay_public_key, sign_type=SIGN_TYPE,
                 config=AliPayConfig(timeout=settings.payment_provider_timeout_seconds))
    # The SDK picks production or sandbox only; a local stack points it at a fake provider.
    sdk._gateway = settings.alipay_endpoint
    return Client(config=config, sdk=sdk)


def client() -> Client:
    name = payment_secrets.configured(get_settings().alipay_secret_name, "Alipay")
    return payment_secrets.client_for(name, AlipayConfig, _build)


# ---- what Alipay says, as the domain's terms ----------------------------------------

def _fen(text: object, what: str) -> int:
    try:
        return yuan_to_fen(str(text))
    except ValueError:
        raise MalformedNotification(f"{what} is not an amount in yuan") from None


def _beijing(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ALIPAY_ZONE
                                                                      ).astimezone(UTC)
    except (TypeError, ValueError):
        raise MalformedNotification(f"{text!r} is not an Alipay time") from None


def _passback(value: str | None) -> str | None:
    # The app URL-encodes passback_params when it creates the payment; Alipay returns it
    # as it was given. A membership attach has no '%' of its own.
    return unquote(value) if value else None


def payment_of(data: dict, app_id: str | None) -> ProviderPayment:
    if not data.get("out_trade_no"):
        raise MalformedNotification("the trade lacks its order number (out_trade_no)")
    return ProviderPayment(
        channel=CHANNEL, reference=str(data["out_trade_no"]),
        transaction_id=data.get("trade_no"),
        state=STATES.get(str(data.get("trade_status")), PaymentState.NOT_PAID),
        amount=_fen(data.get("total_amount"), "total_amount"),
        currency=str(data.get("trans_currency") or CURRENCY),
        merchant_id=data.get("seller_id"), app_id=app_id,
        attach=_passback(data.get("passback_params")))


# ---- the trade query ----------------------------------------------------------------

def query(reference: str) -> ProviderPayment | None:
    """The trade by the merchant's order number; None when Alipay does not know it."""
    from urllib.error import HTTPError, URLError

    _import_sdk()
    from alipay.exceptions import AliPayException, AliPayValidationError

    ali = client()
    try:
        answer = ali.sdk.api_alipay_trade_query(out_trade_no=reference)
    except HTTPError as exc:
        logger.error("Alipay query answered an HTTP error", extra={"status": exc.code})
        raise Unavailable("Alipay is not answering; try again", providerStatus=exc.code
                          ) from None
    except (URLError, TimeoutError, ConnectionError) as exc:
        logger.warning("Alipay query failed", extra={"error": type(exc).__name__})
        raise Unavailable("Alipay could not be reached; try again") from None
    except AliPayValidationError:
        logger.error("Alipay's answer failed signature verification: check alipayPublicKey")
        raise Unavailable("Alipay's answer could not be verified; try again") from None
    except AliPayException as exc:
        # An unsigned error answer: a gateway or configuration problem, not a verdict.
        logger.error("Alipay query answered an error", extra={"error": str(exc)[:300]})
        raise Unavailable("Alipay answered an error; try again") from None
    except ValueError:
        raise Unavailable("Alipay answered something unreadable; try again") from None
    code = str(answer.get("code", ""))
    if code in UNAVAILABLE_CODES or answer.get("sub_code") == "ACQ.SYSTEM_ERROR":
        raise Unavailable("Alipay is busy; try again", providerCode=code)
    if code != SUCCESS_CODE:
        return None  # ACQ.TRADE_NOT_EXIST and other business failures
    try:
        return payment_of(answer, ali.config.app_id)
    except MalformedNotification:
        raise Unavailable("Alipay answered something unreadable; try again") from None


class AlipayVerifier:
    """A top-up's or a plan term's payment, confirmed by Alipay's trade query
    (docs/payments.md)."""

    def verify(self, claim: PaymentClaim) -> VerifiedPayment:
        # The query is signed with this app's key and answers for its trades only: the
        # seller is this merchant by construction, and Alipay does not repeat it.
        return verify_by_query(
            claim, channel=CHANNEL, provider="Alipay", query=query,
            merchant=lambda: Merchant(merchant_id=None, app_id=client().config.app_id))


# ---- notifications ------------------------------------------------------------------

@dataclass(frozen=True)
class Notification:
    trade_status: str
    payment: ProviderPayment | None = None
    refund: ProviderRefund | None = None


def parse_form(body: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=True,
                          max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise MalformedNotification("the notification is not a form Alipay sends") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        raise MalformedNotification("the notification repeats a field")
    return form


def read_notification(body: str, now: datetime | None = None) -> Notification:
    """Authenticate a notification (RSA2 signature over every field but sign and
    sign_type, this app and seller, notify_time within the window) and read it."""
    _import_sdk()
    from alipay.exceptions import AliPayException

    now = now or datetime.now(UTC)
    form = parse_form(body or "")
    signature = form.pop("sign", "")
    missing = [f for f in ("notify_time", "app_id", "out_trade_no") if not form.get(f)]
    if not signature or missing:
        raise MalformedNotification("the notification lacks Alipay's fields",
                                    missing=missing or ["sign"])
    if form.get("sign_type", SIGN_TYPE) != SIGN_TYPE:
        raise NotificationSignatureInvalid("only RSA2 signatures are accepted")
    if form.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        raise MalformedNotification("notifications must be sent in UTF-8")
    ali = client()
    try:
        valid = ali.sdk.verify(dict(form), signature)
    except (AliPayException, ValueError, TypeError, IndexError):
        valid = False
    if not valid:
        raise NotificationSignatureInvalid("the notification's signature does not match")
    check_sent_in_window(_beijing(form["notify_time"]), now,
                         get_settings().payment_notification_window_seconds)
    merchant = ali.config.merchant
    if form["app_id"] != merchant.app_id or (
            merchant.merchant_id is not None and form.get("seller_id") != merchant.merchant_id):
        raise PaymentMerchantMismatch("the notification is for another app or merchant",
                                      paymentReference=form["out_trade_no"])
    status = form.get("trade_status", "")
    refunded = _fen(form["refund_fee"], "refund_fee") if form.get("refund_fee") else 0
    if refunded > 0:
        if not form.get("out_biz_no"):
            raise MalformedNotification("a refund notification lacks out_biz_no")
        return Notification(status, refund=ProviderRefund(
            channel=CHANNEL, payment_reference=form["out_trade_no"],
            refund_reference=form["out_biz_no"], refunded_total=refunded))
    payment = payment_of(form, form["app_id"])
    return Notification(status, payment=payment)

