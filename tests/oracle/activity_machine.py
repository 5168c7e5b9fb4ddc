"""The money oracle with activity: check-ins, make-ups and tasks among the money flow.

`ActivityMachine` adds to `MoneyMachine` today's check-in (and a second tap the same
day), make-ups of days from tomorrow back to beyond the window, task completions the app
reports (once, daily, per order; unknown and event-triggered tasks), `review.posted`
(paid, unpaid, unknown and another member's orders; redeliveries, edited reviews, and
reviews that overtook their payment, retried), profile edits that a task checks, and a
clock that stops at the edges of the program's day (23:59:59, 00:00:00, 07:59:59 and
08:00:00 local: UTC dates differ before 08:00 in Shanghai). `ActivityModel` predicts
every answer: the value, the refusal and its reason, the streak and the bonus; after
every step the stored calendar (the days and the streak) is compared too.
"""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from activity_model import ActivityModel
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule
from money_machine import LAST, TZ, MoneyMachine, PlanRefundRules
from money_model import Refused

from membership.domain import calendar
from membership.errors import DomainError

# Tasks the oracle's program adds to the default ones, so that every limit is reported by
# the app: `share` once a day, `unbox` once per paid order.
EXTRA_TASKS = (
    {"id": "share", "name": "Share the app", "points": 3, "growth": 1, "limit": "daily",
     "trigger": "member"},
    {"id": "unbox", "name": "Unboxing photo", "points": 7, "limit": "per_order",
     "trigger": "member"},
)

# What the activity rules did, by outcome (ORACLE_STATS=1 prints it): a run that never
# pays a bonus or never refuses for a reason has not tested it.
OUTCOMES: Counter[str] = Counter()

# Orders paid by members of earlier runs: a review of one is another member's order.
FOREIGN_ORDERS: list[str] = []


def reason_of(exc: DomainError) -> str:
    return str(exc.details.get("reason") or exc.code)


class ActivityMachine(PlanRefundRules, MoneyMachine):
    model_class = ActivityModel

    # Streak bonuses need runs of streakDays days: two pasts start one day short of them.
    HISTORIES = (*MoneyMachine.HISTORIES, "six_days_checked_in", "gap_before_today")

    @initialize(history=st.sampled_from(HISTORIES))
    def start(self, history="fresh"):
        MoneyMachine.start(self, history)

    def with_history(self, history: str) -> None:
        """six_days_checked_in: six daily check-ins, the seventh day open;
        gap_before_today: check-ins on days 1-5 and 7 (today), day 6 missed, so a make-up
        of yesterday closes the gap and completes the streak."""
        self.reviews: list[dict] = []
        if history == "six_days_checked_in":
            for _ in range(6):
                self._check_in()
                self._next_day(time(9, 0))
        elif history == "gap_before_today":
            for day in range(1, 8):
                if day != 6:
                    self._check_in()
                if day != 7:
                    self._next_day(time(9, 0))
        super().with_history(history)

    def teardown(self):
        FOREIGN_ORDERS.extend(getattr(self, "paid_orders", [])[-3:])

    # ---- the comparison ----------------------------------------------------------------

    def expect_exactly(self, label, model_op, system_op, *, count=True):
        """As `expect`, and a refusal must give the model's reason; an answer is returned
        with the model's prediction. `OUTCOMES` counts them."""
        snapshot = self.model._snapshot()
        try:
            predicted, refused = model_op(), None
        except Refused as exc:
            self.model._restore(snapshot)
            predicted, refused = None, exc.why
        try:
            result = system_op()
        except DomainError as exc:
            assert refused is not None, (
                f"the system refused ({exc.code}: {exc.message}) what the policy allows")
            assert reason_of(exc) == refused, ("refused for another reason", reason_of(exc),
                                               refused)
            OUTCOMES[f"{label}: {refused}"] += 1
            return exc, None
        assert refused is None, f"the system accepted what the policy refuses ({refused})"
        bonus = predicted.get("bonus") if isinstance(predicted, dict) else None
        if count:
            OUTCOMES[f"{label}: done" + (" with a streak bonus" if bonus else "")] += 1
        return result, predicted

    def observe(self) -> dict:
        from membership.domain.checkins import CheckinLog, current_streak, first_day
        from membership.domain.checkins import oldest_kept_month as oldest

        got = super().observe()
        log = CheckinLog.of(self.observed_member)
        today = self.model.local_day(self.now)
        since = first_day(oldest(today))
        got["checkin_days"] = {(d, m) for month in log.months
                               for d, m in log.days_in(month) if d >= since}
        got["streak"] = current_streak(log, today)
        return got

    def expected(self) -> dict:
        from membership.domain.checkins import first_day
        from membership.domain.checkins import oldest_kept_month as oldest

        want = super().expected()
        today = self.model.local_day(self.now)
        want["checkin_days"] = self.model.checked_days_since(first_day(oldest(today)))
        want["streak"] = self.model.streak(today)
        return want

    def compare(self, got: dict, want: dict) -> None:
        super().compare(got, want)
        assert got["checkin_days"] == want["checkin_days"], ("check-in days", got, want)
        assert got["streak"] == want["streak"], ("streak", got, want)

    # ---- check-ins ---------------------------------------------------------------------

    def _check_in(self, day=None):
        from membership.domain.checkins import CheckinRequest
        from membership.services import checkins

        request = CheckinRequest(date=day.isoformat() if day else None)
        if day is None:
            model_op = lambda: self.model.check_in(self.now)  # noqa: E731
        else:
            model_op = lambda: self.model.make_up(day, self.now)  # noqa: E731
        answer, predicted = self.expect_exactly(
            "make-up" if day else "check-in", model_op, lambda: checkins.check_in(self.sub, request, now=self.now))
        if predicted is not None:
            got = {k: answer[k] for k in predicted}
            assert got == predicted, ("check-in answer", got, predicted)
        return answer

    @precondition(lambda self: self.now < LAST)
    @rule(days_later=st.sampled_from([0, 1, 1, 1, 2]), taps=st.sampled_from([1, 1, 2]),
          at=st.sampled_from([time(9, 0), time(23, 59, 59), time(0, 0, 0), time(7, 59, 59)]))
    def check_in(self, days_later, taps, at):
        """Today's check-in, or the check-in of a member who comes back `days_later` days
        later (at `at` on the program's clock: daily checkers build streaks); a second tap
        the same day is 409 and writes nothing."""
        for _ in range(days_later):
            self._next_day(at)
        for _ in range(taps):
            self._check_in()

    @precondition(lambda self: self.now < LAST)
    @rule(days=st.sampled_from([3, 6, 7]), missed=st.sampled_from([None, None, 1, 2]))
    def daily_checker(self, days, missed):
        """A member who opens the app every morning for `days` days: streaks and their
        bonuses (the 7th day, the 14th...) among everything else. With `missed`, the day
        that many days before the last was missed, and is made up at the end (a make-up
        that closes a gap, within the window, while points and the month's limit allow)."""
        for day in range(days, 0, -1):
            self._next_day(time(9, 0))
            if day - 1 != missed:
                self._check_in()
        if missed is not None:
            self._check_in(self.model.local_day(self.now) - timedelta(days=missed))

    @rule(back=st.sampled_from([1, 1, 2, 3, 4, 0, -1]))
    def make_up(self, back):
        """A make-up of `back` days ago: within the window (1-3), too old (4), today (0)
        or the future (-1); refused for the model's reason, or filled at its cost."""
        self._check_in(self.model.local_day(self.now) - timedelta(days=back))

    # ---- tasks -------------------------------------------------------------------------

    @rule(store=st.sampled_from(["s1", None]))
    def edit_store(self, store):
        """The profile's store, which `profile_completed` requires."""
        from membership.domain.members import ProfileUpdate
        from membership.services import members

        members.edit_profile(self.sub, ProfileUpdate(storeId=store), now=self.now)
        self.model.profile["storeId"] = store

    def _an_order(self, data) -> str:
        # What is drawn must not depend on earlier runs: "foreign" is resolved after.
        choices = ["unknown", "foreign", *self.unpaid, *self.paid_orders]
        order_id = data.draw(st.sampled_from(choices), label="order")
        if order_id == "foreign":
            return FOREIGN_ORDERS[-1] if FOREIGN_ORDERS else f"SO-foreign-{self.run}"
        if order_id == "unknown":
            return f"SO-unknown-{self.run}"
        return order_id

    @rule(data=st.data(),
          task=st.sampled_from(["profile_completed", "share", "unbox", "review_posted",
                                "no_such_task"]),
          with_order=st.booleans())
    def complete_task(self, data, task, with_order):
        """A completion the app reports: once, daily, per order (a paid order of the
        member), a task an event completes, a task that does not exist."""
        from membership.domain.tasks import TaskCompletionRequest
        from membership.services import tasks

        order_id = self._an_order(data) if with_order else None
        request = TaskCompletionRequest(orderId=order_id)
        answer, predicted = self.expect_exactly(
            f"task {task}", lambda: self.model.complete_task(task, order_id, self.now),
            lambda: tasks.complete(self.sub, task, request, now=self.now))
        if predicted is not None:
            got = {k: answer[k] for k in predicted}
            assert got == predicted, ("task answer", got, predicted)

    def _deliver(self, kind: str, payload: dict):
        if kind != "review.posted":
            return super()._deliver(kind, payload)
        from membership.domain.tasks import ReviewPosted
        from membership.services import tasks

        posted_at = datetime.fromisoformat(payload["postedAt"])
        before = self.model.points_available + self.model.points_debt
        outcome, _ = self.expect_exactly(
            "review.posted",
            lambda: self.model.review_posted(payload["orderId"], posted_at, self.now),
            lambda: tasks.review_posted(ReviewPosted.model_validate(payload), posted_at,
                                        now=self.now), count=False)
        if not isinstance(outcome, DomainError):
            credited = self.model.points_available + self.model.points_debt > before
            OUTCOMES["review.posted: " + ("credited" if credited else "again, no-op")] += 1
        return outcome

    @rule(data=st.data(), again=st.sampled_from([None, None, "same", "edited"]))
    def review(self, data, again):
        """review.posted: of a paid, unpaid, unknown or another member's order; or the
        same review delivered again, or edited (another reviewId): credited once per order.
        A review that overtook its payment is retried, as EventBridge does."""
        if again and self.reviews:
            payload = dict(data.draw(st.sampled_from(self.reviews), label="review"))
            if again == "edited":
                payload["reviewId"] = self.next_id("RV")
        else:
            payload = {"memberId": self.member_id, "orderId": self._an_order(data),
                       "reviewId": self.next_id("RV"),
                       "postedAt": calendar.wire(self.now, TZ)}
            self.reviews.append(payload)
        if isinstance(self._deliver("review.posted", payload), DomainError):
            if payload["orderId"] in self.unpaid:  # its payment may still come
                self.early.append(("review.posted", payload))

    # ---- time ----------------------------------------------------------------------------

    @precondition(lambda self: self.now < LAST)
    @rule(at=st.sampled_from([time(23, 59, 59), time(0, 0, 0), time(7, 59, 59),
                              time(8, 0, 0)]))
    def clock_reaches(self, at):
        """The next instant the program's clock shows `at`: the edges of its day."""
        zone = ZoneInfo(TZ)
        local = self.now.astimezone(zone)
        target = datetime.combine(local.date(), at, tzinfo=zone)
        if target <= local:
            target = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
        self.now = target.astimezone(UTC)

    def _next_day(self, at: time) -> None:
        """To `at` on the next day of the program's clock."""
        zone = ZoneInfo(TZ)
        tomorrow = self.now.astimezone(zone).date() + timedelta(days=1)
        self.now = datetime.combine(tomorrow, at, tzinfo=zone).astimezone(UTC)
