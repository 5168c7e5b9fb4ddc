"""Metric counters: sharded, updated inside the transactions that cause them.

PK                  SK              item
METRICS#<period>    COUNTER#<nn>    ADD-only counters of one month (one of 16 shards)

A posting adds to the shard its order (or member) hashes to, so no counter item is hot;
reading a month is one Query of its 16 items. A transaction may name an item once, so a
posting's counters of one month go to one shard: `with_points_issued` adds the points a
posting issues to the shard of that month it already writes (a plain order stays at one
counter item), and only a posting that writes none gets one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pynamodb.attributes import NumberAttribute

from membership.domain.metrics import Flows, plan_flow
from membership.domain.subscriptions import TermRecord
from membership.storage.ledger import ExtraItem
from membership.storage.models import hash_shard
from membership.storage.table import Retry, TableModel

COUNTER_SHARDS = 16


class CounterItem(TableModel):
    member_orders = NumberAttribute(attr_name="memberOrders", default=0)
    member_spend = NumberAttribute(attr_name="memberSpend", default=0)
    guest_orders = NumberAttribute(attr_name="guestOrders", default=0)
    guest_spend = NumberAttribute(attr_name="guestSpend", default=0)
    new_members = NumberAttribute(attr_name="newMembers", default=0)
    points_issued = NumberAttribute(attr_name="pointsIssued", default=0)
    paid_starts = NumberAttribute(attr_name="paidStarts", default=0)
    renewals = NumberAttribute(default=0)

    @staticmethod
    def key(period: str, shard: int) -> tuple[str, str]:
        return f"METRICS#{period}", f"COUNTER#{shard:02d}"


@dataclass
class CounterAdd(ExtraItem):
    """An ADD to one shard of a month's counters; knows its month and amounts, so another
    count of the same month can join it (one item per month in a transaction)."""

    period: str = ""
    amounts: dict[str, int] = field(default_factory=dict)


def _add(period: str, model: CounterItem, amounts: dict[str, int]) -> CounterAdd:
    actions = [getattr(CounterItem, name).add(value) for name, value in amounts.items()]
    return CounterAdd(model=model, condition=None, on_condition_failed=Retry, actions=actions,
                      period=period, amounts=dict(amounts))


def counter_add(period: str, shard_key: str, **amounts: int) -> CounterAdd:
    """An ADD to one shard of the period's counters, for a posting's transaction."""
    item = CounterItem(*CounterItem.key(period, hash_shard(shard_key, COUNTER_SHARDS)))
    return _add(period, item, amounts)


def with_points_issued(extra: tuple[ExtraItem, ...], issued: dict[str, int],
                       shard_key: str) -> tuple[ExtraItem, ...]:
    """`extra` with the posting's issued points added to its counter shard of each month
    (joined to an ADD already there, else one more shard, chosen by `shard_key`)."""
    items = list(extra)
    for period, points in sorted(issued.items()):
        if not points:
            continue
        for i, item in enumerate(items):
            if isinstance(item, CounterAdd) and item.period == period:
                amounts = dict(item.amounts)
                amounts["points_issued"] = amounts.get("points_issued", 0) + points
                items[i] = _add(period, item.model, amounts)
                break
        else:
            items.append(counter_add(period, shard_key, points_issued=points))
    return tuple(items)


def plan_flow_add(term: TermRecord, terms: list[TermRecord], tz: str, shard_key: str,
                  sign: int = 1) -> tuple[ExtraItem, ...]:
    """A paid term's start or renewal (domain.metrics.plan_flow) counted by its purchase or
    charge, or taken back (sign -1) by its refund, in that posting's transaction; nothing
    for a trial."""
    flow = plan_flow(term, terms, tz)
    if flow is None:
        return ()
    name, period = flow
    return (counter_add(period, shard_key, **{name: sign}),)


def flows(period: str) -> Flows:
    totals = dict.fromkeys(Flows.model_fields, 0)
    for item in CounterItem.query(f"METRICS#{period}", CounterItem.SK.startswith("COUNTER#"),
                                  consistent_read=True):
        for name in totals:
            totals[name] += int(getattr(item, name) or 0)
    return Flows(**totals)
