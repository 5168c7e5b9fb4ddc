"""The program's metrics of a month (docs/metrics.md), as pure arithmetic.

Flows (orders and spend of members and guests, new members) come from sharded counters
that the postings causing them update in their own transaction; stocks (members, tiers,
liabilities, paid members) come from the monthly settlement's scan of that month. Nothing
here reads a table.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from membership.domain.checkout import EventModel, OrderAmounts, OrderId, Text
from membership.domain.instants import Instant
from membership.domain.program import FEN_PER_YUAN, Program

BPS = 10_000


class GuestOrderPaid(EventModel):
    """`order.paid` without `memberId`: a guest's order, which only counts (penetration)."""

    order_id: OrderId = Field(alias="orderId")
    store_id: Text | None = Field(alias="storeId", default=None)
    paid_at: Instant = Field(alias="paidAt")
    amounts: OrderAmounts

    @model_validator(mode="after")
    def _aware(self) -> GuestOrderPaid:
        if self.paid_at.tzinfo is None:
            raise ValueError("paidAt needs an offset")
        return self

    @property
    def spend(self) -> int:
        return self.amounts.cash_paid + self.amounts.balance_used


class Flows(BaseModel):
    """What the counters of a month add up to."""

    model_config = ConfigDict(frozen=True)

    member_orders: int = 0
    member_spend: int = 0
    guest_orders: int = 0
    guest_spend: int = 0
    new_members: int = 0


def ratio_bps(part: int, whole: int) -> int | None:
    return part * BPS // whole if whole else None


class Metrics(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    period: str
    stocks_from: str = Field(alias="stocksFrom", description="the settlement run's status, or "
                                                             "'none' before it ran")
    members: dict = Field(description="{total, new}")
    penetration: dict
    conversion: dict
    renewal: dict
    tiers: dict = Field(description="{distribution, retentionBps}")
    points: dict = Field(description="{available, pending, liability, cashValue, breakageBps}")
    stored_value: dict = Field(alias="storedValue", description="{principal, bonus}")
    paid_members: dict = Field(alias="paidMembers", description="{active}")


NOT_BUILT = "needs the paid-plan (PLUS) purchase flow, which is not built yet"


def metrics_of(period: str, flows: Flows, tally, program: Program, stocks_from: str
               ) -> Metrics:
    """`tally`: the settlement's Tally of the period (None before it ran)."""
    all_orders = flows.member_orders + flows.guest_orders
    all_spend = flows.member_spend + flows.guest_spend
    liability = None if tally is None else tally.points_available + tally.points_pending
    retention = None
    if tally is not None:
        retention = {t: ratio_bps(tally.tiers_kept.get(t, 0), n)
                     for t, n in sorted(tally.tiers_before.items())}
    return Metrics(
        period=period, stocksFrom=stocks_from,
        members={"total": None if tally is None else tally.processed,
                 "new": flows.new_members},
        penetration={"memberOrders": flows.member_orders, "allOrders": all_orders,
                     "ordersBps": ratio_bps(flows.member_orders, all_orders),
                     "memberSpend": flows.member_spend, "allSpend": all_spend,
                     "spendBps": ratio_bps(flows.member_spend, all_spend)},
        conversion={"bps": None, "note": NOT_BUILT},
        renewal={"bps": None, "note": NOT_BUILT},
        tiers={"distribution": None if tally is None else dict(sorted(tally.tiers_after.items())),
               "retentionBps": retention},
        points={"available": None if tally is None else tally.points_available,
                "pending": None if tally is None else tally.points_pending,
                "liability": liability,
                "cashValue": None if liability is None else
                liability * FEN_PER_YUAN // program.points.points_per_yuan_redeemed,
                "expired": None if tally is None else tally.points_expired,
                "breakageBps": None,
                "breakageNote": "points issued per month are not counted yet"},
        storedValue={"principal": None if tally is None else tally.balance_principal,
                     "bonus": None if tally is None else tally.balance_bonus},
        paidMembers={"active": None if tally is None else tally.paid_active},
    )
