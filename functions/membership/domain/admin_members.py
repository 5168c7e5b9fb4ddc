"""The operator's view of one member: everything a service desk needs on one screen.

Unlike the member's own profile, it shows the full phone number (operators verify a
caller with it), the lots, open holds, latest entries and the audit trail. Coupons are
counted by status (`coupons`); tags join as a section when that capability lands.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import Field

from membership.domain import calendar
from membership.domain.coupons import CouponSummary
from membership.domain.ledger import Entry, Hold, LedgerState, Lot
from membership.domain.members import (
    ApiModel,
    BalanceView,
    BenefitView,
    DebtsView,
    NextTier,
    PaidPlanView,
    is_stored_value_member,
    member_benefits,
)
from membership.domain.program import Program


class StatusView(ApiModel):
    status: str
    reason: str | None
    changed_at: str | None = Field(alias="changedAt")


class ContactView(ApiModel):
    phone: str = Field(description="Full E.164 number: operators only")
    nickname: str
    channel: str
    store_id: str | None = Field(alias="storeId")
    referral_code: str | None = Field(alias="referralCode")
    created_at: str = Field(alias="createdAt")


class TierView(ApiModel):
    id: str
    name: str
    since: str


class GrowthDetail(ApiModel):
    rolling_12_months: int = Field(alias="rolling12Months")
    months: dict[str, int] = Field(description="Growth per calendar month (program time zone)")


class LotView(ApiModel):
    lot_id: str = Field(alias="lotId")
    remaining: int
    expires_at: str = Field(alias="expiresAt")
    pending: bool
    available_at: str | None = Field(alias="availableAt")


class PointsDetail(ApiModel):
    available: int
    pending: int
    lots: list[LotView]


class HoldSummary(ApiModel):
    hold_id: str = Field(alias="holdId")
    points: int
    balance: BalanceView
    created_at: str = Field(alias="createdAt")
    expires_at: str = Field(alias="expiresAt")


class EntrySummary(ApiModel):
    entry_id: str = Field(alias="entryId")
    asset: str
    bucket: str
    amount: int
    balance_after: int = Field(alias="balanceAfter")
    source_type: str = Field(alias="sourceType")
    reason: str
    actor: str
    created_at: str = Field(alias="createdAt")


class AuditView(ApiModel):
    action: str
    actor: str
    at: str
    reason: str | None
    details: dict


class AdminMemberView(ApiModel):
    member_id: str = Field(alias="memberId")
    subject: str
    status: StatusView
    contact: ContactView
    tier: TierView
    next_tier: NextTier | None = Field(alias="nextTier")
    growth: GrowthDetail
    points: PointsDetail
    balance: BalanceView
    debts: DebtsView = Field(description="Value owed back, paid first by later credits")
    stored_value_member: bool = Field(alias="storedValueMember")
    topup_total: int = Field(alias="topupTotal")
    benefits: list[BenefitView]
    paid_plan: PaidPlanView | None = Field(alias="paidPlan")
    open_holds: list[HoldSummary] = Field(alias="openHolds")
    last_entries: list[EntrySummary] = Field(alias="lastEntries")
    audit_trail: list[AuditView] = Field(alias="auditTrail")
    coupons: CouponSummary = Field(default_factory=CouponSummary,
                                   description="The member's coupons by status, derived now")


class MemberMatch(ApiModel):
    member_id: str = Field(alias="memberId")
    phone: str
    nickname: str
    tier: str
    status: str


class MemberSearch(ApiModel):
    members: list[MemberMatch]


def _lot(lot: Lot, tz: str) -> LotView:
    return LotView(lotId=lot.lot_id, remaining=lot.remaining,
                   expiresAt=calendar.wire(lot.expires_at, tz), pending=lot.pending,
                   availableAt=calendar.wire(lot.available_at, tz))


def _hold(hold: Hold, tz: str) -> HoldSummary:
    return HoldSummary(holdId=hold.hold_id, points=hold.points,
                       balance=BalanceView(principal=hold.principal, bonus=hold.bonus,
                                           total=hold.principal + hold.bonus),
                       createdAt=calendar.wire(hold.created_at, tz),
                       expiresAt=calendar.wire(hold.expires_at, tz))


def _entry(e: Entry, tz: str) -> EntrySummary:
    return EntrySummary(entryId=e.entry_id, asset=e.asset, bucket=e.bucket, amount=e.amount,
                        balanceAfter=e.balance_after, sourceType=e.source_type,
                        reason=e.reason, actor=e.actor,
                        createdAt=calendar.wire(e.created_at, tz))


def admin_view_of(state: LedgerState, entries: list[Entry], audit: list[AuditView],
                  program: Program, now: datetime,
                  coupons: CouponSummary | None = None) -> AdminMemberView:
    m = state.member
    tz = program.time_zone
    tier = program.tier(m.tier_id)
    rolling = m.rolling_growth(calendar.month_of(now, tz))
    nxt = program.next_tier(tier.id)
    plan = None
    if m.paid_plan is not None:
        plan = PaidPlanView(planId=m.paid_plan.plan_id,
                            endsAt=calendar.wire(m.paid_plan.ends_at, tz),
                            active=m.paid_plan.ends_at > now)
    lots = sorted(state.lots, key=lambda lot: (lot.expires_at, lot.lot_id))
    return AdminMemberView(
        memberId=m.member_id, subject=m.subject,
        status=StatusView(status=m.status, reason=m.status_reason,
                          changedAt=calendar.wire(m.status_changed_at, tz)),
        contact=ContactView(phone=m.phone, nickname=m.nickname, channel=m.channel,
                            storeId=m.store_id, referralCode=m.referral_code,
                            createdAt=calendar.wire(m.created_at, tz)),
        tier=TierView(id=tier.id, name=tier.name, since=calendar.wire(m.tier_since, tz)),
        nextTier=None if nxt is None else NextTier(
            id=nxt.id, name=nxt.name, growthNeeded=max(nxt.threshold - rolling, 0)),
        growth=GrowthDetail(rolling12Months=rolling,
                            months={k: v for k, v in sorted(m.growth_months.items()) if v}),
        points=PointsDetail(available=m.points_available, pending=m.points_pending,
                            lots=[_lot(lot, tz) for lot in lots]),
        balance=BalanceView(principal=m.balance_principal, bonus=m.balance_bonus,
                            total=m.balance_principal + m.balance_bonus),
        debts=DebtsView(points=m.points_debt, bonus=m.bonus_debt),
        storedValueMember=is_stored_value_member(m, program), topupTotal=m.topup_total,
        benefits=[BenefitView(code=b.code, name=b.name)
                  for b in member_benefits(m, program, now)],
        paidPlan=plan,
        openHolds=[_hold(h, tz) for h in state.holds if h.status == "held"],
        lastEntries=[_entry(e, tz) for e in entries],
        auditTrail=audit,
        coupons=coupons or CouponSummary(),
    )
