"""Order aggregates kept on the member item (docs/tags.md), as pure rules.

`order.paid` and `order.refunded` fold one order into the member's `OrderStats` inside
their own posting, so knowing a member costs no extra write. Spend is what the member
paid (cash + stored value, the base of growth and points), net of refunds; a refund takes
back each line's share with the same cumulative rounding the ledger uses, so a full refund
takes back exactly what the order added.

The functions take a settlement duck-typed (domain.checkout.Settlement: `lines` with
`balance`, `cash`, `quantity`, `refunded_quantity`, `category`; `paid_at`, `store_id`,
`growth_month`), so this module imports nothing but the calendar.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from membership.domain import calendar

TOP_CATEGORIES = 10
MAX_STORES = 20
MONTHS_KEPT = 13  # the rolling 12 months, plus the one a late refund may still touch


class OrderStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    # True once every paid order of the member is counted: members who signed up with
    # aggregates in place, or whom the backfill recomputed. False: only orders since.
    complete: bool = False
    orders: int = Field(default=0, description="paid orders not fully refunded")
    net_spend: int = Field(default=0, description="fen paid, net of refunds")
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    categories: dict[str, int] = Field(default_factory=dict,
                                       description="net spend by category, top 10")
    stores: tuple[str, ...] = ()  # sorted; the first 20
    order_months: dict[str, int] = Field(default_factory=dict)
    spend_months: dict[str, int] = Field(default_factory=dict)

    def orders_in(self, months: Iterable[str]) -> int:
        return sum(self.order_months.get(m, 0) for m in months)

    def spend_in(self, months: Iterable[str]) -> int:
        return sum(self.spend_months.get(m, 0) for m in months)

    def top_categories(self, count: int = 3) -> list[str]:
        ranked = sorted(self.categories.items(), key=lambda kv: (-kv[1], kv[0]))
        return [name for name, spend in ranked[:count] if spend > 0]


def _share(amount: int, done: int, quantity: int) -> int:
    # domain.checkout.share_through: the same rounding, so refunds add up to the order.
    return amount * done // quantity


def _line_paid(line) -> int:
    return line.balance + line.cash


def _keep_top(categories: dict[str, int]) -> dict[str, int]:
    live = {k: v for k, v in categories.items() if v > 0}
    ranked = sorted(live.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CATEGORIES]
    return dict(ranked)


def _prune(months: dict[str, int], now_month: str) -> dict[str, int]:
    oldest = calendar.shift_month(now_month, -(MONTHS_KEPT - 1))
    return {m: v for m, v in sorted(months.items()) if m >= oldest and v > 0}


def order_paid(stats: OrderStats, settlement, *, now: datetime, tz: str) -> OrderStats:
    """One more paid order."""
    paid = sum(_line_paid(line) for line in settlement.lines)
    categories = dict(stats.categories)
    for line in settlement.lines:
        if line.category and _line_paid(line):
            categories[line.category] = categories.get(line.category, 0) + _line_paid(line)
    stores = stats.stores
    if settlement.store_id and settlement.store_id not in stores:
        stores = tuple(sorted((*stores, settlement.store_id)))[:MAX_STORES]
    month = settlement.growth_month
    orders_m = dict(stats.order_months)
    spend_m = dict(stats.spend_months)
    orders_m[month] = orders_m.get(month, 0) + 1
    spend_m[month] = spend_m.get(month, 0) + paid
    paid_at = calendar.utc(settlement.paid_at)
    now_month = max(calendar.month_of(now, tz), month)
    return stats.model_copy(update={
        "orders": stats.orders + 1,
        "net_spend": stats.net_spend + paid,
        "first_order_at": min(filter(None, (stats.first_order_at, paid_at))),
        "last_order_at": max(filter(None, (stats.last_order_at, paid_at))),
        "categories": _keep_top(categories),
        "stores": stores,
        "order_months": _prune(orders_m, now_month),
        "spend_months": _prune(spend_m, now_month),
    })


def fully_refunded(settlement) -> bool:
    return all(line.refunded_quantity >= line.quantity for line in settlement.lines)


def order_refunded(stats: OrderStats, before, after, *, now: datetime, tz: str) -> OrderStats:
    """A refund moved `before` (the settlement as it was) to `after`."""
    taken = 0
    categories = dict(stats.categories)
    for old, new in zip(before.lines, after.lines):
        paid = _line_paid(old)
        share = (_share(paid, new.refunded_quantity, old.quantity)
                 - _share(paid, old.refunded_quantity, old.quantity))
        taken += share
        if share and old.category in categories:
            categories[old.category] = max(categories[old.category] - share, 0)
    month = before.growth_month
    orders_m = dict(stats.order_months)
    spend_m = dict(stats.spend_months)
    closed = fully_refunded(after) and not fully_refunded(before)
    if month in spend_m:
        spend_m[month] = max(spend_m[month] - taken, 0)
    if closed and month in orders_m:
        orders_m[month] = max(orders_m[month] - 1, 0)
    now_month = calendar.month_of(now, tz)
    return stats.model_copy(update={
        "orders": max(stats.orders - (1 if closed else 0), 0),
        "net_spend": max(stats.net_spend - taken, 0),
        "categories": _keep_top(categories),
        "order_months": _prune(orders_m, now_month),
        "spend_months": _prune(spend_m, now_month),
    })


def recompute(settlements: Iterable, *, now: datetime, tz: str) -> OrderStats:
    """The aggregates from a member's orders as they stand now (the backfill, the tests):
    each order's paid amount less what its refunds took, line by line."""
    stats = OrderStats(complete=True)
    categories: dict[str, int] = {}
    stores: list[str] = []
    orders_m: dict[str, int] = {}
    spend_m: dict[str, int] = {}
    first = last = None
    orders = spend = 0
    for s in sorted(settlements, key=lambda s: (calendar.utc(s.paid_at), s.order_id)):
        net = 0
        for line in s.lines:
            left = _line_paid(line) - _share(_line_paid(line), line.refunded_quantity,
                                             line.quantity)
            net += left
            if line.category and left:
                categories[line.category] = categories.get(line.category, 0) + left
        paid_at = calendar.utc(s.paid_at)
        first = paid_at if first is None else min(first, paid_at)
        last = paid_at if last is None else max(last, paid_at)
        if s.store_id and s.store_id not in stores:
            stores.append(s.store_id)
        spend += net
        spend_m[s.growth_month] = spend_m.get(s.growth_month, 0) + net
        if not fully_refunded(s):
            orders += 1
            orders_m[s.growth_month] = orders_m.get(s.growth_month, 0) + 1
    now_month = calendar.month_of(now, tz)
    return stats.model_copy(update={
        "orders": orders, "net_spend": spend, "first_order_at": first,
        "last_order_at": last, "categories": _keep_top(categories),
        "stores": tuple(sorted(stores))[:MAX_STORES],
        "order_months": _prune(orders_m, now_month), "spend_months": _prune(spend_m, now_month),
    })


def with_categories(settlement, lines):
    """The settlement with each line's category (from the order event's lines)."""
    category = {line.line_id: line.category for line in lines}
    return settlement.model_copy(update={"lines": tuple(
        line.model_copy(update={"category": category.get(line.line_id)})
        for line in settlement.lines)})
