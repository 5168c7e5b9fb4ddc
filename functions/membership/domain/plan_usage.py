"""Who uses a paid plan, for the program's stranding check (pure rules, no I/O).

A member uses a plan while a run of its terms is active (a trial is a term). The
subscription item keeps `counted`: whether the member is counted in the plan's usage
counter (storage/usage.py, kind `plan`). Every write that decides where a run stands
sets the flag to the run's state after it and moves the counter by the difference, in
the same transaction and conditional on the flag it read:

- a purchase or a charge: the run is active (+1 the first time, 0 when extending);
- an operator's refund: active unless it ended the run (then -1);
- the daily schedule's visit: active unless the run's last term has ended (then -1);
- account closure: nothing is active any more (closure refuses an active term, so only
  a run that ended and was not visited yet is counted down there).

`counted` is None on a subscription written before the counter existed: the first of
those writes (or the backfill) counts it.
"""
from __future__ import annotations

from datetime import datetime

from membership.domain.subscriptions import TermRecord, is_active, plan_ends_at


def run_active(terms: list[TermRecord], now: datetime) -> bool:
    """True while an unrefunded term covers now or is still to come."""
    return is_active(plan_ends_at(terms), now)


def counter_move(counted: bool | None, active: bool) -> int:
    """How the plan's counter moves when the flag goes from `counted` to `active`."""
    return int(active) - int(bool(counted))
