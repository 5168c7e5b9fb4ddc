"""Payments a provider confirmed, as pure rules: what a payment is for, whose, and how much.

The app creates every payment at the provider with an *attach* (WeChat Pay `attach`,
Alipay `passback_params`) that says what it pays for and for which member:

    membership:v1:topup:<memberId>                    a stored-value top-up
    membership:v1:plan:<memberId>:<planId>:<term>     one term of a paid plan

A plan's `<term>` is `<kind>-<n>`: the kind bought (monthly, quarterly, yearly) and the
number the new term gets in the member's run of that plan (terms count from 1, a trial
included: the `cycle` of `subscription.charged`). A payment so names exactly one term: it
buys term n or nothing, so two payments made for the same next term buy one term, and a
payment made before another term landed is refused rather than stacked on it.

The provider returns the attach unchanged in its query answer and in its signed
notification, so a notification names its member without a JWT, and a reference cannot
be claimed by a member who merely learned it. No I/O here: providers' answers arrive as
`ProviderPayment` / `ProviderRefund`, already authenticated by the services.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from membership.domain.topups import MAX_FEN, PaymentNotVerified
from membership.errors import DomainError, InvalidRequest, Unauthenticated

ATTACH_PREFIX = "membership:v1"
CURRENCY = "CNY"
# WeChat Pay's attach holds at most 128 characters, Alipay's passback_params 512.
MAX_ATTACH = 128
_MEMBER_ID = re.compile(r"^M[a-z2-7]{24}$")
_PART = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_YUAN = re.compile(r"^[0-9]{1,8}(\.[0-9]{1,2})?$")
_PLAN_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_PLAN_TERM = re.compile(r"^(monthly|quarterly|yearly)-([1-9][0-9]{0,3})$")


# ---- errors -------------------------------------------------------------------------

class MalformedNotification(DomainError):
    """400: not a notification this provider sends (syntax, missing fields or headers)."""

    code = "malformed_notification"


class NotificationSignatureInvalid(Unauthenticated):
    code = "notification_signature_invalid"


class NotificationExpired(Unauthenticated):
    """Signed, but sent outside the accepted window: a replay, or a clock far off."""

    code = "notification_expired"


class PaymentMerchantMismatch(InvalidRequest):
    """A genuine payment, made to another merchant account or app."""

    code = "payment_merchant_mismatch"


class PaymentAttachInvalid(InvalidRequest):
    """The payment carries no attach this deployment wrote, or one for another member."""

    code = "payment_attach_invalid"


class PaymentKindNotSupported(InvalidRequest):
    code = "payment_kind_not_supported"


# ---- what a payment is for ----------------------------------------------------------

class PaymentKind(StrEnum):
    TOPUP = "topup"
    PLAN = "plan"


@dataclass(frozen=True)
class PlanTerm:
    """The term a plan payment buys: its kind and its number in the member's run."""

    kind: str  # monthly | quarterly | yearly
    number: int  # 1..9999, as term ids number them

    def text(self) -> str:
        return f"{self.kind}-{self.number}"


@dataclass(frozen=True)
class PaymentAttach:
    kind: PaymentKind
    member_id: str
    detail: tuple[str, ...] = ()  # plan: (planId, "<kind>-<n>")

    def text(self) -> str:
        return ":".join((ATTACH_PREFIX, self.kind.value, self.member_id, *self.detail))

    @property
    def plan_id(self) -> str:
        return self.detail[0]

    @property
    def plan_term(self) -> PlanTerm:
        kind, _, number = self.detail[1].partition("-")
        return PlanTerm(kind, int(number))


def topup_attach(member_id: str) -> str:
    """The attach the app sets on a top-up payment."""
    return PaymentAttach(PaymentKind.TOPUP, member_id).text()


def plan_attach(member_id: str, plan_id: str, term: str, number: int) -> str:
    """The attach the app sets on a paid plan's payment: term `number` of `plan_id`, of
    kind `term` (monthly, quarterly, yearly)."""
    return PaymentAttach(PaymentKind.PLAN, member_id,
                         (plan_id, PlanTerm(term, number).text())).text()


def parse_attach(text: str | None) -> PaymentAttach:
    if not text:
        raise PaymentAttachInvalid("the payment carries no membership attach; the app sets it "
                                   "when it creates the payment (docs/payments.md)")
    if len(text) > MAX_ATTACH:
        raise PaymentAttachInvalid("the payment's attach is too long to be a membership attach")
    parts = text.split(":")
    if ":".join(parts[:2]) != ATTACH_PREFIX or len(parts) < 4:
        raise PaymentAttachInvalid("the payment's attach is not a membership attach",
                                   attach=text)
    kind, member_id, detail = parts[2], parts[3], tuple(parts[4:])
    if kind not in {k.value for k in PaymentKind}:
        raise PaymentAttachInvalid(f"unknown payment kind {kind!r} in the attach", attach=text)
    if not _MEMBER_ID.match(member_id) or not all(_PART.match(p) for p in detail):
        raise PaymentAttachInvalid("the payment's attach names no valid member", attach=text)
    kind = PaymentKind(kind)
    expected = {PaymentKind.TOPUP: 0, PaymentKind.PLAN: 2}[kind]
    if len(detail) != expected:
        raise PaymentAttachInvalid(f"a {kind.value} attach has {expected} fields after the "
                                   "member id", attach=text)
    if kind is PaymentKind.PLAN and not (_PLAN_ID.match(detail[0])
                                         and _PLAN_TERM.match(detail[1])):
        raise PaymentAttachInvalid("a plan attach names a plan id and <kind>-<n>, e.g. "
                                   "monthly-1", attach=text)
    return PaymentAttach(kind, member_id, detail)


# ---- what the provider says ---------------------------------------------------------

class PaymentState(StrEnum):
    PAID = "paid"
    NOT_PAID = "not_paid"  # created, waiting for the payer, paying, or failed
    CLOSED = "closed"  # closed or revoked before payment, or closed after a full refund
    REFUNDED = "refunded"


@dataclass(frozen=True)
class ProviderPayment:
    channel: str  # wechat_pay | alipay
    reference: str  # the merchant's order number (out_trade_no): the payment reference
    transaction_id: str | None
    state: PaymentState
    amount: int  # fen, the order's total
    currency: str
    merchant_id: str | None  # WeChat Pay mchid; Alipay seller_id when the provider says
    app_id: str | None
    attach: str | None
    paid_at: datetime | None = None


@dataclass(frozen=True)
class ProviderRefund:
    """A refund the provider made. WeChat Pay tells each refund's amount (`amount`); Alipay
    tells the payment's refunded total so far (`refunded_total`)."""

    channel: str
    payment_reference: str
    refund_reference: str
    amount: int | None = None
    refunded_total: int | None = None


@dataclass(frozen=True)
class Merchant:
    """Who the deployment is at the provider: a payment must be made to exactly this."""

    merchant_id: str | None
    app_id: str


def yuan_to_fen(text: str) -> int:
    """Alipay's "88.88" (yuan, at most two decimals) as integer fen, exactly."""
    if not isinstance(text, str) or not _YUAN.match(text):
        raise ValueError(f"not an amount in yuan: {text!r}")
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation:
        raise ValueError(f"not an amount in yuan: {text!r}") from None


def check_sent_in_window(sent_at: datetime, now: datetime, window_seconds: int) -> None:
    """A notification is accepted only when it was signed within `window_seconds` of now."""
    if abs(now - sent_at) > timedelta(seconds=window_seconds):
        raise NotificationExpired(
            f"the notification was sent at {sent_at.isoformat()}, more than {window_seconds}s "
            "from now; a replay or a clock far off",
            sentAt=sent_at.isoformat(), windowSeconds=window_seconds)


def check_merchant(payment: ProviderPayment, merchant: Merchant) -> None:
    if payment.app_id != merchant.app_id or (
            merchant.merchant_id is not None and payment.merchant_id != merchant.merchant_id):
        raise PaymentMerchantMismatch(
            "the payment was made to another merchant account or app",
            paymentReference=payment.reference)


def check_paid_in_cny(payment: ProviderPayment) -> None:
    if payment.state is not PaymentState.PAID:
        raise PaymentNotVerified(
            f"the provider reports this payment as {payment.state.value}, not paid",
            paymentReference=payment.reference, state=payment.state.value)
    if payment.currency != CURRENCY:
        raise PaymentNotVerified("the payment was not made in CNY",
                                 paymentReference=payment.reference, currency=payment.currency)
    if not 0 < payment.amount <= MAX_FEN:
        raise PaymentNotVerified("the payment's amount is out of range",
                                 paymentReference=payment.reference)


def _members_payment(payment: ProviderPayment, merchant: Merchant, member_id: str,
                     channel: str, kind: PaymentKind, what: str) -> PaymentAttach:
    """The checks both of the app's own calls make: paid through the claimed channel to
    this merchant in CNY, with an attach of `kind` naming this member."""
    if payment.channel != channel:
        raise PaymentNotVerified("the payment was made through another channel",
                                 paymentReference=payment.reference)
    check_merchant(payment, merchant)
    check_paid_in_cny(payment)
    attach = parse_attach(payment.attach)
    if attach.kind is not kind:
        raise PaymentNotVerified(f"this payment was made for a {attach.kind.value}, "
                                 f"not {what}", paymentReference=payment.reference)
    if attach.member_id != member_id:
        # Whoever merely learned a reference must not be able to claim it.
        raise PaymentNotVerified("this payment was made for another member",
                                 paymentReference=payment.reference)
    return attach


def confirm_topup_payment(payment: ProviderPayment, merchant: Merchant, member_id: str,
                          channel: str) -> PaymentAttach:
    """A provider's answer to the app's own top-up call: paid, in CNY, to this merchant,
    for a top-up of this member, through the claimed channel."""
    return _members_payment(payment, merchant, member_id, channel, PaymentKind.TOPUP,
                            "a top-up")


def confirm_plan_payment(payment: ProviderPayment, merchant: Merchant, member_id: str,
                         channel: str, plan_id: str, term: str, price: int) -> PlanTerm:
    """A provider's answer to the app's own plan purchase: paid, in CNY, to this merchant,
    through the claimed channel, of exactly the term's price, for this member, this plan
    and this kind of term. Which term number it may buy is the posting's to check
    (`check_plan_term`): only the member's terms, read in the transaction, say it."""
    try:
        attach = _members_payment(payment, merchant, member_id, channel, PaymentKind.PLAN,
                                  "a paid plan")
    except PaymentAttachInvalid as exc:
        # To the member's call this is one more payment that is not for this purchase.
        raise PaymentNotVerified(exc.message, paymentReference=payment.reference) from None
    bought = attach.plan_term
    if attach.plan_id != plan_id or bought.kind != term:
        raise PaymentNotVerified(
            f"this payment was made for a {bought.kind} term of plan {attach.plan_id}",
            paymentReference=payment.reference, planId=plan_id, term=term)
    check_plan_price(payment, price)
    return bought


def check_plan_price(payment: ProviderPayment, price: int) -> None:
    """A plan payment pays exactly the term's price: more or less buys nothing."""
    if payment.amount != price:
        raise PaymentNotVerified(
            "the payment's amount is not the term's price",
            paymentReference=payment.reference, paid=payment.amount, price=price)


def check_plan_term(bought: PlanTerm, seq: int, reference: str) -> None:
    """The term a purchase creates must be the one the payment was made for."""
    if bought.number != seq:
        raise PaymentNotVerified(
            f"this payment was made for term {bought.number} of the plan; the next term is "
            f"{seq}", paymentReference=reference, termNumber=bought.number, nextTerm=seq)


def confirm_notified_payment(payment: ProviderPayment, merchant: Merchant) -> PaymentAttach:
    """A notified payment: paid, in CNY, to this merchant; the attach says for what."""
    check_merchant(payment, merchant)
    check_paid_in_cny(payment)
    return parse_attach(payment.attach)
