"""The paid plan's daily schedule in the table: a sparse, sharded index of due subscriptions.

PK            SK                      GSI1PK (while it owes something)  GSI1SK
MEMBER#<id>   SUBSCRIPTION#<planId>   PLUSDUE#<shard>                   <YYYY-MM-DD>#<memberId>#<planId>

The subscription item (storage/subscriptions.py) carries the local date of the next thing
it owes (a pack, a renewal notice, a lapse) as GSI1 keys, next to the holds' and pending
lots' due-work entries (HOLDS, PENDING, TAG never collide with PLUSDUE). A day's run is
one Query per shard for `GSI1SK <= '<today>#~'`, keys only: it reads the due
subscriptions, never the others, and dates in the past (missed days) come with it. A
subscription that owes nothing more leaves the index (GSI1 keys removed).

A visit's writes ride in its ledger posting (one transaction): the subscription item's
state, visit count and next due keys, conditional on the visit count and term count read,
and a guard item per thing it did (each pack, notice, lapse), the first of them being the
posting's source key.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from membership.domain.subscription_schedule import DailyWork, ScheduleState, visit_guards
from membership.storage.ledger import ExtraItem
from membership.storage.models import DUE_SHARDS, DueItem, GuardItem, hash_shard
from membership.storage.subscriptions import SubscriptionItem
from membership.storage.table import Retry

DUE_PLUS = "PLUSDUE"  # GSI1PK prefix: subscriptions by the next local date they owe something


class ScheduleMoved(Exception):
    """The subscription item changed since it was read: read it again."""


def due_keys(member_id: str, plan_id: str, day: date | None) -> tuple[str, str] | None:
    if day is None:
        return None
    return (f"{DUE_PLUS}#{hash_shard(member_id, DUE_SHARDS)}",
            f"{day.isoformat()}#{member_id}#{plan_id}")


def due_subscriptions(on: date, shards: int = DUE_SHARDS) -> Iterator[tuple[date, str, str]]:
    """(due date, member id, plan id) of every subscription due on or before `on`."""
    bound = f"{on.isoformat()}#~"  # '~' sorts after every id character
    for shard in range(shards):
        results = DueItem.due.query(f"{DUE_PLUS}#{shard}", DueItem.GSI1SK <= bound)
        for item in results:
            day, member_id, plan_id = item.due_parts()
            yield date.fromisoformat(day), member_id, plan_id


def _version_condition(item: SubscriptionItem):
    visits = int(item.visits or 0)
    same_visits = SubscriptionItem.visits == visits
    if visits == 0:
        same_visits = same_visits | SubscriptionItem.visits.does_not_exist()
    return same_visits & (SubscriptionItem.terms == int(item.terms))


def _actions(item: SubscriptionItem, state: ScheduleState, next_due: tuple[str, str] | None,
             now: datetime) -> list:
    actions = [SubscriptionItem.schedule.set(state.to_json()),
               SubscriptionItem.visits.set(int(item.visits or 0) + 1),
               SubscriptionItem.updated_at.set(now)]
    if next_due is None:
        actions += [SubscriptionItem.GSI1PK.remove(), SubscriptionItem.GSI1SK.remove()]
    else:
        actions += [SubscriptionItem.GSI1PK.set(next_due[0]),
                    SubscriptionItem.GSI1SK.set(next_due[1])]
    return actions


def visit_extras(item: SubscriptionItem, work: DailyWork, now: datetime
                 ) -> tuple[ExtraItem, ...]:
    """The subscription item's new state and next due keys, and the visit's other guards."""
    next_due = due_keys(item.member_id, item.plan_id, work.next_due_on)
    extras = [ExtraItem(model=SubscriptionItem(item.PK, item.SK),
                        actions=_actions(item, work.state, next_due, now),
                        condition=_version_condition(item), on_condition_failed=Retry)]
    for key in visit_guards(work)[1:]:  # the first is the posting's own source key
        extras.append(ExtraItem(
            model=GuardItem(*GuardItem.key(key), source_type="guard",
                            member_id=item.member_id, created_at=now),
            condition=GuardItem.PK.does_not_exist(), on_condition_failed=Retry))
    return tuple(extras)


def save_state(item: SubscriptionItem, work: DailyWork, now: datetime) -> None:
    """A visit that issues nothing: only the state and the next due keys move."""
    next_due = due_keys(item.member_id, item.plan_id, work.next_due_on)
    try:
        SubscriptionItem(item.PK, item.SK).update(
            actions=_actions(item, work.state, next_due, now),
            condition=_version_condition(item))
    except Exception as exc:  # pynamodb's UpdateError wraps the conditional failure
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise ScheduleMoved() from None
        raise
