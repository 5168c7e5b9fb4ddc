"""Metric counters: sharded, updated inside the transactions that cause them.

PK                  SK              item
METRICS#<period>    COUNTER#<nn>    ADD-only counters of one month (one of 16 shards)

A posting adds to the shard its order (or member) hashes to, so no counter item is hot;
reading a month is one Query of its 16 items.
"""
from __future__ import annotations

from pynamodb.attributes import NumberAttribute

from membership.domain.metrics import Flows
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

    @staticmethod
    def key(period: str, shard: int) -> tuple[str, str]:
        return f"METRICS#{period}", f"COUNTER#{shard:02d}"


def counter_add(period: str, shard_key: str, **amounts: int) -> ExtraItem:
    """An ADD to one shard of the period's counters, for a posting's transaction."""
    item = CounterItem(*CounterItem.key(period, hash_shard(shard_key, COUNTER_SHARDS)))
    actions = [getattr(CounterItem, name).add(value) for name, value in amounts.items()]
    return ExtraItem(model=item, condition=None, on_condition_failed=Retry, actions=actions)


def flows(period: str) -> Flows:
    totals = dict.fromkeys(Flows.model_fields, 0)
    for item in CounterItem.query(f"METRICS#{period}", CounterItem.SK.startswith("COUNTER#"),
                                  consistent_read=True):
        for name in totals:
            totals[name] += int(getattr(item, name) or 0)
    return Flows(**totals)
