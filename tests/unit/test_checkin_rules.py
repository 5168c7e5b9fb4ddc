"""Check-in rules, pure: days in the program's time zone, streaks, bonuses, make-ups, the
calendar. Brute-force models over plain sets of days are the oracle for the log."""
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membership.domain.checkins import (
    CALENDAR_MONTHS,
    MAKE_UP_REASONS,
    AlreadyCheckedIn,
    CheckinLog,
    MakeupNotAllowed,
    MonthOutOfRange,
    bonuses_for,
    calendar_view,
    current_streak,
    local_date,
    month_key,
    oldest_kept_month,
    plan_checkin,
)
from membership.domain.program import default_program

PROGRAM = default_program()
D0 = date(2025, 1, 1)


def program_with(**checkin):
    return PROGRAM.model_copy(update={"checkin": PROGRAM.checkin.model_copy(update=checkin)})


def log_of(*days: date, made_up: tuple[date, ...] = ()) -> CheckinLog:
    log = CheckinLog()
    for day in sorted(days):
        log = log.with_day(day, make_up=day in made_up)
    return log


def d(n: int) -> date:
    return D0 + timedelta(days=n)


# ---- brute-force model ------------------------------------------------------------------

def runs(days: set[date]) -> list[int]:
    """Lengths of the maximal runs of consecutive days."""
    lengths, seen = [], set()
    for day in sorted(days):
        if day in seen:
            continue
        n = 0
        while day + timedelta(days=n) in days:
            seen.add(day + timedelta(days=n))
            n += 1
        lengths.append(n)
    return lengths


def bonuses_owed(days: set[date], streak_days: int) -> int:
    return sum(n // streak_days for n in runs(days))


def streak_model(days: set[date], today: date) -> int:
    end = today if today in days else today - timedelta(days=1)
    n = 0
    while end - timedelta(days=n) in days:
        n += 1
    return n


# ---- the day boundary -------------------------------------------------------------------

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def test_235959_and_000000_in_shanghai_are_consecutive_days():
    assert local_date(datetime(2025, 3, 1, 23, 59, 59, tzinfo=SHANGHAI), "Asia/Shanghai") == \
        date(2025, 3, 1)
    assert local_date(datetime(2025, 3, 2, 0, 0, 0, tzinfo=SHANGHAI), "Asia/Shanghai") == \
        date(2025, 3, 2)


def test_a_shanghai_day_is_not_the_utc_day():
    # 07:59:59 and 08:00:00 Beijing time straddle UTC midnight but are one local day.
    early = datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)
    late = datetime(2025, 3, 2, 0, 0, 0, tzinfo=UTC)
    assert local_date(early, "Asia/Shanghai") == local_date(late, "Asia/Shanghai") == \
        date(2025, 3, 2)


@pytest.mark.parametrize(("zone", "eve", "day"), [
    ("America/New_York", date(2025, 3, 8), date(2025, 3, 9)),  # spring forward: 23 hours
    ("America/New_York", date(2025, 11, 1), date(2025, 11, 2)),  # fall back: 25 hours
    ("Europe/Berlin", date(2025, 3, 29), date(2025, 3, 30)),
    ("Europe/Berlin", date(2025, 10, 25), date(2025, 10, 26)),
])
def test_235959_and_000000_around_daylight_saving_are_consecutive_days(zone, eve, day):
    tz = ZoneInfo(zone)
    before = datetime(eve.year, eve.month, eve.day, 23, 59, 59, tzinfo=tz)
    after = datetime(day.year, day.month, day.day, 0, 0, 0, tzinfo=tz)
    assert (local_date(before, zone), local_date(after, zone)) == (eve, day)
    assert (after.astimezone(UTC) - before.astimezone(UTC)).total_seconds() == 1


def test_the_25_hour_day_is_one_day():
    start = datetime(2025, 11, 2, 0, 0, 0, tzinfo=NEW_YORK)
    end = datetime(2025, 11, 2, 23, 59, 59, tzinfo=NEW_YORK)
    # Same-zone subtraction in Python is wall-clock time: compare the instants.
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=24, minutes=59,
                                                                    seconds=59)
    assert local_date(start, "America/New_York") == local_date(end, "America/New_York")


def test_a_streak_across_the_23_hour_day_has_no_gap():
    log = CheckinLog()
    for day in (date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 10)):
        plan = plan_checkin(log, PROGRAM, today=day, joined=date(2025, 3, 1),
                            spendable_points=0)
        log = plan.log
    assert plan.streak == 3


# ---- today's check-in -------------------------------------------------------------------

def test_a_check_in_earns_the_programs_points_and_growth():
    plan = plan_checkin(CheckinLog(), PROGRAM, today=d(0), joined=d(0), spendable_points=0)
    assert (plan.day, plan.make_up, plan.points, plan.growth, plan.bonus, plan.cost) == (
        d(0), False, 5, 5, 0, 0)
    assert (plan.streak, plan.next_bonus_in) == (1, 6)
    assert plan.log.checked(d(0)) and not plan.log.made_up(d(0))


def test_checking_in_twice_a_day_is_refused():
    with pytest.raises(AlreadyCheckedIn):
        plan_checkin(log_of(d(0)), PROGRAM, today=d(0), joined=d(0), spendable_points=0)


def test_every_seventh_consecutive_day_pays_the_bonus():
    log, bonuses = CheckinLog(), []
    for n in range(21):
        plan = plan_checkin(log, PROGRAM, today=d(n), joined=d(0), spendable_points=0)
        log, bonuses = plan.log, [*bonuses, plan.bonus]
    assert [i + 1 for i, b in enumerate(bonuses) if b] == [7, 14, 21]
    assert set(bonuses) == {0, 20}


def test_next_bonus_in_counts_the_next_check_in():
    six = log_of(*(d(n) for n in range(6)))
    view = calendar_view(six, PROGRAM, month=None, today=d(6), joined=d(0))
    assert (view.streak, view.checked_in_today, view.next_bonus_in) == (6, False, 1)
    seven = six.with_day(d(6), make_up=False)
    view = calendar_view(seven, PROGRAM, month=None, today=d(6), joined=d(0))
    assert (view.streak, view.checked_in_today, view.next_bonus_in) == (7, True, 7)


def test_a_streak_ends_when_a_day_passes_unchecked():
    log = log_of(d(0), d(1))
    assert current_streak(log, d(2)) == 2
    assert current_streak(log, d(3)) == 0


# ---- make-ups ---------------------------------------------------------------------------

def makeup(log, day, today, *, joined=D0, points=100, program=PROGRAM):
    return plan_checkin(log, program, today=today, joined=joined, spendable_points=points,
                        day=day)


def test_a_make_up_closing_a_gap_joins_the_runs_and_pays_the_bonus_it_completes():
    log = log_of(d(0), d(1), d(2), d(4), d(5), d(6))
    plan = makeup(log, d(3), d(6))
    assert (plan.make_up, plan.cost, plan.points, plan.bonus, plan.streak) == (
        True, 20, 5, 20, 7)
    assert plan.log.made_up(d(3))
    assert plan_checkin(plan.log, PROGRAM, today=d(7), joined=D0,
                        spendable_points=0).bonus == 0


def test_a_make_up_joining_a_paid_run_pays_only_what_the_merged_run_owes_more():
    # 6 days, a gap, then a 7-day run that was paid: merged 14 days owe 2, one is paid.
    # (A run after the gap this long needs a make-up window longer than the default.)
    days = [d(n) for n in range(6)] + [d(n) for n in range(7, 14)]
    plan = makeup(log_of(*days), d(6), d(13), program=program_with(make_up_days=10))
    assert (plan.bonus, plan.streak) == (20, 14)


def test_a_make_up_that_merges_into_a_shorter_run_pays_nothing_more():
    # 3 days, a gap, a paid 7-day run: the merged 11 days owe 1 bonus, already paid.
    days = [d(n) for n in range(3)] + [d(n) for n in range(4, 11)]
    plan = makeup(log_of(*days), d(3), d(10), program=program_with(make_up_days=10))
    assert (plan.bonus, plan.streak) == (0, 11)


@pytest.mark.parametrize(("reason", "day", "today", "joined", "points", "log"), [
    ("future", d(11), d(10), d(0), 100, ()),
    ("today", d(10), d(10), d(0), 100, ()),
    ("too_old", d(6), d(10), d(0), 100, ()),
    ("before_joined", d(8), d(10), d(9), 100, ()),
    ("already_checked_in", d(9), d(10), d(0), 100, (d(9),)),
    ("monthly_limit", d(9), d(10), d(0), 100, ("made_up", d(1), d(2))),
    ("not_enough_points", d(9), d(10), d(0), 19, ()),
])
def test_every_refusal_says_its_reason(reason, day, today, joined, points, log):
    if log and log[0] == "made_up":
        state = log_of(*log[1:], made_up=log[1:])
    else:
        state = log_of(*log)
    with pytest.raises(MakeupNotAllowed) as refused:
        makeup(state, day, today, joined=joined, points=points)
    assert refused.value.details["reason"] == reason
    assert refused.value.code == "makeup_not_allowed"


def test_the_refusal_reasons_are_the_documented_ones():
    assert set(MAKE_UP_REASONS) == {"future", "today", "too_old", "before_joined",
                                    "already_checked_in", "monthly_limit",
                                    "not_enough_points"}


def test_make_ups_count_against_the_month_of_the_missed_day():
    log = log_of(date(2025, 1, 30), date(2025, 1, 31), made_up=(date(2025, 1, 30),
                                                                 date(2025, 1, 31)))
    plan = makeup(log, date(2025, 2, 1), date(2025, 2, 2))
    assert plan.log.make_ups_in("2025-02") == 1 and plan.log.make_ups_in("2025-01") == 2


def test_free_make_ups_cost_nothing():
    plan = makeup(CheckinLog(), d(9), d(10), points=0, program=program_with(make_up_cost=0))
    assert plan.cost == 0


def test_no_make_up_window_refuses_every_past_day():
    with pytest.raises(MakeupNotAllowed) as refused:
        makeup(CheckinLog(), d(9), d(10), program=program_with(make_up_days=0))
    assert refused.value.details["reason"] == "too_old"


# ---- streak arithmetic: properties ------------------------------------------------------

@given(st.integers(0, 400), st.integers(0, 400), st.integers(1, 60))
def test_the_bonus_of_a_day_is_what_the_merged_run_owes_beyond_its_parts(before, after, n):
    paid = bonuses_for(before, after, n)
    assert paid >= 0
    assert before // n + after // n + paid == (before + 1 + after) // n


# A member's days: each day, make-ups of some days back (before or after today's check-in),
# maybe today's check-in, then the clock moves on one day.
DAYS = st.lists(st.tuples(st.booleans(), st.booleans(),
                          st.lists(st.integers(-1, 6), max_size=2)), max_size=45)


def _expected_refusal(op, day, today, joined, days, made_up, make_up_days, per_month):
    if op == "checkin":
        return "already" if day in days else None
    per = sum(1 for m in made_up if month_key(m) == month_key(day))
    return ("future" if day > today else "today" if day == today
            else "too_old" if (today - day).days > make_up_days
            else "before_joined" if day < joined
            else "already_checked_in" if day in days
            else "monthly_limit" if per >= per_month else None)


@settings(max_examples=300, deadline=None)
@given(DAYS, st.integers(1, 8), st.integers(0, 5), st.integers(0, 4))
def test_any_sequence_pays_each_run_its_bonuses_once_and_refuses_as_the_model_says(
        steps, streak_days, make_up_days, per_month):
    program = program_with(streak_days=streak_days, make_up_days=make_up_days,
                           make_up_per_month=per_month, make_up_cost=0)
    joined = today = date(2025, 1, 27)
    log, days, made_up, bonus_total = CheckinLog(), set(), set(), 0
    for checks_in, check_in_first, backs in steps:
        ops = [("makeup", back) for back in backs]
        if checks_in:
            ops.insert(0 if check_in_first else len(ops), ("checkin", 0))
        for op, back in ops:
            day = today - timedelta(days=back)
            expected = _expected_refusal(op, day, today, joined, days, made_up, make_up_days,
                                         per_month)
            try:
                plan = plan_checkin(log, program, today=today, joined=joined,
                                    spendable_points=0, day=None if op == "checkin" else day)
            except AlreadyCheckedIn:
                assert expected == "already"
                continue
            except MakeupNotAllowed as refused:
                assert refused.details["reason"] == expected
                continue
            assert expected is None
            days.add(day)
            if op == "makeup":
                made_up.add(day)
            log = plan.log
            bonus_total += plan.bonus // program.checkin.streak_bonus
            assert plan.streak == streak_model(days, today)
            assert bonus_total == bonuses_owed(days, streak_days)
        today += timedelta(days=1)
    assert {day for day in days if log.checked(day)} == days
    assert {day for day in days if log.made_up(day)} == made_up


# Histories with long streaks: runs of checked-in days separated by short gaps.
HISTORIES = st.lists(st.tuples(st.integers(1, 150), st.integers(1, 3)), min_size=1,
                     max_size=12)


def history(runs_and_gaps, start: date) -> list[bool]:
    pattern = []
    for run, gap in runs_and_gaps:
        pattern += [True] * run + [False] * gap
    return pattern


@settings(max_examples=15, deadline=None)
@given(HISTORIES, st.integers(0, 3))
def test_the_kept_months_and_carry_give_the_streaks_of_the_whole_history(runs_and_gaps,
                                                                         tail_gap):
    start = date(2024, 1, 1)
    pattern = history(runs_and_gaps, start)[:-1] + [False] * tail_gap
    log, days = CheckinLog(), set()
    today = start
    for i, checks in enumerate(pattern):
        today = start + timedelta(days=i)
        if checks:
            log = plan_checkin(log, PROGRAM, today=today, joined=start,
                               spendable_points=0).log
            days.add(today)
    # Months are dropped when the member checks in, relative to that day.
    assert len(log.months) <= CALENDAR_MONTHS
    assert all(m >= oldest_kept_month(max(days)) for m in log.months)
    assert current_streak(log, today) == streak_model(days, today)
    for back in range(40):
        day = today - timedelta(days=back)
        assert log.run_ending(day) == streak_model(days, day) * (day in days)


@settings(max_examples=40, deadline=None)
@given(HISTORIES, st.integers(0, 600))
def test_trimming_keeps_every_run_length_from_the_kept_months_on(runs_and_gaps, cut):
    start = date(2024, 1, 1)
    days = {start + timedelta(days=i)
            for i, checks in enumerate(history(runs_and_gaps, start)) if checks}
    log = log_of(*days)
    keep_from = month_key(start + timedelta(days=cut))
    trimmed = log.trimmed(keep_from)
    first = date(int(keep_from[:4]), int(keep_from[5:]), 1)
    # The days near the cut, where the carry matters, and the latest ones.
    checked = [day for day in sorted(days) if day >= first]
    for day in checked[:40] + checked[-10:]:
        assert trimmed.run_ending(day) == log.run_ending(day) == streak_model(days, day)
    assert all(m >= keep_from for m in trimmed.months)


# ---- the calendar -----------------------------------------------------------------------

def test_the_calendar_lists_a_months_days_with_make_ups_marked():
    log = log_of(date(2025, 3, 1), date(2025, 3, 2), date(2025, 2, 28),
                 made_up=(date(2025, 3, 2),))
    view = calendar_view(log, PROGRAM, month="2025-03", today=date(2025, 3, 3),
                         joined=date(2025, 1, 1))
    assert [(x.date, x.make_up) for x in view.days] == [("2025-03-01", False),
                                                        ("2025-03-02", True)]
    assert (view.streak, view.make_up.used, view.make_up.eligible_dates) == (3, 1, [])


@pytest.mark.parametrize("month", ["2024-03", "2025-04"])
def test_the_calendar_covers_the_kept_months_only(month):
    with pytest.raises(MonthOutOfRange):
        calendar_view(CheckinLog(), PROGRAM, month=month, today=date(2025, 3, 3),
                      joined=date(2020, 1, 1))
    assert oldest_kept_month(date(2025, 3, 3)) == "2024-04"


def test_the_eligible_make_up_days_skip_checked_days_full_months_and_days_before_joining():
    today = date(2025, 3, 2)
    log = log_of(date(2025, 2, 27), date(2025, 2, 28), made_up=(date(2025, 2, 27),
                                                                date(2025, 2, 28)))
    view = calendar_view(log, PROGRAM, month=None, today=today, joined=date(2025, 1, 1))
    assert view.make_up.eligible_dates == ["2025-03-01"]
    later = calendar_view(CheckinLog(), PROGRAM, month=None, today=today,
                          joined=date(2025, 3, 1))
    assert later.make_up.eligible_dates == ["2025-03-01"]
