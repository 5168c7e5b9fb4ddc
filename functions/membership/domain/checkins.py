"""Daily check-in (签到), streaks and make-up check-ins (补签), as pure rules.

Days are calendar days of the program's time zone: the day turns at local midnight, never
at UTC midnight, and date arithmetic is on dates, so a 23- or 25-hour day (daylight
saving) is still one day.

A member's recent check-in days are a `CheckinLog` kept on the member item (the posting
rewrites that item anyway, so a check-in writes no item of its own): one integer per
month, bit d-1 set when day d was checked in, and bit 32+d-1 when that day was a make-up.
The log keeps `CALENDAR_MONTHS` months; older months are summarised by `carry`, the length
of the streak that ended on the day before the oldest kept month, so streak arithmetic
stays exact however long a streak runs.

Streak bonus. Every `streakDays`-th consecutive day pays `streakBonus`. The rule that makes
this exact under make-ups: a maximal run of n consecutive days has been paid
floor(n / streakDays) bonuses. Adding day d joins the run of `before` days ending at d-1
and the run of `after` days starting at d+1 into one of before + 1 + after days, so the
check-in pays floor((before+1+after)/N) - floor(before/N) - floor(after/N) bonuses: never
negative, and a bonus a make-up completes is paid once, by that make-up. With daily
check-ins (after = 0) that is one bonus on every N-th day.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from membership.domain import calendar
from membership.domain.activity import credit_activity_points
from membership.domain.ledger import PostingBuilder
from membership.domain.members import ApiModel, Member
from membership.domain.program import CheckinRules, Program
from membership.domain.tiers import upgrade_if_qualified
from membership.errors import Conflict, InvalidRequest

# Months of calendar kept on the member item, the current one included.
CALENDAR_MONTHS = 12
MAKE_UP_SHIFT = 32
ONE_DAY = timedelta(days=1)

Month = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]


# ---- errors -------------------------------------------------------------------------

class AlreadyCheckedIn(Conflict):
    code = "already_checked_in"


class MakeupNotAllowed(InvalidRequest):
    """`details.reason` says why: one of MAKE_UP_REASONS."""

    code = "makeup_not_allowed"


class MonthOutOfRange(InvalidRequest):
    code = "month_out_of_range"


MAKE_UP_REASONS = ("future", "today", "too_old", "before_joined", "already_checked_in",
                   "monthly_limit", "not_enough_points")


def _refuse(reason: str, message: str, **details: object) -> MakeupNotAllowed:
    return MakeupNotAllowed(message, reason=reason, **details)


# ---- days and months ----------------------------------------------------------------

def local_date(instant: datetime, tz: str) -> date:
    """The calendar day an instant falls on, on the program's clock."""
    return calendar.utc(instant).astimezone(calendar.zone(tz)).date()


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def first_day(month: str) -> date:
    return date(int(month[:4]), int(month[5:7]), 1)


def days_of(month: str) -> list[date]:
    start = first_day(month)
    end = first_day(calendar.shift_month(month, 1))
    return [start + timedelta(days=i) for i in range((end - start).days)]


def oldest_kept_month(today: date) -> str:
    return calendar.shift_month(month_key(today), -(CALENDAR_MONTHS - 1))


# ---- the log ------------------------------------------------------------------------

class CheckinLog(BaseModel):
    """The days a member checked in, over the kept months (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    months: dict[str, int] = Field(default_factory=dict)
    since: str | None = None  # the oldest month kept; None: nothing was ever dropped
    carry: int = Field(default=0, ge=0)  # streak that ended on the day before `since`

    @classmethod
    def of(cls, member: Member) -> CheckinLog:
        return cls(months=dict(member.checkin_months), since=member.checkin_since,
                   carry=member.checkin_carry)

    def member_fields(self) -> dict:
        return {"checkin_months": dict(self.months), "checkin_since": self.since,
                "checkin_carry": self.carry}

    def _word(self, day: date) -> int:
        return self.months.get(month_key(day), 0)

    def checked(self, day: date) -> bool:
        return bool(self._word(day) >> (day.day - 1) & 1)

    def made_up(self, day: date) -> bool:
        return bool(self._word(day) >> (MAKE_UP_SHIFT + day.day - 1) & 1)

    def with_day(self, day: date, *, make_up: bool) -> CheckinLog:
        if self.checked(day):
            raise ValueError(f"{day} is checked in already")
        bit = 1 << (day.day - 1)
        word = self._word(day) | bit | ((bit << MAKE_UP_SHIFT) if make_up else 0)
        return self.model_copy(update={"months": {**self.months, month_key(day): word}})

    def run_ending(self, day: date) -> int:
        """Consecutive checked-in days ending on `day` (0 when `day` was missed)."""
        start = first_day(self.since) if self.since else None
        count = 0
        while True:
            if start is not None and day < start:
                return count + (self.carry if day == start - ONE_DAY else 0)
            if not self.checked(day):
                return count
            count += 1
            day -= ONE_DAY

    def run_starting(self, day: date, until: date) -> int:
        """Consecutive checked-in days starting on `day`, up to `until` included."""
        count = 0
        while day <= until and self.checked(day):
            count += 1
            day += ONE_DAY
        return count

    def make_ups_in(self, month: str) -> int:
        return (self.months.get(month, 0) >> MAKE_UP_SHIFT).bit_count()

    def days_in(self, month: str) -> list[tuple[date, bool]]:
        """(day, made up) for every checked-in day of `month`, in order."""
        return [(d, self.made_up(d)) for d in days_of(month) if self.checked(d)]

    def trimmed(self, keep_from: str) -> CheckinLog:
        """Months before `keep_from` dropped, the streak through them kept in `carry`."""
        if not any(m < keep_from for m in self.months):
            return self
        carry = self.run_ending(first_day(keep_from) - ONE_DAY)
        return CheckinLog(months={m: w for m, w in self.months.items() if m >= keep_from},
                          since=keep_from, carry=carry)


def current_streak(log: CheckinLog, today: date) -> int:
    """The streak as the member sees it: through today, or through yesterday while today's
    check-in is still open."""
    if log.checked(today):
        return log.run_ending(today)
    return log.run_ending(today - ONE_DAY)


def next_bonus_in(streak: int, rules: CheckinRules) -> int:
    """How many more daily check-ins, the next one counted, until a streak bonus."""
    return rules.streak_days - streak % rules.streak_days


def bonuses_for(before: int, after: int, streak_days: int) -> int:
    """Streak bonuses earned by the day that joins a run of `before` days (ending the day
    before) and a run of `after` days (starting the day after)."""
    merged = before + 1 + after
    return max(0, merged // streak_days - before // streak_days - after // streak_days)


# ---- wire models --------------------------------------------------------------------

class CheckinRequest(ApiModel):
    date: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] | None = Field(
        default=None, description="A missed day to make up (补签), YYYY-MM-DD in the program's "
                                  "time zone; absent for today's check-in")

    @field_validator("date")
    @classmethod
    def _real_day(cls, value: str | None) -> str | None:
        if value is not None:
            date.fromisoformat(value)  # 2025-02-30 is refused here
        return value

    @property
    def day(self) -> date | None:
        return date.fromisoformat(self.date) if self.date else None


class CheckinAnswer(ApiModel):
    date: str = Field(description="The day checked in, YYYY-MM-DD (program time zone)")
    make_up: bool = Field(alias="makeUp")
    points: int = Field(description="Check-in points credited, the bonus not included")
    bonus: int = Field(description="Streak bonus points credited by this check-in")
    growth: int
    cost: int = Field(description="Points a make-up cost")
    streak: int = Field(description="The current streak after this check-in")
    next_bonus_in: int = Field(alias="nextBonusIn")
    checked_in_at: str = Field(alias="checkedInAt")


class CalendarDay(ApiModel):
    date: str
    make_up: bool = Field(alias="makeUp")


class MakeUpView(ApiModel):
    cost: int = Field(description="points per make-up")
    per_month: int = Field(alias="perMonth")
    used: int = Field(description="make-ups of days in the requested month")
    eligible_dates: list[str] = Field(
        alias="eligibleDates", description="Missed days that may still be made up, if the "
                                           "member has the points")


class CalendarView(ApiModel):
    month: str
    time_zone: str = Field(alias="timeZone")
    today: str
    checked_in_today: bool = Field(alias="checkedInToday")
    streak: int
    next_bonus_in: int = Field(alias="nextBonusIn")
    streak_days: int = Field(alias="streakDays")
    streak_bonus: int = Field(alias="streakBonus")
    days: list[CalendarDay]
    make_up: MakeUpView = Field(alias="makeUp")


# ---- the rules ----------------------------------------------------------------------

class CheckinPlan(BaseModel):
    """What one check-in does: pure, so the money oracle can model it."""

    model_config = ConfigDict(frozen=True)

    day: date
    make_up: bool
    points: int
    bonus: int
    growth: int
    cost: int
    streak: int
    next_bonus_in: int
    log: CheckinLog


def check_make_up_day(day: date, today: date, rules: CheckinRules) -> None:
    """The refusals that depend on the date alone (no state read)."""
    if day > today:
        raise _refuse("future", f"{day} has not happened yet")
    if day == today:
        raise _refuse("today", "today is checked in without a date")
    if (today - day).days > rules.make_up_days:
        raise _refuse("too_old", f"only the last {rules.make_up_days} days can be made up",
                      makeUpDays=rules.make_up_days)


def plan_checkin(log: CheckinLog, program: Program, *, today: date, joined: date,
                 spendable_points: int, day: date | None = None) -> CheckinPlan:
    """Today's check-in (day None) or a make-up of `day`; raises when refused."""
    rules = program.checkin
    make_up = day is not None
    if day is None:
        day = today
        if log.checked(today):
            raise AlreadyCheckedIn(f"{today} is checked in already", date=today.isoformat())
    else:
        check_make_up_day(day, today, rules)
        if day < joined:
            raise _refuse("before_joined", f"the member joined on {joined}",
                          joined=joined.isoformat())
        if log.checked(day):
            raise _refuse("already_checked_in", f"{day} is checked in already")
        used = log.make_ups_in(month_key(day))
        if used >= rules.make_up_per_month:
            raise _refuse("monthly_limit",
                          f"{used} of {rules.make_up_per_month} make-ups of "
                          f"{month_key(day)} are used", perMonth=rules.make_up_per_month)
        if spendable_points < rules.make_up_cost:
            raise _refuse("not_enough_points",
                          f"a make-up costs {rules.make_up_cost} points", cost=rules.make_up_cost,
                          available=spendable_points)
    before = log.run_ending(day - ONE_DAY)
    after = log.run_starting(day + ONE_DAY, until=today)
    bonuses = bonuses_for(before, after, rules.streak_days)
    updated = log.with_day(day, make_up=make_up).trimmed(oldest_kept_month(today))
    streak = current_streak(updated, today)
    return CheckinPlan(
        day=day, make_up=make_up, points=rules.points, bonus=bonuses * rules.streak_bonus,
        growth=program.growth.checkin, cost=rules.make_up_cost if make_up else 0,
        streak=streak, next_bonus_in=next_bonus_in(streak, rules), log=updated)


def checkin_source_key(member_id: str, day: date) -> str:
    """One per member and day, whether checked in on the day or made up later."""
    return f"checkin:{member_id}:{day.isoformat()}"


def spendable_points(builder: PostingBuilder) -> int:
    return sum(lot.remaining for lot in builder.live_lots() if lot.spendable(builder.now))


def apply_checkin(builder: PostingBuilder, program: Program, plan: CheckinPlan) -> dict:
    """The plan's legs: the make-up's cost first (paid from points held before), then the
    day's points and bonus as one credit into the activity lot, and the growth."""
    if plan.cost:
        builder.debit_points(plan.cost, reason="makeup_cost")
    earned = plan.points + plan.bonus
    if earned:
        credit_activity_points(builder, earned,
                               reason="checkin_streak_bonus" if plan.bonus else "checkin")
    if plan.growth:
        builder.credit_growth(plan.growth, reason="checkin")
    builder.set(**plan.log.member_fields())
    if plan.growth:
        upgrade_if_qualified(builder, program)
    builder.result = CheckinAnswer(
        date=plan.day.isoformat(), makeUp=plan.make_up, points=plan.points, bonus=plan.bonus,
        growth=plan.growth, cost=plan.cost, streak=plan.streak, nextBonusIn=plan.next_bonus_in,
        checkedInAt=calendar.wire(builder.now, builder.tz),
    ).model_dump(mode="json", by_alias=True)
    return builder.result


# ---- the calendar -------------------------------------------------------------------

def make_up_eligible(log: CheckinLog, rules: CheckinRules, *, today: date,
                     joined: date) -> list[date]:
    """Missed days a make-up may still fill (points aside), oldest first."""
    days = []
    for back in range(rules.make_up_days, 0, -1):
        day = today - timedelta(days=back)
        if day < joined or log.checked(day):
            continue
        if log.make_ups_in(month_key(day)) >= rules.make_up_per_month:
            continue
        days.append(day)
    return days


def calendar_view(log: CheckinLog, program: Program, *, month: str | None, today: date,
                  joined: date) -> CalendarView:
    rules = program.checkin
    month = month or month_key(today)
    oldest, newest = oldest_kept_month(today), month_key(today)
    if not oldest <= month <= newest:
        raise MonthOutOfRange(f"the calendar covers {oldest} to {newest}",
                              oldest=oldest, newest=newest)
    streak = current_streak(log, today)
    return CalendarView(
        month=month, timeZone=program.time_zone, today=today.isoformat(),
        checkedInToday=log.checked(today), streak=streak,
        nextBonusIn=next_bonus_in(streak, rules), streakDays=rules.streak_days,
        streakBonus=rules.streak_bonus,
        days=[CalendarDay(date=d.isoformat(), makeUp=m) for d, m in log.days_in(month)],
        makeUp=MakeUpView(
            cost=rules.make_up_cost, perMonth=rules.make_up_per_month,
            used=log.make_ups_in(month),
            eligibleDates=[d.isoformat() for d in make_up_eligible(log, rules, today=today,
                                                                    joined=joined)]),
    )
