"""Check-ins: today's, a make-up of a missed day, and the month's calendar.

A check-in is one posting whose source key is the member and the day
(`checkin:<memberId>:<YYYY-MM-DD>`), whether the day is checked in on the day or made up
later: its guard makes each day count once, under any concurrency, and keeps the first
answer, which a repeat gets back in the 409's details.
"""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain.checkins import (
    AlreadyCheckedIn,
    CalendarView,
    CheckinLog,
    CheckinRequest,
    MakeupNotAllowed,
    apply_checkin,
    calendar_view,
    check_make_up_day,
    checkin_source_key,
    local_date,
    plan_checkin,
    spendable_points,
)
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.member_status import ensure_may_spend
from membership.domain.members import member_id_for
from membership.storage import checkins as store
from membership.storage import ledger
from membership.storage.program import load_program


def _now() -> datetime:
    return datetime.now(UTC)


def check_in(subject: str, request: CheckinRequest, now: datetime | None = None) -> dict:
    """Today's check-in, or a make-up of `request.date`; the answer, or a refusal."""
    now = now or _now()
    member_id = member_id_for(subject)
    program = load_program()
    today = local_date(now, program.time_zone)
    make_up = request.day
    if make_up is not None:
        check_make_up_day(make_up, today, program.checkin)
    day = make_up or today
    source_key = checkin_source_key(member_id, day)

    def build(state: LedgerState):
        builder = PostingBuilder(state, program, source_key=source_key, source_type="checkin",
                                 reason="makeup" if make_up else "checkin",
                                 actor=f"member:{member_id}", now=now)
        plan = plan_checkin(
            CheckinLog.of(state.member), program, today=today,
            joined=local_date(state.member.created_at, program.time_zone),
            spendable_points=spendable_points(builder), day=make_up)
        if plan.cost:
            ensure_may_spend(state.member, "makeup_checkin")  # a make-up spends points
        apply_checkin(builder, program, plan)
        return builder.build()

    outcome = ledger.post(member_id, source_key, build)
    if outcome.replayed:
        if make_up is None:
            raise AlreadyCheckedIn(f"{day} is checked in already", first=outcome.result)
        raise MakeupNotAllowed(f"{day} is checked in already", reason="already_checked_in",
                               first=outcome.result)
    return outcome.result


def calendar(subject: str, month: str | None, now: datetime | None = None) -> CalendarView:
    """A month's calendar (default: this month), the streak and the next bonus."""
    now = now or _now()
    program = load_program()
    log, joined_at = store.read_calendar(member_id_for(subject))
    tz = program.time_zone
    return calendar_view(log, program, month=month, today=local_date(now, tz),
                         joined=local_date(joined_at, tz))
