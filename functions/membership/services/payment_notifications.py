"""Providers' signed notifications: what each one does, exactly once.

A notification is authenticated by its provider's module (signature, key, time window,
merchant) before it reaches `apply_payment` / `apply_refund`; nothing here trusts it
more than that. A paid notification is routed by the attach's payment kind
(`PAYMENT_ROUTES`):

    topup  -> credit the top-up: source key `topup:<reference>`, the same posting as the
              member's own call, so whichever of the two arrives first credits and the
              other replays it (a replayed notification too);
    plan   -> buy the term the attach names (services/plan_payments.py): source key
              `subscription:payment:<reference>`, the same posting as the member's own
              `POST /v1/members/me/subscriptions`, so again one of the two buys it.

A refund notification feeds the top-ups' refund path; the refund reference is its source
key, so it applies once whichever way (notification, operator, payment.refunded) comes
first. A refund of a plan payment is acknowledged and changes nothing (plan_payments).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from membership.domain.payments import (
    MalformedNotification,
    Merchant,
    PaymentAttach,
    PaymentKind,
    PaymentKindNotSupported,
    PaymentState,
    ProviderPayment,
    ProviderRefund,
    confirm_notified_payment,
)
from membership.domain.topups import RefundRequest, TopupNotFound, TopupRequest
from membership.services import plan_payments, topups


@dataclass(frozen=True)
class Applied:
    # credited | bought | replayed | refunded | ignored | plan_refund_unmatched
    action: str
    body: dict


def _credit_topup(payment: ProviderPayment, attach: PaymentAttach, now: datetime | None
                  ) -> Applied:
    try:
        request = TopupRequest(amount=payment.amount, paymentReference=payment.reference,
                               channel=payment.channel)
    except ValidationError:
        raise MalformedNotification("the payment's reference or amount cannot be a top-up's",
                                    paymentReference=payment.reference[:128]) from None
    answer = topups.credit_payment(attach.member_id, request, now=now)
    return Applied("replayed" if answer.replayed else "credited", answer.body)


def _buy_plan(payment: ProviderPayment, attach: PaymentAttach, now: datetime | None
              ) -> Applied:
    return Applied(*plan_payments.buy(payment, attach, now))


# Payment kind -> what a paid notification of that kind does.
PAYMENT_ROUTES: dict[PaymentKind, Callable[[ProviderPayment, PaymentAttach, datetime | None],
                                           Applied]] = {
    PaymentKind.TOPUP: _credit_topup,
    PaymentKind.PLAN: _buy_plan,
}


def apply_payment(payment: ProviderPayment, merchant: Merchant,
                  now: datetime | None = None) -> Applied:
    if payment.state is not PaymentState.PAID:
        # A genuine notice that credits nothing (e.g. Alipay's WAIT_BUYER_PAY, or a trade
        # closed unpaid): acknowledged, so the provider stops sending it.
        return Applied("ignored", {"paymentReference": payment.reference,
                                   "state": payment.state.value})
    attach = confirm_notified_payment(payment, merchant)
    route = PAYMENT_ROUTES.get(attach.kind)
    if route is None:
        raise PaymentKindNotSupported(
            f"{attach.kind.value} payments are not credited by this deployment yet",
            paymentReference=payment.reference, kind=attach.kind.value)
    return route(payment, attach, now)


def apply_refund(refund: ProviderRefund, now: datetime | None = None) -> Applied:
    """A provider's refund of a top-up's payment, or of a plan's (acknowledged, nothing
    written: plan_payments.refund). A payment that was never credited as a top-up nor
    bought a plan term is 404 topup_not_found, so the provider sends it again: its
    payment's own notification may still be on the way."""
    try:
        # A provider that reports totals names no amount: absent, never an explicit null.
        amount = {} if refund.amount is None else {"amount": refund.amount}
        request = RefundRequest(refundReference=refund.refund_reference,
                                reason=f"{refund.channel} refund", **amount)
    except ValidationError:
        raise MalformedNotification("the refund's reference or amount is not one a top-up's "
                                    "refund can have") from None
    try:
        answer = topups.refund_payment(refund.payment_reference, request, now=now,
                                       refunded_total=refund.refunded_total)
    except TopupNotFound:
        plan = plan_payments.refund(refund)
        if plan is None:
            raise
        return Applied(*plan)
    return Applied("replayed" if answer.replayed else "refunded", answer.body)
