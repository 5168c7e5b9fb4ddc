"""The program's metrics of a month (docs/metrics.md), as pure arithmetic.

Flows (orders and spend of members and guests, new members, points issued, paid plans
started and renewed) come from sharded counters that the postings causing them update in
their own transaction; stocks (members, tiers, liabilities, paid members, the paid terms
that ended) come from the monthly settlement's scan of that month. Nothing here reads a
table.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from membership.domain import calendar
from membership.domain.checkout import EventModel, OrderAmounts, OrderId, Text
from membership.domain.instants import Instant
from membership.domain.program import FEN_PER_YUAN, Program
from membership.domain.subscriptions import TermRecord

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
    points_issued: int = 0
    paid_starts: int = 0
    renewals: int = 0


def ratio_bps(part: int | None, whole: int | None) -> int | None:
    """Basis points rounded down; None when either side is unknown or the whole is 0."""
    if part is None or not whole:
        return None
    return part * BPS // whole


# ---- paid plans: which counter a paid term moves ------------------------------------------

def continued_term(terms: list[TermRecord], term: TermRecord) -> TermRecord | None:
    """The unrefunded term `term` continues: the one that ends the microsecond before it
    starts (a term bought or charged while the plan was active extends from its end)."""
    for t in terms:
        if (t.term_id != term.term_id and t.refunded_at is None
                and t.ends_at + calendar.LAST_MICROSECOND == term.starts_at):
            return t
    return None


def plan_flow(term: TermRecord, terms: list[TermRecord], tz: str) -> tuple[str, str] | None:
    """The counter a paid term moves, and its month: ("renewals", month the continued paid
    term ends) when it continues a paid term, else ("paid_starts", month it starts): a
    member without a paid term before it starts paying (a trial is free, so the first paid
    term after a trial starts paying when the trial ends). A trial counts for neither.

    `terms` are the member's terms of the plan (the term itself may be among them). Its
    purchase (or charge) counts it; its refund takes it back: terms are refunded newest
    first, so the term it continued is still unrefunded then and the answer is the same.
    """
    if term.term == "trial":
        return None
    before = continued_term(terms, term)
    if before is not None and before.term != "trial":
        return "renewals", calendar.month_of(before.ends_at, tz)
    return "paid_starts", calendar.month_of(term.starts_at, tz)


class Metrics(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    period: str
    stocks_from: str = Field(alias="stocksFrom", description="the settlement run's status, or "
                                                             "'none' before it ran")
    members: dict = Field(description="{total, new}")
    penetration: dict
    conversion: dict = Field(description=(
        "{bps, paidStarts, freeAtStart}: members who started paying in the month (counter) "
        "÷ open members without a paid term at the previous month's close (its completed "
        "settlement; null before)"))
    renewal: dict = Field(description=(
        "{bps, renewed, ended}: paid terms ending in the month that a next paid term "
        "continued (counter) ÷ paid terms ending in the month (the month's settlement)"))
    tiers: dict = Field(description="{distribution, retentionBps}")
    points: dict = Field(description="{available, pending, liability, cashValue, issued, "
                                     "expired, breakageBps}: breakage = the month's expired "
                                     "÷ the month's issued")
    stored_value: dict = Field(alias="storedValue", description="{principal, bonus}")
    paid_members: dict = Field(alias="paidMembers", description=(
        "{active, paying}: plan covering the close (a trial included), and a paid term "
        "covering it (trials not)"))


def metrics_of(period: str, flows: Flows, tally, program: Program, stocks_from: str,
               previous=None) -> Metrics:
    """`tally`: the settlement's Tally of the period (None before it ran); `previous`: the
    Tally of the month before, from its completed run (None otherwise)."""
    all_orders = flows.member_orders + flows.guest_orders
    all_spend = flows.member_spend + flows.guest_spend
    liability = None if tally is None else tally.points_available + tally.points_pending
    retention = None
    if tally is not None:
        retention = {t: ratio_bps(tally.tiers_kept.get(t, 0), n)
                     for t, n in sorted(tally.tiers_before.items())}
    free = None if previous is None else previous.free_at_close
    ended = None if tally is None else tally.terms_ended
    expired = None if tally is None else tally.points_expired
    return Metrics(
        period=period, stocksFrom=stocks_from,
        members={"total": None if tally is None else tally.processed,
                 "new": flows.new_members},
        penetration={"memberOrders": flows.member_orders, "allOrders": all_orders,
                     "ordersBps": ratio_bps(flows.member_orders, all_orders),
                     "memberSpend": flows.member_spend, "allSpend": all_spend,
                     "spendBps": ratio_bps(flows.member_spend, all_spend)},
        conversion={"bps": ratio_bps(flows.paid_starts, free),
                    "paidStarts": flows.paid_starts, "freeAtStart": free},
        renewal={"bps": ratio_bps(flows.renewals, ended), "renewed": flows.renewals,
                 "ended": ended},
        tiers={"distribution": None if tally is None else dict(sorted(tally.tiers_after.items())),
               "retentionBps": retention},
        points={"available": None if tally is None else tally.points_available,
                "pending": None if tally is None else tally.points_pending,
                "liability": liability,
                "cashValue": None if liability is None else
                liability * FEN_PER_YUAN // program.points.points_per_yuan_redeemed,
                "issued": flows.points_issued,
                "expired": expired,
                "breakageBps": ratio_bps(expired, flows.points_issued)},
        storedValue={"principal": None if tally is None else tally.balance_principal,
                     "bonus": None if tally is None else tally.balance_bonus},
        paidMembers={"active": None if tally is None else tally.paid_active,
                     "paying": None if tally is None else tally.paying_at_close},
    )
