"""Paid plans bought through a provider: the signed notification of a plan payment, and a
provider's refund of one (docs/payments.md, "Paid plans").

A paid notification whose attach is `membership:v1:plan:<memberId>:<planId>:<kind>-<n>`
buys term n of the plan for the member, through the purchase posting of the member's own
call (`subscriptions.purchase_notified`): the same source key
`subscription:payment:<reference>`, so the notification and the app's call buy one term
between them, whichever comes first, and a notification sent again replays.

A provider's refund of a plan payment moves no money here: the term's refund rule and its
payout belong to the operator's refund (`POST /v1/admin/subscriptions/{id}/refunds`),
which announces `subscription.refunded` for the payment system to pay out. So a refund
notice of a term refunded that way is its payout confirmed, and is acknowledged; one of a
term still running was made at the provider behind Membership's back: it is acknowledged
too (the provider would otherwise retry for a day, to the same end), logged as an error
and counted, so that a person settles the term. Nothing is written either way.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from membership.domain.payments import (
    MalformedNotification,
    PaymentAttach,
    ProviderPayment,
    ProviderRefund,
    check_plan_price,
)
from membership.domain.subscriptions import Purchase, SubscriptionRequest, plan_of, term_price
from membership.domain.topups import topup_source_key
from membership.observability import logger
from membership.services import subscriptions
from membership.storage import subscriptions as store
from membership.storage.ledger import read_guard
from membership.storage.program import load_program

# The guard a plan purchase or charge writes for its payment reference (a top-up's own
# posting guard has the source type "topup").
PLAN_GUARD_TYPE = "payment_reference"


def buy(payment: ProviderPayment, attach: PaymentAttach, now: datetime | None
        ) -> tuple[str, dict]:
    """A paid plan payment, notified: (action, body). Refused, with nothing written, when
    its amount is not the term's price or the term it names is not the member's next."""
    bought = attach.plan_term
    try:
        request = SubscriptionRequest(planId=attach.plan_id, term=bought.kind,
                                      paymentReference=payment.reference,
                                      channel=payment.channel)
    except ValidationError:
        raise MalformedNotification("the payment's reference cannot be a plan purchase's",
                                    paymentReference=payment.reference[:128]) from None
    check_plan_price(payment, term_price(plan_of(load_program(), attach.plan_id),
                                         bought.kind))
    answer = subscriptions.purchase_notified(attach.member_id, request, bought, now=now)
    return ("replayed" if answer.replayed else "bought"), answer.body


def _paid_term(reference: str) -> tuple[str, Purchase | None] | None:
    """(member id, the term the reference paid) of a plan payment; the term is None for a
    payment that bought nothing (a duplicate charge). None: not a plan payment Membership
    applied (yet)."""
    guard = read_guard(topup_source_key(reference))
    if guard is None or guard.source_type != PLAN_GUARD_TYPE or not guard.member_id:
        return None
    _, terms = store.read(guard.member_id)
    paid = next((p for plan_terms in terms.values() for p in plan_terms
                 if p.payment_reference == reference), None)
    return guard.member_id, paid


def refund(refund: ProviderRefund) -> tuple[str, dict] | None:
    """A provider's refund of a plan payment: (action, body), never a write; None when the
    reference paid no plan term Membership knows (the caller answers as for top-ups)."""
    found = _paid_term(refund.payment_reference)
    if found is None:
        return None
    member_id, paid = found
    body = {"paymentReference": refund.payment_reference,
            "refundReference": refund.refund_reference,
            **({"amount": refund.amount} if refund.amount is not None else {}),
            **({"refundedTotal": refund.refunded_total}
               if refund.refunded_total is not None else {})}
    if paid is None:
        # A charge for a cycle already paid: recorded as a duplicate for the provider to
        # refund (subscription.charge_duplicated). This is that refund.
        logger.info("provider refund of a duplicate plan charge", extra=body)
        return "ignored", body | {"reason": "duplicate_charge"}
    body |= {"subscriptionId": paid.subscription_id, "termId": paid.record.term_id}
    if paid.record.refunded_at is not None:
        logger.info("provider refund of a refunded plan term", extra=body)
        return "ignored", body | {"reason": "term_refunded"}
    # Not mapped onto the term: the refund rule decides its own amount, and the operator's
    # refund announces a payout the provider has made already. A person settles it.
    logger.error("a plan payment was refunded at the provider while its term runs: refund "
                 "the term in Membership (docs/payments.md)", extra=body | {
                     "memberId": member_id})
    return "plan_refund_unmatched", body | {"reason": "term_not_refunded"}
