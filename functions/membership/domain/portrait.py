"""The member portrait (画像): who the member is to the brand, from the member item and
the growth ledger alone (docs/tags.md).

RFM scores 1-5 come from the program's breakpoints (`Program.rfm`); category affinity is
each top category's share of net spend; the tier history is, month by month, the rolling
12-month growth the growth ledger shows at that month's end and the tier it qualifies for.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from membership.domain import calendar
from membership.domain.aggregates import OrderStats
from membership.domain.ledger import Entry
from membership.domain.members import Member, is_stored_value_member
from membership.domain.program import Program
from membership.domain.tag_rules import RfmBreakpoints
from membership.domain.tags import TagView, days_since, tag_views

HISTORY_MONTHS = 12


class View(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)


class Rfm(View):
    recency: int = Field(description="1-5; 1 also when the member never ordered")
    frequency: int
    monetary: int
    recency_days: int | None = Field(alias="recencyDays")
    orders_12_months: int = Field(alias="orders12Months")
    spend_12_months: int = Field(alias="spend12Months", description="fen, net of refunds")


class CategoryShare(View):
    category: str
    spend: int = Field(description="fen, net of refunds")
    share_bps: int = Field(alias="shareBps", description="of the net spend of the top categories")


class TierMonth(View):
    month: str
    rolling_growth: int = Field(alias="rollingGrowth")
    qualified_tier: str = Field(alias="qualifiedTier")


class OrdersView(View):
    count: int
    net_spend: int = Field(alias="netSpend")
    first_order_at: str | None = Field(alias="firstOrderAt")
    last_order_at: str | None = Field(alias="lastOrderAt")
    stores: list[str]
    complete: bool = Field(description="false: orders before the aggregates existed are not "
                                       "counted yet (run the backfill)")


class AssetsView(View):
    balance_principal: int = Field(alias="balancePrincipal")
    balance_bonus: int = Field(alias="balanceBonus")
    points_available: int = Field(alias="pointsAvailable")
    points_pending: int = Field(alias="pointsPending")
    rolling_growth: int = Field(alias="rollingGrowth")
    paid_plan: str | None = Field(alias="paidPlan", description="the active plan, if any")
    paid_plan_ends_at: str | None = Field(alias="paidPlanEndsAt")
    stored_value_member: bool = Field(alias="storedValueMember")


class Portrait(View):
    member_id: str = Field(alias="memberId")
    channel: str
    store_id: str | None = Field(alias="storeId")
    joined_at: str = Field(alias="joinedAt")
    tier: str
    tier_since: str = Field(alias="tierSince")
    marketing_consent: bool = Field(alias="marketingConsent")
    rfm: Rfm
    category_affinity: list[CategoryShare] = Field(alias="categoryAffinity")
    orders: OrdersView
    tier_history: list[TierMonth] = Field(alias="tierHistory")
    assets: AssetsView
    tags: list[TagView]


def _rising(value: int, breakpoints) -> int:
    """1 below the first breakpoint, +1 for each one reached: 5 at the last."""
    return 1 + sum(1 for b in breakpoints if value >= b)


def rfm_of(stats: OrderStats, rfm: RfmBreakpoints, now: datetime, tz: str) -> Rfm:
    window = calendar.rolling_months(calendar.month_of(now, tz))
    orders, spend = stats.orders_in(window), stats.spend_in(window)
    days = None if stats.last_order_at is None else days_since(stats.last_order_at, now, tz)
    # Recency: the fewer days the better; at most breakpoints[0] days scores 5.
    recency = 1 if days is None else 5 - sum(1 for b in rfm.recency_days if days > b)
    return Rfm(recency=recency, frequency=_rising(orders, rfm.frequency),
               monetary=_rising(spend, rfm.monetary), recencyDays=days,
               orders12Months=orders, spend12Months=spend)


def category_affinity(stats: OrderStats) -> list[CategoryShare]:
    ranked = sorted(stats.categories.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(v for _, v in ranked)
    return [CategoryShare(category=c, spend=v, shareBps=v * 10_000 // total if total else 0)
            for c, v in ranked]


def tier_history(growth_entries: list[Entry], program: Program, now: datetime,
                 months: int = HISTORY_MONTHS) -> list[TierMonth]:
    """For each of the last `months` months (oldest first): the rolling growth the ledger
    held at the month's end, and the tier that growth qualifies for."""
    tz = program.time_zone
    current = calendar.month_of(now, tz)
    out = []
    for month in calendar.rolling_months(current, months):
        end = min(calendar.month_end(month, tz), now)
        window = set(calendar.rolling_months(month))
        rolling = sum(e.amount for e in growth_entries
                      if e.bucket in window and e.created_at <= end)
        out.append(TierMonth(month=month, rollingGrowth=rolling,
                             qualifiedTier=program.qualified_tier(rolling).id))
    return out


def portrait_of(member: Member, growth_entries: list[Entry], program: Program,
                now: datetime) -> Portrait:
    tz = program.time_zone
    stats = member.order_stats
    plan = member.paid_plan if member.paid_plan and member.paid_plan.ends_at > now else None
    return Portrait(
        memberId=member.member_id, channel=member.channel, storeId=member.store_id,
        joinedAt=calendar.wire(member.created_at, tz), tier=member.tier_id,
        tierSince=calendar.wire(member.tier_since, tz),
        marketingConsent=member.marketing_consent,
        rfm=rfm_of(stats, program.rfm, now, tz),
        categoryAffinity=category_affinity(stats),
        orders=OrdersView(count=stats.orders, netSpend=stats.net_spend,
                          firstOrderAt=calendar.wire(stats.first_order_at, tz),
                          lastOrderAt=calendar.wire(stats.last_order_at, tz),
                          stores=list(stats.stores), complete=stats.complete),
        tierHistory=tier_history(growth_entries, program, now),
        assets=AssetsView(
            balancePrincipal=member.balance_principal, balanceBonus=member.balance_bonus,
            pointsAvailable=member.points_available, pointsPending=member.points_pending,
            rollingGrowth=member.rolling_growth(calendar.month_of(now, tz)),
            paidPlan=plan.plan_id if plan else None,
            paidPlanEndsAt=calendar.wire(plan.ends_at, tz) if plan else None,
            storedValueMember=is_stored_value_member(member, program)),
        tags=tag_views(member.tags, tz),
    )
