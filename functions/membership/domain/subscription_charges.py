"""Automatic renewal: the payment provider's `subscription.charged`, applied once per cycle.

Pure rules, no I/O (docs/subscriptions.md, "Automatic renewal"). The cycle rule:

- cycle n is the n-th term of the subscription (terms count from 1, a trial included);
  `subscription.renewal_due` tells the provider the cycle it charges next.
- cycle = terms + 1: the charge buys the next term (the kind of the member's latest paid
  term, monthly after a trial only) at its exact price; while the plan is active at
  `chargedAt` it extends from the end, after a lapse it starts at `chargedAt`.
- cycle <= terms: that term exists already (the member bought it by hand, or another
  charge paid it): the charge is a duplicate. It never extends; it is recorded once, with
  `subscription.charge_duplicated`, for the provider to refund.
- cycle > terms + 1: an earlier cycle has not arrived; refused for now (retried).
- a wrong amount, an unknown plan or subscription: refused (the event goes to the DLQ).
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from membership.domain import calendar
from membership.domain.instants import Instant
from membership.domain.ledger import PostingBuilder
from membership.domain.members import PaidPlanState
from membership.domain.program import Program
from membership.domain.subscriptions import (
    PaidTerm,
    Purchase,
    TermRecord,
    latest_term,
    next_term,
    plan_of,
    term_id_for,
    term_price,
)
from membership.domain.topups import MAX_FEN, Reference
from membership.errors import DomainError

SubscriptionId = Annotated[str, StringConstraints(
    pattern=r"^M[a-z2-7]{8,64}\.[A-Za-z0-9_-]{1,16}$")]
MAX_CYCLE = 9999  # term numbers are four digits (term_id_for)
AUTO_RENEW_CHANNEL = "auto_renew"


class SubscriptionCharged(BaseModel):
    """The `detail` of subscription.charged (events/schemas/subscription.charged.json)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    cycle: StrictInt = Field(ge=1, le=MAX_CYCLE)
    payment_reference: Reference = Field(alias="paymentReference")
    amount: StrictInt = Field(gt=0, le=MAX_FEN)
    charged_at: Instant = Field(alias="chargedAt")
    channel: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")] | None = None

    @property
    def member_id(self) -> str:
        return self.subscription_id.split(".", 1)[0]

    @property
    def plan_id(self) -> str:
        return self.subscription_id.split(".", 1)[1]


class ChargeRefused(DomainError):
    """The charge cannot extend anything as it is: it goes to the DLQ for an operator."""

    code = "charge_refused"


class ChargeAmountMismatch(ChargeRefused):
    code = "charge_amount_mismatch"


class ChargeOutOfOrder(DomainError):
    """An earlier cycle has not been applied yet: retrying later may succeed."""

    code = "charge_out_of_order"


def renewal_term(terms: list[Purchase]) -> PaidTerm:
    """The term an automatic renewal buys: the member's latest paid term's kind."""
    paid = [p for p in terms if p.record.term != "trial"]
    return max(paid, key=lambda p: p.seq).record.term if paid else "monthly"


def apply_charge(builder: PostingBuilder, program: Program, charge: SubscriptionCharged,
                 terms: list[Purchase]) -> Purchase | None:
    """The charge's legs: the new term and the member's paid plan, or (a cycle already
    paid) the duplicate's record. Returns the new term, None for a duplicate."""
    tz = program.time_zone
    plan = plan_of(program, charge.plan_id)
    member = builder.member
    seq = max((p.seq for p in terms), default=0)
    base = {"memberId": member.member_id, "subscriptionId": charge.subscription_id,
            "planId": plan.id, "cycle": charge.cycle,
            "paymentReference": charge.payment_reference, "amount": charge.amount,
            "chargedAt": calendar.wire(charge.charged_at, tz)}
    if charge.cycle <= seq:
        paid = next(p for p in terms if p.seq == charge.cycle)
        builder.emit("subscription.charge_duplicated", base | {
            "termId": paid.record.term_id, "paidWith": paid.paid_with,
            "reason": "cycle_already_paid", "occurredAt": calendar.wire(builder.now, tz)})
        builder.result = base | {"duplicate": True, "termId": paid.record.term_id}
        return None
    if charge.cycle > seq + 1:
        raise ChargeOutOfOrder(f"cycle {charge.cycle} arrived before cycle {seq + 1}",
                               cycle=charge.cycle, expected=seq + 1)
    term = renewal_term(terms)
    price = term_price(plan, term)
    if charge.amount != price:
        raise ChargeAmountMismatch(
            f"charged {charge.amount} fen for a {term} term of {price} fen",
            charged=charge.amount, price=price)
    records: list[TermRecord] = [p.record for p in terms]
    span = next_term(plan, term, now=charge.charged_at, tz=tz, current=latest_term(records))
    record = TermRecord(term_id=term_id_for(charge.subscription_id, charge.cycle),
                        plan_id=plan.id, term=term, price=price, paid_at=charge.charged_at,
                        starts_at=span.starts_at, ends_at=span.ends_at, anchor=span.anchor,
                        months_from_anchor=span.months_from_anchor)
    bought = Purchase(record=record, member_id=member.member_id,
                      subscription_id=charge.subscription_id, seq=charge.cycle,
                      paid_with="payment", payment_reference=charge.payment_reference,
                      channel=charge.channel or AUTO_RENEW_CHANNEL, extended=span.extends)
    run_start = (member.paid_plan.started_at
                 if span.extends and member.paid_plan is not None
                 and member.paid_plan.plan_id == plan.id else span.starts_at)
    builder.set(paid_plan=PaidPlanState(plan_id=plan.id, started_at=run_start,
                                        ends_at=span.ends_at))
    builder.emit("subscription.renewed" if span.extends else "subscription.started", {
        "memberId": member.member_id, "subscriptionId": charge.subscription_id,
        "planId": plan.id, "termId": record.term_id, "term": term, "price": price,
        "paidWith": "payment", "paymentReference": charge.payment_reference,
        "startsAt": calendar.wire(span.starts_at, tz), "endsAt": calendar.wire(span.ends_at, tz),
        "occurredAt": calendar.wire(builder.now, tz)})
    builder.result = base | {"duplicate": False, "termId": record.term_id, "term": term,
                             "extended": span.extends,
                             "startsAt": calendar.wire(span.starts_at, tz),
                             "endsAt": calendar.wire(span.ends_at, tz)}
    return bought
