"""Paid membership (PLUS) rules: terms, status, renewal, refunds, monthly packs, benefits.

Pure functions, no I/O. Instants are UTC in and out; calendar rules (a term's months, the
end of a day, the cooling-off window) follow the program's time zone. Money is integer fen.
docs/subscriptions.md states these rules in prose.

A term covers calendar months (or the trial's days) counted from its *anchor*: the local
date the member's current run of terms began. Counting from the anchor rather than from
the previous end keeps a run started on 31 January on month ends: 28/29 Feb, 31 Mar,
30 Apr, … instead of drifting to the 28th for ever. Each term ends at the last instant
(microsecond) of a local day.
"""
from __future__ import annotations

import calendar as _stdcal
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from membership.domain import calendar
from membership.domain.ledger import PostingBuilder
from membership.domain.member_status import ensure_may_spend
from membership.domain.members import ApiModel, PaidPlanState
from membership.domain.program import FEN_PER_YUAN, PaidPlan, Program, Tier
from membership.domain.topups import BalanceOut, PaymentChannel, Reference, balance_of
from membership.errors import Conflict, InvalidRequest, NotFound

PlanId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,16}$")]
Term = Literal["monthly", "quarterly", "yearly", "trial"]
PaidTerm = Literal["monthly", "quarterly", "yearly"]
Status = Literal["trial", "active", "lapsed", "refunded"]

TERM_MONTHS: dict[str, int] = {"monthly": 1, "quarterly": 3, "yearly": 12}
RENEWAL_NOTICE_DAYS = 5  # subscription.renewal_due goes out this many days before
FREE_SHIPPING = "free_shipping"


class TermSpan(BaseModel):
    """Where a new term sits: from `starts_at` to `ends_at` (inclusive, end of a local day)."""

    model_config = ConfigDict(frozen=True)

    starts_at: datetime
    ends_at: datetime
    anchor: date = Field(description="Local date the run of terms began; months count from it")
    months_from_anchor: int = Field(ge=0, description="Calendar months from anchor to ends_at")
    extends: bool = Field(description="True: added after an active term; False: starts now")


class TermRecord(BaseModel):
    """One bought (or trial) term, as the rules need it."""

    model_config = ConfigDict(frozen=True)

    term_id: str
    plan_id: str
    term: Term
    price: int = Field(ge=0)
    paid_at: datetime
    starts_at: datetime
    ends_at: datetime
    anchor: date
    months_from_anchor: int = 0
    refunded_at: datetime | None = None


class BenefitsUsed(BaseModel):
    """What a term's benefits were worth to the member so far."""

    model_config = ConfigDict(frozen=True)

    coupon_discount: int = Field(default=0, ge=0, description="fen of plan coupons redeemed")
    bonus_points: int = Field(default=0, ge=0, description="points earned above the tier rate")
    plan_discount: int = Field(default=0, ge=0,
                               description="fen of member price above the tier discount")

    @property
    def any(self) -> bool:
        return bool(self.coupon_discount or self.bonus_points or self.plan_discount)


# ---- calendar ---------------------------------------------------------------------------

def add_months(day: date, months: int, anchor_day: int | None = None) -> date:
    """`day` moved by whole calendar months, keeping `anchor_day` (default: its own day)
    and clamping to the month's last day: 31 Jan + 1 month = 28/29 Feb."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    wanted = anchor_day if anchor_day is not None else day.day
    return date(year, month, min(wanted, _stdcal.monthrange(year, month)[1]))


def local_date(instant: datetime, tz: str) -> date:
    return calendar.utc(instant).astimezone(calendar.zone(tz)).date()


def start_of_day(day: date, tz: str) -> datetime:
    """The first instant of a local day, in UTC (a DST gap at midnight resolves forwards)."""
    local = datetime.combine(day, time(0), tzinfo=calendar.zone(tz))
    return calendar.utc(local)


def end_of_day(day: date, tz: str) -> datetime:
    """The last instant (microsecond) of a local day, in UTC."""
    return start_of_day(day + timedelta(days=1), tz) - calendar.LAST_MICROSECOND


# ---- terms ------------------------------------------------------------------------------

def term_price(plan: PaidPlan, term: Term) -> int:
    """Fen a term costs; a trial costs nothing."""
    if term == "trial":
        return 0
    return getattr(plan.prices, term)


def is_active(ends_at: datetime | None, now: datetime) -> bool:
    """Lapse is derived at read time: `now >= endsAt` is lapsed, as the profile, tags and
    closure read the member's `paid_plan` (ends_at is a day's last microsecond)."""
    return ends_at is not None and now < ends_at


def next_term(plan: PaidPlan, term: Term, *, now: datetime, tz: str,
              current: TermRecord | None) -> TermSpan:
    """Where a term bought at `now` lies, given the member's latest unrefunded term.

    While `current` is active the new term extends from its end, keeping the run's anchor;
    after a lapse (or with none) it starts now and the run's anchor is today's local date.
    A trial lasts `trialDays` days: it ends at the end of the local day that many days after
    the day it starts (or after the active term's last day), and re-anchors the run there.
    """
    if current is not None and is_active(current.ends_at, now):
        starts_at = current.ends_at + calendar.LAST_MICROSECOND
        anchor, months_before = current.anchor, current.months_from_anchor
        extends = True
    else:
        starts_at = calendar.utc(now)
        anchor, months_before = local_date(now, tz), 0
        extends = False
    if term == "trial":
        # A trial's days break the run's months: whatever follows counts from its end.
        start_day = local_date(current.ends_at, tz) if extends else anchor
        end_day = start_day + timedelta(days=plan.trial_days)
        anchor, months = end_day, 0
    else:
        months = months_before + TERM_MONTHS[term]
        end_day = add_months(anchor, months)
    return TermSpan(starts_at=starts_at, ends_at=end_of_day(end_day, tz), anchor=anchor,
                    months_from_anchor=months, extends=extends)


def plan_ends_at(terms: list[TermRecord]) -> datetime | None:
    """The end of the latest unrefunded term (the member item's `paid_plan.ends_at`)."""
    ends = [t.ends_at for t in terms if t.refunded_at is None]
    return max(ends) if ends else None


def latest_term(terms: list[TermRecord]) -> TermRecord | None:
    live = [t for t in terms if t.refunded_at is None]
    return max(live, key=lambda t: t.ends_at) if live else None


def current_term(terms: list[TermRecord], now: datetime) -> TermRecord | None:
    """The unrefunded term that covers `now`, if any."""
    for t in terms:
        if t.refunded_at is None and t.starts_at <= now < t.ends_at:
            return t
    return None


def status_of(terms: list[TermRecord], now: datetime) -> Status | None:
    """`trial` / `active` while a term covers now, else `refunded` when the most recent term
    was refunded, else `lapsed`; None for a member who never had a term."""
    if not terms:
        return None
    current = current_term(terms, now)
    if current is not None:
        return "trial" if current.term == "trial" else "active"
    newest = max(terms, key=lambda t: (t.paid_at, t.starts_at))
    return "refunded" if newest.refunded_at is not None else "lapsed"


def trial_used(terms: list[TermRecord], plan_id: str) -> bool:
    return any(t.term == "trial" and t.plan_id == plan_id for t in terms)


# ---- renewal ----------------------------------------------------------------------------

def next_renewal_on(ends_at: datetime | None, *, auto_renew: bool, now: datetime,
                    tz: str) -> date | None:
    """The local date the provider charges the next term: the day the current run ends.
    None when auto-renew is off or the plan has lapsed."""
    if not auto_renew or not is_active(ends_at, now):
        return None
    return local_date(ends_at, tz)


def renewal_due_on(renewal_on: date | None) -> date | None:
    """The local date `subscription.renewal_due` is owed: five days before the renewal."""
    return None if renewal_on is None else renewal_on - timedelta(days=RENEWAL_NOTICE_DAYS)


# ---- monthly gift packs -----------------------------------------------------------------

def gift_month_starts(term: TermRecord, tz: str) -> list[date]:
    """The local date each month of a paid term begins (month 0 = the term's first day).
    Trials carry no monthly pack: the pack is coupons with cash value."""
    if term.term == "trial":
        return []
    count = TERM_MONTHS[term.term]
    first_month = term.months_from_anchor - count
    starts = [add_months(term.anchor, first_month + k) for k in range(count)]
    starts[0] = local_date(term.starts_at, tz)
    return starts


def gift_packs_due(term: TermRecord, on: date, tz: str) -> list[int]:
    """Months (0-based) of the term whose pack is owed by local date `on`: every month that
    has begun, so a missed day catches up. The caller issues each (term, month) once."""
    if term.refunded_at is not None:
        return []
    end_day = local_date(term.ends_at, tz)
    return [k for k, start in enumerate(gift_month_starts(term, tz))
            if start <= on and start <= end_day]


def gift_pack_key(term_id: str, month: int) -> str:
    return f"{term_id}#{month:02d}"


# ---- refunds ----------------------------------------------------------------------------

def term_days(term: TermRecord, tz: str) -> int:
    """Local calendar days a term touches, first and last included."""
    return (local_date(term.ends_at, tz) - local_date(term.starts_at, tz)).days + 1


def unused_days(term: TermRecord, now: datetime, tz: str) -> int:
    """Whole local days of the term after today (today counts as used); all of them for a
    term that has not begun."""
    if now < term.starts_at:
        return term_days(term, tz)
    if now >= term.ends_at:
        return 0
    return (local_date(term.ends_at, tz) - local_date(now, tz)).days


def in_cooling_off(term: TermRecord, plan: PaidPlan, now: datetime, tz: str) -> bool:
    """Until the end of the local day `coolingOffDays` after the day it was paid."""
    last = local_date(term.paid_at, tz) + timedelta(days=plan.cooling_off_days)
    return now <= end_of_day(last, tz)


def benefits_value(used: BenefitsUsed, program: Program) -> int:
    """Fen the member got from a term: coupon discounts, member-price discount above the
    tier's, and bonus points at their checkout value (rounded down, in the member's favour)."""
    points_fen = used.bonus_points * FEN_PER_YUAN // program.points.points_per_yuan_redeemed
    return used.coupon_discount + used.plan_discount + points_fen


def refund_amount(term: TermRecord, plan: PaidPlan, program: Program, used: BenefitsUsed,
                  now: datetime) -> int:
    """Fen refunded for one term.

    Within the cooling-off window with no benefit used: the full price. Otherwise the unused
    whole days pro rata (price × unused ÷ days, rounded down) minus the value of the benefits
    used, never below zero. A refunded term refunds nothing again.
    """
    if term.refunded_at is not None or term.price == 0:
        return 0
    tz = program.time_zone
    if not used.any and in_cooling_off(term, plan, now, tz):
        return term.price
    pro_rata = term.price * unused_days(term, now, tz) // term_days(term, tz)
    return max(pro_rata - benefits_value(used, program), 0)


# ---- checkout benefits (checkout calls these) ---------------------------------------------

def active_plan(program: Program, plan_id: str | None, ends_at: datetime | None,
                at: datetime) -> PaidPlan | None:
    """The member's plan if it was active at `at` (an order's `paidAt`, not processing time)."""
    if plan_id is None or not is_active(ends_at, at):
        return None
    return next((p for p in program.paid_plans if p.id == plan_id), None)


def member_discount(tier: Tier, plan: PaidPlan | None) -> tuple[int, Literal["tier", "plan"]]:
    """The better of the tier's and the plan's discount, never both (a tie goes to the tier)."""
    if plan is not None and plan.discount_bps > tier.discount_bps:
        return plan.discount_bps, "plan"
    return tier.discount_bps, "tier"


def points_multiplier_pct(tier: Tier, plan: PaidPlan | None) -> int:
    """The tier multiplier plus the plan's bonus: V1 (100) with PLUS (+100) earns 200 %."""
    return tier.points_multiplier_pct + (plan.points_bonus_pct if plan is not None else 0)


def free_shipping(tier: Tier, plan: PaidPlan | None) -> bool:
    return (plan is not None and plan.free_shipping) or any(
        b.code == FREE_SHIPPING for b in tier.benefits)


# ---- the wire contract and the purchase posting -----------------------------------------
# (docs/subscriptions.md; services/subscriptions.py reads and writes, this decides.)

class PlanNotFound(NotFound):
    code = "plan_not_found"


class TrialUsed(Conflict):
    code = "trial_used"


class TrialNotOffered(InvalidRequest):
    code = "trial_not_offered"


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"


class AnotherPlanActive(Conflict):
    """A member holds one paid plan at a time: buying B while A runs would overwrite
    `paid_plan` and lose A's remaining time."""

    code = "another_plan_active"


class SubscriptionRequest(ApiModel):
    """Buy, extend or start the trial of a paid plan: pay by a provider or from balance."""

    plan_id: PlanId = Field(alias="planId")
    term: Term
    payment_reference: Reference | None = Field(
        alias="paymentReference", default=None,
        description="The provider's transaction id, verified for the term's exact price")
    channel: PaymentChannel | None = Field(
        default=None, description="Payment channel of paymentReference, e.g. wechat_pay")
    pay_with: Literal["balance"] | None = Field(
        alias="payWith", default=None, description="'balance': pay from stored value")

    @model_validator(mode="after")
    def _one_way_to_pay(self) -> SubscriptionRequest:
        if self.term == "trial":
            if self.payment_reference is not None or self.pay_with is not None:
                raise ValueError("a trial is free: give neither paymentReference nor payWith")
            return self
        if (self.payment_reference is None) == (self.pay_with is None):
            raise ValueError("give exactly one of paymentReference and payWith")
        if self.payment_reference is not None and self.channel is None:
            raise ValueError("paymentReference needs its channel")
        if self.pay_with is not None and self.channel is not None:
            raise ValueError("channel belongs to paymentReference")
        return self


class AutoRenewRequest(ApiModel):
    auto_renew: StrictBool = Field(alias="autoRenew")


class BenefitsUsedView(ApiModel):
    coupon_discount: int = Field(alias="couponDiscount", description="fen")
    bonus_points: int = Field(alias="bonusPoints")
    plan_discount: int = Field(alias="planDiscount", description="fen")
    total: int = Field(description="fen saved: coupons, member price, bonus points' value")


class TermView(ApiModel):
    term_id: str = Field(alias="termId")
    plan_id: str = Field(alias="planId")
    term: Term
    price: int = Field(description="fen")
    paid_with: Literal["payment", "balance", "trial"] = Field(alias="paidWith")
    payment_reference: str | None = Field(alias="paymentReference")
    paid_at: str = Field(alias="paidAt")
    starts_at: str = Field(alias="startsAt")
    ends_at: str = Field(alias="endsAt")
    status: Literal["upcoming", "current", "ended", "refunded"]
    benefits_used: BenefitsUsedView = Field(alias="benefitsUsed")


class PurchaseResponse(ApiModel):
    subscription_id: str = Field(alias="subscriptionId")
    plan_id: str = Field(alias="planId")
    term: TermView
    extended: bool = Field(description="true: added after the active term; false: starts now")
    status: Status
    ends_at: str = Field(alias="endsAt", description="the end of the plan after this purchase")
    balance: BalanceOut | None = Field(description="stored value after paying from it")


class SubscriptionView(ApiModel):
    subscription_id: str | None = Field(alias="subscriptionId")
    plan_id: str | None = Field(alias="planId")
    plan_name: str | None = Field(alias="planName")
    status: Status | None = Field(description="derived at read time; null: never subscribed")
    started_at: str | None = Field(alias="startedAt")
    ends_at: str | None = Field(alias="endsAt")
    auto_renew: bool = Field(alias="autoRenew")
    next_renewal_on: str | None = Field(alias="nextRenewalOn",
                                        description="YYYY-MM-DD, program time zone")
    trial_used: bool = Field(alias="trialUsed")
    saved_this_term: BenefitsUsedView = Field(alias="savedThisTerm")
    next_term: int | None = Field(alias="nextTerm", description=(
        "The number the next term of this plan gets: the <n> of a provider payment's plan "
        "attach (docs/payments.md); null when no plan is shown"))
    terms: list[TermView]


class Purchase(BaseModel):
    """A term as the purchase posting writes it (storage keeps it as one record)."""

    model_config = ConfigDict(frozen=True)

    record: TermRecord
    member_id: str
    subscription_id: str
    seq: int
    paid_with: Literal["payment", "balance", "trial"]
    payment_reference: str | None = None
    channel: str | None = None
    paid_principal: int = 0
    paid_bonus: int = 0
    extended: bool
    benefits: BenefitsUsed = Field(default_factory=BenefitsUsed)


def subscription_id_for(member_id: str, plan_id: str) -> str:
    """A member's run of one plan; names both, so a refund or charge needs no index."""
    return f"{member_id}.{plan_id}"


def term_id_for(subscription_id: str, seq: int) -> str:
    return f"{subscription_id}.{seq:04d}"


def plan_of(program: Program, plan_id: str) -> PaidPlan:
    for plan in program.paid_plans:
        if plan.id == plan_id:
            return plan
    raise PlanNotFound(f"the program has no paid plan {plan_id!r}", planId=plan_id)


def term_status(t: TermRecord, now: datetime) -> str:
    if t.refunded_at is not None:
        return "refunded"
    if now < t.starts_at:
        return "upcoming"
    return "current" if now < t.ends_at else "ended"


def benefits_view(used: BenefitsUsed, program: Program) -> BenefitsUsedView:
    return BenefitsUsedView(couponDiscount=used.coupon_discount, bonusPoints=used.bonus_points,
                            planDiscount=used.plan_discount,
                            total=benefits_value(used, program))


def term_view(p: Purchase, program: Program, now: datetime) -> TermView:
    tz, t = program.time_zone, p.record
    return TermView(termId=t.term_id, planId=t.plan_id, term=t.term, price=t.price,
                    paidWith=p.paid_with, paymentReference=p.payment_reference,
                    paidAt=calendar.wire(t.paid_at, tz), startsAt=calendar.wire(t.starts_at, tz),
                    endsAt=calendar.wire(t.ends_at, tz), status=term_status(t, now),
                    benefitsUsed=benefits_view(p.benefits, program))


def apply_purchase(builder: PostingBuilder, program: Program, request: SubscriptionRequest,
                   terms: list[Purchase]) -> Purchase:
    """The purchase posting's legs: the balance debit (if any), the member's paid plan, the
    answer and the event. `terms` are the member's terms of this plan, read in this attempt."""
    now, tz = builder.now, program.time_zone
    member = builder.member
    ensure_may_spend(member, "plan_purchase")
    plan = plan_of(program, request.plan_id)
    held = member.paid_plan
    if held is not None and held.plan_id != plan.id and is_active(held.ends_at, now):
        raise AnotherPlanActive(
            f"plan {held.plan_id} is active until its end; buy it again or wait for it to end",
            planId=plan.id, activePlanId=held.plan_id)
    records = [p.record for p in terms]
    if request.term == "trial":
        if plan.trial_days == 0:
            raise TrialNotOffered(f"plan {plan.id} offers no trial", planId=plan.id)
        if trial_used(records, plan.id):
            raise TrialUsed("a trial is once per member, and this member has had it",
                            planId=plan.id)
    price = term_price(plan, request.term)
    current = latest_term(records)
    span = next_term(plan, request.term, now=now, tz=tz, current=current)
    subscription_id = subscription_id_for(member.member_id, plan.id)
    seq = max((p.seq for p in terms), default=0) + 1
    record = TermRecord(term_id=term_id_for(subscription_id, seq), plan_id=plan.id,
                        term=request.term, price=price, paid_at=now, starts_at=span.starts_at,
                        ends_at=span.ends_at, anchor=span.anchor,
                        months_from_anchor=span.months_from_anchor)
    principal = bonus = 0
    if request.pay_with == "balance":
        principal, bonus = builder.debit_balance(price, reason="plan_purchase")
    paid_with = ("trial" if request.term == "trial"
                 else "balance" if request.pay_with == "balance" else "payment")
    purchase = Purchase(record=record, member_id=member.member_id,
                        subscription_id=subscription_id, seq=seq, paid_with=paid_with,
                        payment_reference=request.payment_reference, channel=request.channel,
                        paid_principal=principal, paid_bonus=bonus, extended=span.extends)
    run_start = (member.paid_plan.started_at
                 if span.extends and member.paid_plan is not None
                 and member.paid_plan.plan_id == plan.id else span.starts_at)
    builder.set(paid_plan=PaidPlanState(plan_id=plan.id, started_at=run_start,
                                        ends_at=span.ends_at))
    after = builder.member
    status = status_of([*records, record], now)
    view = PurchaseResponse(
        subscriptionId=subscription_id, planId=plan.id,
        term=term_view(purchase, program, now), extended=span.extends, status=status,
        endsAt=calendar.wire(span.ends_at, tz),
        balance=balance_of(after) if request.pay_with == "balance" else None)
    builder.result = view.model_dump(mode="json", by_alias=True) | {
        "memberId": member.member_id}
    builder.emit("subscription.renewed" if span.extends else "subscription.started", {
        "memberId": member.member_id, "subscriptionId": subscription_id, "planId": plan.id,
        "termId": record.term_id, "term": request.term, "price": price, "paidWith": paid_with,
        "paymentReference": request.payment_reference,
        "startsAt": calendar.wire(span.starts_at, tz), "endsAt": calendar.wire(span.ends_at, tz),
        "occurredAt": calendar.wire(now, tz),
    })
    return purchase


def subscription_view(program: Program, plan_id: str | None, terms: list[Purchase],
                      auto_renew: bool, now: datetime) -> SubscriptionView:
    """GET /v1/members/me/subscriptions: status, dates and savings derived at read time."""
    tz = program.time_zone
    records = [p.record for p in terms]
    ends_at = plan_ends_at(records)
    current = current_term(records, now)
    saved = next((p.benefits for p in terms if current and p.record.term_id == current.term_id),
                 BenefitsUsed())
    plan = next((p for p in program.paid_plans if p.id == plan_id), None)
    renewal = next_renewal_on(ends_at, auto_renew=auto_renew, now=now, tz=tz)
    live = [t for t in records if t.refunded_at is None and t.ends_at == ends_at]
    run_start = None
    if live:  # walk back over contiguous terms to the start of the run
        run_start = live[0].starts_at
        by_end = {t.ends_at: t for t in records if t.refunded_at is None}
        while (prev := by_end.get(run_start - calendar.LAST_MICROSECOND)) is not None:
            run_start = prev.starts_at
    return SubscriptionView(
        subscriptionId=terms[0].subscription_id if terms else None, planId=plan_id,
        planName=plan.name if plan else None, status=status_of(records, now),
        startedAt=calendar.wire(run_start, tz), endsAt=calendar.wire(ends_at, tz),
        autoRenew=auto_renew, nextRenewalOn=renewal.isoformat() if renewal else None,
        trialUsed=trial_used(records, plan_id) if plan_id else False,
        savedThisTerm=benefits_view(saved, program),
        nextTerm=max((p.seq for p in terms), default=0) + 1 if plan_id else None,
        terms=[term_view(p, program, now)
               for p in sorted(terms, key=lambda p: p.seq, reverse=True)])
