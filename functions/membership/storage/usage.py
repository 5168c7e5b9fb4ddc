"""Sharded usage counters: how many members use a program resource, without a scan.

PK                          SK            item
USAGE#<kind>#<resourceId>   SHARD#<nn>    members of shard nn using it (count), retired flag

A resource of the program (a tier, a paid plan's active runs of terms; later a coupon
template's live instances) is counted by the same transaction that starts or stops a
member using it, in the shard of that member, so no item takes every write and a
member's increments and decrements always meet in one shard (a shard never goes below 0).

Removing a resource from the program is safe against a concurrent first use: the
program's PUT marks every shard `retired` under the condition that its count is 0, and
an increment is conditioned on the shard not being retired. Whichever commits first
wins; the other is refused and nothing is stranded, even while running functions still
hold the previous program in their cache.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.transactions import TransactWrite

from membership.storage.models import hash_shard
from membership.storage.table import TableModel

USAGE_SHARDS = 16
TIER = "tier"
PLAN = "plan"  # members with an active run of a paid plan's terms (storage/subscriptions.py)


def usage_pk(kind: str, resource_id: str) -> str:
    return f"USAGE#{kind}#{resource_id}"


class UsageShardItem(TableModel):
    kind = UnicodeAttribute()
    resource_id = UnicodeAttribute(attr_name="resourceId")
    count = NumberAttribute(default=0)
    retired = BooleanAttribute(null=True)

    @staticmethod
    def key(kind: str, resource_id: str, shard: int) -> tuple[str, str]:
        return usage_pk(kind, resource_id), f"SHARD#{shard:02d}"


def shard_of(member_id: str) -> int:
    return hash_shard(member_id, USAGE_SHARDS)


@dataclass(frozen=True)
class UsageChange:
    """A member starts (+1) or stops (-1) using a resource, inside some transaction.

    `fenced`: a use that starts now is refused by a retired resource. False only for a
    catch-up that records a use begun before it was counted (it starts nothing).
    """

    kind: str
    resource_id: str
    member_id: str
    delta: int
    fenced: bool = True

    def update(self) -> tuple[UsageShardItem, list, object | None]:
        """The shard item, its actions and its condition (for a transaction's update)."""
        shard = shard_of(self.member_id)
        item = UsageShardItem(*UsageShardItem.key(self.kind, self.resource_id, shard))
        actions = [UsageShardItem.count.add(self.delta),
                   UsageShardItem.kind.set(self.kind),
                   UsageShardItem.resource_id.set(self.resource_id)]
        # Only a new use is refused by a retired resource; leaving one never is.
        fenced = self.fenced and self.delta > 0
        return item, actions, UsageShardItem.retired.does_not_exist() if fenced else None

    def add_to(self, t: TransactWrite) -> None:
        item, actions, condition = self.update()
        t.update(item, actions=actions, condition=condition)


def tier_changes(member_before_tier: str | None, member_after_tier: str,
                 member_id: str) -> tuple[UsageChange, ...]:
    """The counter moves of a posting: None before means a new member."""
    if member_before_tier == member_after_tier:
        return ()
    changes = [UsageChange(TIER, member_after_tier, member_id, +1)]
    if member_before_tier is not None:
        changes.insert(0, UsageChange(TIER, member_before_tier, member_id, -1))
    return tuple(changes)


@dataclass(frozen=True)
class Usage:
    """What the shards of one resource say."""

    count: int
    retired_shards: tuple[int, ...]


def read_usage(kind: str, resource_id: str, *, consistent: bool = True) -> Usage:
    """One query over the resource's shards."""
    count, retired = 0, []
    for item in UsageShardItem.query(usage_pk(kind, resource_id), consistent_read=consistent):
        count += int(item.count or 0)
        if item.retired:
            retired.append(int(item.SK.removeprefix("SHARD#")))
    return Usage(count=count, retired_shards=tuple(sorted(retired)))


@dataclass(frozen=True)
class Fence:
    """A transaction item of the program's PUT that makes a usage check race-free."""

    kind: str
    resource_id: str
    shard: int
    retire: bool  # True: retire (needs count 0); False: bring a retired resource back
    on_failed: Callable[[], Exception]

    def add_to(self, t: TransactWrite) -> None:
        item = UsageShardItem(*UsageShardItem.key(self.kind, self.resource_id, self.shard))
        if self.retire:
            t.update(item, actions=[UsageShardItem.retired.set(True),
                                    UsageShardItem.kind.set(self.kind),
                                    UsageShardItem.resource_id.set(self.resource_id)],
                     condition=(UsageShardItem.count.does_not_exist()
                                | (UsageShardItem.count == 0)))
        else:
            t.update(item, actions=[UsageShardItem.retired.remove()])


def retire_fences(kind: str, resource_id: str,
                  on_failed: Callable[[], Exception]) -> list[Fence]:
    return [Fence(kind, resource_id, s, True, on_failed) for s in range(USAGE_SHARDS)]


def revive_fences(kind: str, resource_id: str, usage: Usage) -> list[Fence]:
    """Only the shards that are retired: a resource that comes back is usable again."""
    return [Fence(kind, resource_id, s, False, lambda: RuntimeError("unreachable"))
            for s in usage.retired_shards]


def stale_program_error() -> Exception:
    """A posting used a resource the program has just removed: its cached program is stale.

    The cache is dropped, so the retry (HTTP 503, an event redelivery) reads the new rules.
    """
    from membership.errors import Unavailable
    from membership.storage.program import forget_cached_program

    forget_cached_program()
    return Unavailable("the program changed while this request ran; try again",
                       reason="program_changed")
