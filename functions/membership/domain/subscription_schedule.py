"""The paid plan's daily schedule: what a member's subscription owes on a local date.

Pure rules, no I/O. Each subscription carries a *schedule state* (what was done) and a
*next due date* (the local date of the next thing it owes, the key of a sparse index):

- the plan's monthly gift pack, once per (term, month of the term) (`gift_packs_due`);
- `subscription.renewal_due`, once per term, `RENEWAL_NOTICE_DAYS` before the plan's end
  (the day an automatic renewal charges), when auto-renew is on that day;
- `subscription.lapsed`, once per run of terms, the first day the run is seen ended
  (not for a run whose newest term was refunded: that is a refund, not a lapse).

A visit on local date D does everything owed by D (so missed days catch up) and moves the
next due date past D. A purchase or a charge recomputes it from D inclusive.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from membership.domain import calendar
from membership.domain.ledger import PostingBuilder
from membership.domain.program import PaidPlan
from membership.domain.subscriptions import (
    RENEWAL_NOTICE_DAYS,
    TermRecord,
    gift_month_starts,
    gift_pack_key,
    gift_packs_due,
    is_active,
    latest_term,
    local_date,
    status_of,
)

PACK_SOURCE = "plus_monthly"  # coupons' `source` for the plan's monthly pack


class ScheduleState(BaseModel):
    """What the schedule did for one subscription (kept on the subscription item)."""

    model_config = ConfigDict(frozen=True)

    packs: dict[str, int] = Field(default_factory=dict,
                                  description="term id -> months of it whose pack was issued")
    renewal_checked: str | None = Field(
        default=None, description="term id whose renewal notice day was handled")
    lapse_checked: str | None = Field(
        default=None, description="term id whose run's end was handled")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> ScheduleState:
        return cls() if not text else cls.model_validate(json.loads(text))


class DailyWork(BaseModel):
    """What one visit on `on` owes, and the state and next due date after it."""

    model_config = ConfigDict(frozen=True)

    on: date
    packs: tuple[tuple[str, int], ...] = ()  # (term id, month of the term)
    renewal_due: TermRecord | None = None
    lapsed: TermRecord | None = None
    state: ScheduleState
    next_due_on: date | None

    @property
    def posts(self) -> bool:
        """True when the visit issues or announces something (one posting)."""
        return bool(self.packs or self.renewal_due or self.lapsed)


def _paid(terms: list[TermRecord]) -> list[TermRecord]:
    return [t for t in terms if t.refunded_at is None and t.term != "trial"]


def next_due_on(terms: list[TermRecord], state: ScheduleState, from_day: date,
                tz: str) -> date | None:
    """The first local date on or after `from_day` when the subscription owes something
    not yet done; None when it owes nothing more (it leaves the index)."""
    candidates: list[date] = []
    for t in _paid(terms):
        starts = gift_month_starts(t, tz)
        done = state.packs.get(t.term_id, 0)
        if done < len(starts) and starts[done] <= local_date(t.ends_at, tz):
            candidates.append(max(starts[done], from_day))
    last = latest_term(terms)
    if last is not None:
        end_day = local_date(last.ends_at, tz)
        if state.renewal_checked != last.term_id and from_day <= end_day:
            candidates.append(max(end_day - timedelta(days=RENEWAL_NOTICE_DAYS), from_day))
        if state.lapse_checked != last.term_id:
            candidates.append(max(end_day + timedelta(days=1), from_day))
    return min(candidates) if candidates else None


def daily_work(terms: list[TermRecord], state: ScheduleState, *, auto_renew: bool,
               now: datetime, tz: str) -> DailyWork:
    """Everything owed by the local date of `now`, the state after it, and the next visit."""
    on = local_date(now, tz)
    packs: list[tuple[str, int]] = []
    done = dict(state.packs)
    for t in _paid(terms):
        due = gift_packs_due(t, on, tz)
        issued = done.get(t.term_id, 0)
        if len(due) > issued:
            packs.extend((t.term_id, k) for k in due[issued:])
            done[t.term_id] = len(due)
    renewal_checked, lapse_checked = state.renewal_checked, state.lapse_checked
    renewal = lapsed = None
    last = latest_term(terms)
    if last is not None:
        end_day = local_date(last.ends_at, tz)
        notice_day = end_day - timedelta(days=RENEWAL_NOTICE_DAYS)
        if renewal_checked != last.term_id and notice_day <= on:
            # Handled once per term: sent when auto-renew is on that day (or the first
            # visit after it, before the end); switching it on later sends none.
            if auto_renew and is_active(last.ends_at, now):
                renewal = last
            renewal_checked = last.term_id
        if lapse_checked != last.term_id and not is_active(last.ends_at, now):
            if status_of(terms, now) == "lapsed":
                lapsed = last
            lapse_checked = last.term_id
    after = ScheduleState(packs=done, renewal_checked=renewal_checked,
                          lapse_checked=lapse_checked)
    return DailyWork(on=on, packs=tuple(packs), renewal_due=renewal, lapsed=lapsed, state=after,
                     next_due_on=next_due_on(terms, after, on + timedelta(days=1), tz))


def pack_guard(term_id: str, month: int) -> str:
    """The guard of one (term, month) pack: at most one, whatever the schedule state says."""
    return f"subscription.pack:{gift_pack_key(term_id, month)}"


def visit_guards(work: DailyWork) -> list[str]:
    """The once-only keys of what a visit does, first the posting's source key: each pack
    (term, month), the renewal notice of a term, the lapse of a run (its last term). Two
    runs that see the same work build the same keys: one commits, the other replays."""
    keys = [pack_guard(term_id, month) for term_id, month in work.packs]
    if work.renewal_due is not None:
        keys.append(f"subscription.renewal_due:{work.renewal_due.term_id}")
    if work.lapsed is not None:
        keys.append(f"subscription.lapsed:{work.lapsed.term_id}")
    return keys


def apply_daily(builder: PostingBuilder, plan: PaidPlan | None, work: DailyWork, *,
                member_id: str, subscription_id: str, plan_id: str, next_cycle: int) -> int:
    """The visit's legs: each pack's coupons (stock permitting: what cannot be issued is
    reported in the result, never blocks) and points, and the events. Returns packs given."""
    tz = builder.tz
    now = calendar.wire(builder.now, tz)
    pack = plan.monthly_gift if plan is not None else None
    coupons: dict[str, int] = {}
    for term_id, month in work.packs:
        if pack is None:
            continue
        if pack.points:
            builder.credit_points(pack.points, reason="plus_monthly_gift",
                                  lot_id=f"plus-{gift_pack_key(term_id, month)}")
        for grant in pack.coupons:
            coupons[grant.template_id] = coupons.get(grant.template_id, 0) + grant.quantity
    # One issue per template: a catch-up of several months touches its counters once.
    for template_id, quantity in coupons.items():
        builder.issue_coupons(template_id, quantity, source=PACK_SOURCE)
    given = len(work.packs)
    base = {"memberId": member_id, "subscriptionId": subscription_id, "planId": plan_id}
    if work.renewal_due is not None:
        t = work.renewal_due
        renewal_on = local_date(t.ends_at, tz)
        builder.emit("subscription.renewal_due", base | {
            "termId": t.term_id, "endsAt": calendar.wire(t.ends_at, tz),
            "renewalOn": renewal_on.isoformat(), "cycle": next_cycle, "occurredAt": now})
    if work.lapsed is not None:
        t = work.lapsed
        builder.emit("subscription.lapsed", base | {
            "termId": t.term_id, "endedAt": calendar.wire(t.ends_at, tz), "occurredAt": now})
    builder.result = base | {
        "on": work.on.isoformat(),
        "packs": [gift_pack_key(term_id, month) for term_id, month in work.packs],
        "renewalDue": work.renewal_due.term_id if work.renewal_due else None,
        "lapsed": work.lapsed.term_id if work.lapsed else None,
    }
    return given
