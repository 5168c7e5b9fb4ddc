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
posting's source key. A visit also brings the plan's usage counter in line with the run
(domain/plan_usage.py): the run's end counts the member down (-1), in the same
transaction as the subscription's `counted` flag, conditional on the flag read.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from membership.domain.plan_usage import counter_move
from membership.domain.subscription_schedule import DailyWork, ScheduleState, visit_guards
from membership.storage.ledger import ExtraItem
from membership.storage.models import DUE_SHARDS, DueItem, GuardItem, hash_shard
from membership.storage.subscriptions import SubscriptionItem, counted_is, plan_usage_extra
from membership.storage.table import Retry, connection

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


def counted_unchanged(item: SubscriptionItem, active: bool) -> bool:
    """True when the `counted` flag already says whether the run is active."""
    return item.counted is not None and bool(item.counted) == active


def _version_condition(item: SubscriptionItem):
    visits = int(item.visits or 0)
    same_visits = SubscriptionItem.visits == visits
    if visits == 0:
        same_visits = same_visits | SubscriptionItem.visits.does_not_exist()
    return same_visits & (SubscriptionItem.terms == int(item.terms)) & counted_is(item.counted)


def _actions(item: SubscriptionItem, state: ScheduleState, next_due: tuple[str, str] | None,
             now: datetime, active: bool) -> list:
    actions = [SubscriptionItem.schedule.set(state.to_json()),
               SubscriptionItem.visits.set(int(item.visits or 0) + 1),
               SubscriptionItem.updated_at.set(now)]
    if not counted_unchanged(item, active):
        actions.append(SubscriptionItem.counted.set(active))
    if next_due is None:
        actions += [SubscriptionItem.GSI1PK.remove(), SubscriptionItem.GSI1SK.remove()]
    else:
        actions += [SubscriptionItem.GSI1PK.set(next_due[0]),
                    SubscriptionItem.GSI1SK.set(next_due[1])]
    return actions


def _usage(item: SubscriptionItem, active: bool) -> ExtraItem | None:
    """The plan's counter moved to match the run (a catch-up or an end: never fenced)."""
    delta = counter_move(item.counted, active)
    if not delta:
        return None
    return plan_usage_extra(item.member_id, item.plan_id, delta, fenced=False)


def visit_extras(item: SubscriptionItem, work: DailyWork, now: datetime, active: bool
                 ) -> tuple[ExtraItem, ...]:
    """The subscription item's new state, next due keys and `counted` flag (`active`: the
    run is active now), the plan's usage counter if it moves, and the visit's other
    guards."""
    next_due = due_keys(item.member_id, item.plan_id, work.next_due_on)
    extras = [ExtraItem(model=SubscriptionItem(item.PK, item.SK),
                        actions=_actions(item, work.state, next_due, now, active),
                        condition=_version_condition(item), on_condition_failed=Retry)]
    counter = _usage(item, active)
    if counter is not None:
        extras.append(counter)
    for key in visit_guards(work)[1:]:  # the first is the posting's own source key
        extras.append(ExtraItem(
            model=GuardItem(*GuardItem.key(key), source_type="guard",
                            member_id=item.member_id, created_at=now),
            condition=GuardItem.PK.does_not_exist(), on_condition_failed=Retry))
    return tuple(extras)


def save_state(item: SubscriptionItem, work: DailyWork, now: datetime, active: bool) -> None:
    """A visit that issues nothing: the state, the next due keys and the `counted` flag
    move; with the plan's usage counter when it moves (one transaction), else one update."""
    next_due = due_keys(item.member_id, item.plan_id, work.next_due_on)
    actions = _actions(item, work.state, next_due, now, active)
    counter = _usage(item, active)
    try:
        if counter is None:
            SubscriptionItem(item.PK, item.SK).update(actions=actions,
                                                      condition=_version_condition(item))
            return
        t = TransactWrite(connection=connection())
        t.update(SubscriptionItem(item.PK, item.SK), actions=actions,
                 condition=_version_condition(item))
        t.update(counter.model, actions=counter.actions, condition=counter.condition)
        t._commit()
    except TransactWriteError as exc:
        # A condition failed or a concurrent write conflicted: read the item again.
        if exc.cause_response_code == "TransactionCanceledException":
            raise ScheduleMoved() from None
        raise
    except Exception as exc:  # pynamodb's UpdateError wraps the conditional failure
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise ScheduleMoved() from None
        raise
