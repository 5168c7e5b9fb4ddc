"""Providers' signed notifications: what each one does, exactly once.

A notification is authenticated by its provider's module (signature, key, time window,
merchant) before it reaches `apply_payment` / `apply_refund`; nothing here trusts it
more than that. A paid notification is routed by the attach's payment kind:

    topup  -> credit the top-up: source key `topup:<reference>`, the same posting as the
              member's own call, so whichever of the two arrives first credits and the
              other replays it (a replayed notification too);
    plan   -> refused with 422 payment_kind_not_supported until paid plans are built;
              the PLUS issue registers its route in `PAYMENT_ROUTES`.

A refund notification feeds the top-ups' refund path; the refund reference is its source
key, so it applies once whichever way (notification, operator, payment.refunded) comes
first.
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
from membership.domain.topups import RefundRequest, TopupRequest
from membership.services import topups


@dataclass(frozen=True)
class Applied:
    action: str  # credited | replayed | refunded | ignored
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


# Payment kind -> what a paid notification of that kind does. Paid plans (PLUS) add
# PaymentKind.PLAN here, with the subscription service's "charge credited" use case.
PAYMENT_ROUTES: dict[PaymentKind, Callable[[ProviderPayment, PaymentAttach, datetime | None],
                                           Applied]] = {
    PaymentKind.TOPUP: _credit_topup,
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
    """A provider's refund of a top-up's payment. A payment that was never credited as a
    top-up is 404 topup_not_found, so the provider sends it again: its payment's own
    notification may still be on the way. (Paid plans add their refunds here.)"""
    try:
        # A provider that reports totals names no amount: absent, never an explicit null.
        amount = {} if refund.amount is None else {"amount": refund.amount}
        request = RefundRequest(refundReference=refund.refund_reference,
                                reason=f"{refund.channel} refund", **amount)
    except ValidationError:
        raise MalformedNotification("the refund's reference or amount is not one a top-up's "
                                    "refund can have") from None
    answer = topups.refund_payment(refund.payment_reference, request, now=now,
                                   refunded_total=refund.refunded_total)
    return Applied("replayed" if answer.replayed else "refunded", answer.body)
