"""The activity model against the examples docs/checkins.md gives (no DynamoDB): if the
model disagreed with the documentation, the oracle would check the wrong thing."""
from datetime import UTC, date, datetime, timedelta

import pytest
from activity_model import ActivityModel, bonuses_paid
from money_model import Refused

from membership.domain.program import default_program

DAY_1 = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def on(day: int, hour_utc: int = 1) -> datetime:
    return DAY_1 + timedelta(days=day - 1, hours=hour_utc - 1)


def model() -> ActivityModel:
    return ActivityModel(default_program(), "Mabcdefgh", DAY_1)


def test_a_run_of_n_days_has_paid_n_div_streak_days_bonuses():
    days = {date(2025, 3, d) for d in range(1, 15)} | {date(2025, 3, d) for d in range(20, 27)}
    assert bonuses_paid(days, 7) == 2 + 1


def test_the_seventh_daily_check_in_pays_the_bonus_and_the_eighth_does_not():
    m = model()
    answers = [m.check_in(on(day)) for day in range(1, 9)]
    assert [a["bonus"] for a in answers] == [0] * 6 + [20, 0]
    assert m.points_available == 100 + 8 * 5 + 20


def test_a_make_up_that_closes_a_gap_pays_the_completed_bonus_once():
    m = model()
    for day in (1, 2, 3, 5, 6, 7):
        m.check_in(on(day))
    answer = m.make_up(date(2025, 3, 4), on(7, 2))
    assert (answer["bonus"], answer["streak"], answer["cost"]) == (20, 7, 20)
    assert m.check_in(on(8))["bonus"] == 0


def test_a_make_up_behind_a_paid_run_owes_nothing_more():
    m = model()
    m.program = m.program.model_copy(update={"checkin": m.program.checkin.model_copy(
        update={"make_up_days": 10, "make_up_per_month": 5})})
    for day in (1, 2, 3, *range(5, 12)):
        m.check_in(on(day))
    assert m.make_up(date(2025, 3, 4), on(11, 2))["bonus"] == 0


def test_the_day_turns_at_midnight_in_shanghai_not_at_utc_midnight():
    m = model()
    m.check_in(datetime(2025, 3, 2, 15, 59, 59, tzinfo=UTC))  # 23:59:59 on 2 March
    with pytest.raises(Refused, match="already_checked_in"):
        m.check_in(datetime(2025, 3, 2, 0, 0, tzinfo=UTC))  # 08:00 on 2 March
    assert m.check_in(datetime(2025, 3, 2, 16, 0, tzinfo=UTC))["date"] == "2025-03-03"


@pytest.mark.parametrize(("back", "reason"), [(-1, "future"), (0, "today"), (4, "too_old")])
def test_a_make_up_outside_the_window_is_refused_for_its_reason(back, reason):
    m = model()
    with pytest.raises(Refused, match=reason):
        m.make_up(date(2025, 3, 10) - timedelta(days=back), on(10))


def test_check_in_points_go_into_one_lot_per_expiry_and_pay_points_debt_first():
    m = model()
    m.points_debt = 103
    m.lots.clear()
    m.check_in(on(1))
    m.check_in(on(2))
    assert (m.points_debt, m.points_available, len(m.lots)) == (93, 0, 0)
    for day in range(3, 24):
        m.check_in(on(day))
    assert m.points_debt == 0
    assert list(m.lots_by_expiry()) == [("2026-12-31T15:59:59.999999Z", False)]


def test_a_review_of_an_order_credits_once_and_an_unpaid_order_is_refused():
    m = model()
    with pytest.raises(Refused, match="order_not_paid"):
        m.review_posted("SO-1", on(1), on(1))
    m.orders["SO-1"] = object()
    m.review_posted("SO-1", on(1), on(1))
    m.review_posted("SO-1", on(2), on(2))
    assert m.points_available == 100 + 10
    assert m.growth == {"2025-03": 5}
