"""An operator refunds one term of a paid plan (pure rules; docs/subscriptions.md).

The amount is `domain.subscriptions.refund_amount`. The term ends at once; the member's
`paid_plan` ends with the remaining unrefunded terms (or now). A term paid from stored
value gives the amount back to the balance in the same posting (principal first, up to
what the term took from principal, then bonus: a refund never turns bonus into principal);
a term paid by a provider is paid out by the provider, told by `subscription.refunded`.
Terms are refunded newest first: later terms are chained from the earlier ones' ends.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from membership.domain import calendar
from membership.domain.ledger import PostingBuilder
from membership.domain.members import ApiModel, PaidPlanState
from membership.domain.program import Program
from membership.domain.subscriptions import (
    Purchase,
    benefits_value,
    in_cooling_off,
    plan_of,
    refund_amount,
    unused_days,
)
from membership.domain.topups import balance_of
from membership.errors import Conflict, InvalidRequest, NotFound

RefundId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
TermId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,96}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class TermNotFound(NotFound):
    code = "term_not_found"


class NothingToRefund(Conflict):
    code = "nothing_to_refund"


class TermAlreadyRefunded(Conflict):
    code = "term_already_refunded"


class RefundLaterTermsFirst(Conflict):
    code = "refund_later_terms_first"


class TermNotRefundable(InvalidRequest):
    code = "term_not_refundable"


class SubscriptionRefundRequest(ApiModel):
    refund_id: RefundId = Field(alias="refundId", description=(
        "The operator's refund reference: a refund happens exactly once per reference"))
    term_id: TermId | None = Field(alias="termId", default=None, description=(
        "The term to refund; absent: the latest unrefunded paid term"))
    reason: Reason


class SubscriptionRefundResponse(ApiModel):
    refund_id: str = Field(alias="refundId")
    subscription_id: str = Field(alias="subscriptionId")
    term_id: str = Field(alias="termId")
    plan_id: str = Field(alias="planId")
    price: int = Field(description="fen the term cost")
    amount: int = Field(description="fen refunded")
    rule: Literal["cooling_off", "pro_rata"]
    unused_days: int = Field(alias="unusedDays")
    benefits_value: int = Field(alias="benefitsValue", description="fen of benefits used")
    paid_with: str = Field(alias="paidWith")
    payout: Literal["balance", "provider", "none"] = Field(
        description="balance: credited in this posting; provider: the provider pays it out")
    to_principal: int = Field(alias="toPrincipal", default=0)
    to_bonus: int = Field(alias="toBonus", default=0)
    ends_at: str | None = Field(alias="endsAt", description="The member's plan end now")
    refunded_at: str = Field(alias="refundedAt")


class TermRefund(BaseModel):
    """What the storage writes on the term."""

    model_config = ConfigDict(frozen=True)

    purchase: Purchase
    refund_id: str
    amount: int
    reason: str
    refunded_at: datetime


def choose_term(terms: list[Purchase], term_id: str | None, subscription_id: str) -> Purchase:
    """The term to refund: the one named, or the latest unrefunded paid term."""
    live = [p for p in terms if p.record.refunded_at is None]
    if term_id is None:
        paid = [p for p in live if p.record.term != "trial"]
        if not paid:
            raise NothingToRefund("the subscription has no unrefunded paid term",
                                  subscriptionId=subscription_id)
        return max(paid, key=lambda p: p.seq)
    chosen = next((p for p in terms if p.record.term_id == term_id), None)
    if chosen is None:
        raise TermNotFound(f"subscription {subscription_id} has no term {term_id}",
                           termId=term_id)
    if chosen.record.refunded_at is not None:
        raise TermAlreadyRefunded(f"term {term_id} was refunded already", termId=term_id)
    if chosen.record.term == "trial":
        raise TermNotRefundable("a trial costs nothing and refunds nothing", termId=term_id)
    later = [p.record.term_id for p in live if p.seq > chosen.seq]
    if later:
        raise RefundLaterTermsFirst("refund the later terms first: they start from this "
                                    "term's end", termId=term_id, laterTerms=later)
    return chosen


def apply_refund(builder: PostingBuilder, program: Program, terms: list[Purchase],
                 request: SubscriptionRefundRequest, subscription_id: str) -> TermRefund:
    """The refund posting's legs: the balance credit (if paid from it), the member's plan
    end, the answer and `subscription.refunded`."""
    now, tz = builder.now, program.time_zone
    chosen = choose_term(terms, request.term_id, subscription_id)
    record = chosen.record
    plan = plan_of(program, record.plan_id)
    used = chosen.benefits
    amount = refund_amount(record, plan, program, used, now)
    cooling = not used.any and in_cooling_off(record, plan, now, tz)
    to_principal = to_bonus = 0
    payout = "none"
    if amount and chosen.paid_with == "balance":
        payout = "balance"
        to_principal = min(amount, chosen.paid_principal) if chosen.paid_bonus else amount
        to_bonus = amount - to_principal
        if to_principal:
            builder.credit_balance("principal", to_principal, reason="plan_refund")
        if to_bonus:
            builder.credit_balance("bonus", to_bonus, reason="plan_refund")
    elif amount:
        payout = "provider"
    member = builder.member
    ends_at = _plan_end_after(terms, chosen, now)
    held = member.paid_plan
    if held is not None and held.plan_id == record.plan_id:
        builder.set(paid_plan=PaidPlanState(plan_id=held.plan_id,
                                            started_at=min(held.started_at, ends_at),
                                            ends_at=min(held.ends_at, ends_at)))
    after = builder.member
    shown_end = after.paid_plan.ends_at if after.paid_plan is not None else ends_at
    view = SubscriptionRefundResponse(
        refundId=request.refund_id, subscriptionId=subscription_id, termId=record.term_id,
        planId=record.plan_id, price=record.price, amount=amount,
        rule="cooling_off" if cooling else "pro_rata",
        unusedDays=unused_days(record, now, tz), benefitsValue=benefits_value(used, program),
        paidWith=chosen.paid_with, payout=payout, toPrincipal=to_principal, toBonus=to_bonus,
        endsAt=calendar.wire(shown_end, tz), refundedAt=calendar.wire(now, tz))
    builder.result = view.model_dump(mode="json", by_alias=True) | {
        "memberId": member.member_id}
    if payout == "balance":
        builder.result["balance"] = balance_of(after).model_dump(mode="json", by_alias=True)
    builder.emit("subscription.refunded", {
        "memberId": member.member_id, "subscriptionId": subscription_id,
        "planId": record.plan_id, "termId": record.term_id, "refundId": request.refund_id,
        "price": record.price, "amount": amount, "paidWith": chosen.paid_with,
        "payout": payout, "paymentReference": chosen.payment_reference,
        "channel": chosen.channel, "reason": request.reason,
        "endsAt": calendar.wire(shown_end, tz), "occurredAt": calendar.wire(now, tz),
    })
    return TermRefund(purchase=chosen, refund_id=request.refund_id, amount=amount,
                      reason=request.reason, refunded_at=now)


def _plan_end_after(terms: list[Purchase], refunded: Purchase, now: datetime) -> datetime:
    """The end of the remaining unrefunded terms, or now if that is past (never later
    than the plan's end before)."""
    remaining = [p.record.ends_at for p in terms
                 if p.record.refunded_at is None and p.seq != refunded.seq]
    end = max(remaining, default=now)
    return end if end > now else now
