"""The money oracle's model of activity: daily check-ins, make-ups and tasks.

Written from docs/checkins.md, not from the domain code:

- one check-in per calendar day of the program's time zone; the same day again is
  refused (`already_checked_in`);
- a check-in earns `checkin.points` and `growth.checkin`; the streak bonus follows the
  documented invariant: the bonuses a member has been paid equal the sum of
  floor(run / streakDays) over the maximal runs of their checked-in days, so a day pays
  what it adds to that sum (a make-up that closes a gap pays the completed bonus once);
- a make-up fills a missed day within `makeUpDays` before today, at most `makeUpPerMonth`
  per month of the missed day, never before the member joined, and costs `makeUpCost`
  points debited (soonest-expiring first) in the same posting, before its own credit;
- tasks happen once per occurrence (`once`, `daily` in the program's zone, `per_order`
  for an order this member paid); `review.posted` redeliveries credit once;
- points earned by activity go into one lot per expiry (earned in year Y: end of Y+1),
  pay the points debt first, and their growth counts in the month the posting is made
  (and upgrades at once, with an immediately available gift).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from money_model import MLot, MoneyModel, Refused

from membership.domain import calendar

ONE_DAY = timedelta(days=1)


def bonuses_paid(days: set[date], streak_days: int) -> int:
    """Sum of floor(run / streakDays) over the maximal runs of consecutive days."""
    total, run, previous = 0, 0, None
    for day in sorted(days):
        run = run + 1 if previous is not None and day - previous == ONE_DAY else 1
        if run % streak_days == 0:
            total += 1
        previous = day
    return total


class ActivityModel(MoneyModel):
    def __init__(self, program, member_id: str, now: datetime) -> None:
        super().__init__(program, member_id, now)
        self.joined = self.local_day(now)
        self.days: dict[date, bool] = {}  # checked-in day -> made up
        self.occurrences: set[str] = set()
        self.profile = {"nickname": "o", "storeId": None}
        # An activity lot keeps the instant of its first credit, even when used up.
        self.lot_earned_at: dict[str, datetime] = {}

    def local_day(self, now: datetime) -> date:
        return calendar.utc(now).astimezone(ZoneInfo(self.tz)).date()

    # ---- what the member sees ----------------------------------------------------------

    def streak(self, today: date) -> int:
        """Through today, or through yesterday while today's check-in is still open."""
        day = today if today in self.days else today - ONE_DAY
        count = 0
        while day in self.days:
            count += 1
            day -= ONE_DAY
        return count

    def checked_days_since(self, first: date) -> set[tuple[date, bool]]:
        return {(d, m) for d, m in self.days.items() if d >= first}

    # ---- value -------------------------------------------------------------------------

    def credit_activity(self, amount: int, now: datetime) -> None:
        """Into the activity lot of this expiry; the points debt is paid first."""
        pay = min(amount, self.points_debt)
        self.points_debt -= pay
        amount -= pay
        if not amount:
            return
        expires = calendar.end_of_next_year(now, self.tz)
        lot_id = f"activity-{calendar.day_of(expires, self.tz)}"
        earned_at = self.lot_earned_at.setdefault(lot_id, now)
        lot = self.lots.get(lot_id)
        if lot is None:
            lot = self.lots[lot_id] = MLot(lot_id, expires, earned_at, 0)
        lot.remaining += amount

    def earn(self, points: int, growth: int, now: datetime, source_key: str) -> None:
        if points:
            self.credit_activity(points, now)
        if growth:
            month = calendar.month_of(now, self.tz)
            self.growth[month] = self.growth.get(month, 0) + growth
            qualified = self.qualified(self.rolling_growth(month))
            if self.tier_index(qualified) > self.tier_index(self.tier):
                self.change_tier(qualified, now=now, source_key=source_key, effective_at=now,
                                 gift_pending_until=None)

    # ---- check-ins ---------------------------------------------------------------------

    def _fill(self, day: date, *, make_up: bool, now: datetime) -> dict:
        rules = self.program.checkin
        before = bonuses_paid(set(self.days), rules.streak_days)
        after = bonuses_paid(set(self.days) | {day}, rules.streak_days)
        bonus = (after - before) * rules.streak_bonus
        cost = rules.make_up_cost if make_up else 0
        if cost:
            self.take_points(cost, now)
        self.days[day] = make_up
        self.earn(rules.points + bonus, self.program.growth.checkin, now,
                  f"checkin:{self.member_id}:{day.isoformat()}")
        today = self.local_day(now)
        return {"date": day.isoformat(), "makeUp": make_up, "points": rules.points,
                "bonus": bonus, "growth": self.program.growth.checkin, "cost": cost,
                "streak": self.streak(today)}

    def check_in(self, now: datetime) -> dict:
        today = self.local_day(now)
        if today in self.days:
            raise Refused("already_checked_in")
        return self._fill(today, make_up=False, now=now)

    def make_up(self, day: date, now: datetime) -> dict:
        rules = self.program.checkin
        today = self.local_day(now)
        if day > today:
            raise Refused("future")
        if day == today:
            raise Refused("today")
        if (today - day).days > rules.make_up_days:
            raise Refused("too_old")
        if day < self.joined:
            raise Refused("before_joined")
        if day in self.days:
            raise Refused("already_checked_in")
        month = (day.year, day.month)
        used = sum(1 for d, made_up in self.days.items()
                   if made_up and (d.year, d.month) == month)
        if used >= rules.make_up_per_month:
            raise Refused("monthly_limit")
        if sum(lot.remaining for lot in self.spendable(now)) < rules.make_up_cost:
            raise Refused("not_enough_points")
        return self._fill(day, make_up=True, now=now)

    # ---- tasks -------------------------------------------------------------------------

    def _task(self, task_id: str):
        for task in self.program.tasks:
            if task.id == task_id:
                return task
        raise Refused("task_not_found")

    def _occurrence(self, task, now: datetime, order_id: str | None) -> str:
        key = f"task:{task.id}:{self.member_id}"
        if task.limit == "daily":
            return f"{key}:{self.local_day(now).isoformat()}"
        if task.limit == "per_order":
            return f"{key}:{order_id}"
        return key

    def complete_task(self, task_id: str, order_id: str | None, now: datetime) -> dict:
        """A task the app reports."""
        task = self._task(task_id)
        if task.trigger != "member":
            raise Refused("task_not_reportable")
        if task.limit == "per_order":
            if order_id is None:
                raise Refused("order_required")
            if order_id not in self.orders:
                raise Refused("order_not_paid")
        elif order_id is not None:
            raise Refused("invalid_request")
        key = self._occurrence(task, now, order_id)
        if key in self.occurrences:
            raise Refused("task_already_completed")
        if any(not self.profile.get(name) for name in task.profile_fields):
            raise Refused("task_requirements_not_met")
        self.occurrences.add(key)
        self.earn(task.points, task.growth, now, key)
        return {"taskId": task.id, "points": task.points, "growth": task.growth,
                "orderId": order_id}

    def review_posted(self, order_id: str, posted_at: datetime, now: datetime) -> None:
        """Every task triggered by review.posted, once per occurrence; redeliveries are
        no-ops; a review of an order this member has not paid credits nothing."""
        tasks = [t for t in self.program.tasks if t.trigger == "review.posted"]
        if not tasks:
            return
        if order_id not in self.orders:
            raise Refused("order_not_paid")
        for task in tasks:
            key = self._occurrence(task, posted_at, order_id)
            if key not in self.occurrences:
                self.occurrences.add(key)
                self.earn(task.points, task.growth, now, key)
