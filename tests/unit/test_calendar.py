"""Calendar rules on the program's clock (Asia/Shanghai, UTC+8)."""
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from membership.domain import calendar

TZ = "Asia/Shanghai"


def test_last_second_of_a_month_belongs_to_that_month():
    assert calendar.month_of(datetime(2026, 1, 31, 15, 59, 59, tzinfo=UTC), TZ) == "2026-01"


def test_local_midnight_on_the_first_starts_the_next_month():
    assert calendar.month_of(datetime(2026, 1, 31, 16, 0, 0, tzinfo=UTC), TZ) == "2026-02"


def test_rolling_months_cross_the_year():
    assert calendar.rolling_months("2026-02", 3) == ["2025-12", "2026-01", "2026-02"]


def test_lots_earned_in_a_year_expire_at_the_last_instant_of_the_next():
    expiry = calendar.end_of_next_year(datetime(2026, 3, 1, tzinfo=UTC), TZ)
    local = expiry.astimezone(calendar.zone(TZ))
    assert (local.year, local.month, local.day, local.hour, local.minute, local.second) == (
        2027, 12, 31, 23, 59, 59)


def test_earning_on_new_years_eve_local_counts_for_the_local_year():
    # 2026-12-31 20:00 UTC is already 2027-01-01 04:00 in Shanghai.
    expiry = calendar.end_of_next_year(datetime(2026, 12, 31, 20, 0, tzinfo=UTC), TZ)
    assert expiry.astimezone(calendar.zone(TZ)).year == 2028


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)))
def test_iso_strings_sort_like_instants(dt):
    later = dt.replace(microsecond=(dt.microsecond + 1) % 1_000_000)
    a, b = sorted([dt, later])
    assert (calendar.iso(a) <= calendar.iso(b))
    assert calendar.parse_iso(calendar.iso(dt)) == dt


@given(st.integers(min_value=-400, max_value=400))
def test_shifting_months_is_reversible(delta):
    assert calendar.shift_month(calendar.shift_month("2026-11", delta), -delta) == "2026-11"
