"""The paid plan's daily run: monthly gift packs, renewal notices and lapses, no scan.

The run reads the sparse index of due subscriptions (storage/subscription_schedule.py),
one Query per shard, and visits each: what it owes by today (domain/subscription_schedule
.py) is one ledger posting (the packs' coupons and points, the events, the subscription's
new state and next due date, the guards), keyed by the first thing it does (a (term,
month) pack, a term's renewal notice, a run's lapse: each once, ever). Two runs that see
the same work build the same source key: one commits, the other replays. A visit that
owes nothing (the index is eventually consistent, or a refund took the work away) only
moves the next due date. Each visit also brings the plan's usage counter in line with the
run (domain/plan_usage.py): the run's end counts the member down, so the program's PUT may
remove a plan once no one has an active run of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from membership.domain.ledger import PostingBuilder
from membership.domain.plan_usage import run_active
from membership.domain.program import Program
from membership.domain.subscription_schedule import (
    ScheduleState,
    apply_daily,
    daily_work,
    next_due_on,
    visit_guards,
)
from membership.domain.subscriptions import (
    TermRecord,
    local_date,
    start_of_day,
    subscription_id_for,
)
from membership.errors import DomainError
from membership.observability import logger
from membership.storage import subscription_schedule as store
from membership.storage import subscriptions as subscriptions_store
from membership.storage.program import load_program
from membership.storage.subscriptions import SubscriptionItem
from membership.storage.table import Retry

MAX_MOVES = 5


@dataclass
class DailyReport:
    on: str
    due: int = 0  # index entries read
    visited: int = 0  # postings committed
    packs: int = 0
    coupons_not_issued: int = 0
    renewal_due: int = 0
    lapsed: int = 0
    rescheduled: int = 0  # visits that owed nothing and only moved the date
    replayed: int = 0  # another run did it first
    skipped: int = 0
    failed: int = 0
    not_issued: list[dict] = field(default_factory=list)


def due_keys_after(member_id: str, plan_id: str, records: list[TermRecord],
                   existing: SubscriptionItem | None, now: datetime, tz: str
                   ) -> tuple[str, str] | None:
    """GSI1 keys of the next date a subscription owes something, counted from today
    (inclusive): a purchase or a charge calls this with the terms after it."""
    state = ScheduleState.from_json(existing.schedule if existing is not None else None)
    return store.due_keys(member_id, plan_id,
                          next_due_on(records, state, local_date(now, tz), tz))


def run_now(on: date | None, program: Program) -> datetime:
    """The instant a run for local date `on` acts at: now for today, else the first instant
    of that day (a catch-up or a test run on another date)."""
    now = datetime.now(UTC)
    if on is None or on == local_date(now, program.time_zone):
        return now
    return start_of_day(on, program.time_zone)


def visit(member_id: str, plan_id: str, now: datetime, program: Program,
          report: DailyReport) -> None:
    """Everything one subscription owes by today, in one posting (or a date move)."""
    tz = program.time_zone
    plan = next((p for p in program.paid_plans if p.id == plan_id), None)
    for _ in range(MAX_MOVES):
        subscriptions, terms = subscriptions_store.read(member_id)
        item = subscriptions.get(plan_id)
        if item is None:
            report.skipped += 1
            return
        purchases = terms.get(plan_id, [])
        records = [p.record for p in purchases]
        work = daily_work(records, ScheduleState.from_json(item.schedule),
                          auto_renew=bool(item.auto_renew), now=now, tz=tz)
        active = run_active(records, now)
        if not work.posts:
            unchanged = (work.state == ScheduleState.from_json(item.schedule)
                         and store.due_keys(member_id, plan_id, work.next_due_on)
                         == ((item.GSI1PK, item.GSI1SK) if item.GSI1PK else None)
                         and store.counted_unchanged(item, active))
            if unchanged:  # e.g. another run did it, and the index had not caught up
                report.replayed += 1
                return
            try:
                store.save_state(item, work, now, active)
            except store.ScheduleMoved:
                continue
            report.rescheduled += 1
            return
        source_key = visit_guards(work)[0]

        def build(state, source_key=source_key):
            # Read again inside the attempt: a purchase may have moved things meanwhile.
            subs, again = subscriptions_store.read(member_id)
            current = subs.get(plan_id)
            if current is None:
                raise store.ScheduleMoved()
            bought = again.get(plan_id, [])
            todo = daily_work([p.record for p in bought],
                              ScheduleState.from_json(current.schedule),
                              auto_renew=bool(current.auto_renew), now=now, tz=tz)
            if not todo.posts or visit_guards(todo)[0] != source_key:
                raise store.ScheduleMoved()
            builder = PostingBuilder(state, program, source_key=source_key,
                                     source_type="subscription_schedule",
                                     reason="plus_daily", actor="system", now=now)
            apply_daily(builder, plan, todo, member_id=member_id,
                        subscription_id=subscription_id_for(member_id, plan_id),
                        plan_id=plan_id,
                        next_cycle=max((p.seq for p in bought), default=0) + 1)
            records_now = [p.record for p in bought]
            return builder.build(), store.visit_extras(current, todo, now,
                                                       run_active(records_now, now))

        try:
            outcome = subscriptions_store.post(member_id, source_key, build)
        except store.ScheduleMoved:
            continue
        if outcome.replayed:
            report.replayed += 1
            return
        result = outcome.result
        report.visited += 1
        report.packs += len(result.get("packs") or [])
        report.renewal_due += bool(result.get("renewalDue"))
        report.lapsed += bool(result.get("lapsed"))
        missed = (result.get("giftCoupons") or {}).get("notIssued") or []
        for m in missed:
            report.coupons_not_issued += int(m.get("quantity") or 0)
            report.not_issued.append({"memberId": member_id, **m})
        return
    raise Retry()


def run_daily(on: date | None = None, now: datetime | None = None) -> DailyReport:
    """Visit every subscription due on or before local date `on` (default: today)."""
    program = load_program()
    now = now or run_now(on, program)
    on = local_date(now, program.time_zone)
    report = DailyReport(on=on.isoformat())
    for _due, member_id, plan_id in store.due_subscriptions(on):
        report.due += 1
        try:
            visit(member_id, plan_id, now, program, report)
        except DomainError as exc:
            report.skipped += 1  # e.g. the member closed the account
            logger.warning("subscription not visited",
                           extra={"memberId": member_id, "code": exc.code})
        except Exception:  # noqa: BLE001 - one member's failure must not stop the run
            report.failed += 1
            logger.exception("subscription visit failed", extra={"memberId": member_id})
    return report
