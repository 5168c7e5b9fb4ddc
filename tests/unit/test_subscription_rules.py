"""Paid membership (PLUS) rules, pure: calendar terms in the program's time zone, extend vs
lapse, status at read time, trial once, renewal dates, monthly packs, refunds to the fen and
the checkout benefit helpers."""
import calendar as stdcal
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from membership.domain import subscriptions as subs
from membership.domain.program import PaidPlan, Program, default_program
from membership.domain.subscriptions import BenefitsUsed, TermRecord

PROGRAM = default_program()
PLUS = PROGRAM.paid_plans[0]
SH = "Asia/Shanghai"
NY = "America/New_York"
# Santiago changes its clocks at midnight: a local day may begin at 01:00.
ZONES = st.sampled_from([SH, NY, "UTC", "Europe/London", "Australia/Lord_Howe",
                         "America/Santiago"])
US = timedelta(microseconds=1)


def at(tz: str, *args: int) -> datetime:
    """An instant given on the local clock of `tz`, in UTC."""
    return datetime(*args, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def local(instant: datetime, tz: str) -> datetime:
    return instant.astimezone(ZoneInfo(tz))


def is_end_of_local_day(instant: datetime, tz: str) -> bool:
    after = local(instant + US, tz)
    return after.hour == 0 and after.minute == 0 and after.second == 0 and (
        after.microsecond == 0) and local(instant, tz).date() != after.date()


def record(span: subs.TermSpan, term: str, *, paid_at: datetime, price: int | None = None,
           term_id: str = "T1", refunded_at: datetime | None = None) -> TermRecord:
    return TermRecord(term_id=term_id, plan_id="PLUS", term=term,
                      price=subs.term_price(PLUS, term) if price is None else price,
                      paid_at=paid_at, starts_at=span.starts_at, ends_at=span.ends_at,
                      anchor=span.anchor, months_from_anchor=span.months_from_anchor,
                      refunded_at=refunded_at)


def buy(term: str, now: datetime, tz: str = SH, current: TermRecord | None = None,
        term_id: str = "T1") -> TermRecord:
    span = subs.next_term(PLUS, term, now=now, tz=tz, current=current)
    return record(span, term, paid_at=now, term_id=term_id)


def program_in(tz: str) -> Program:
    return PROGRAM.model_copy(update={"time_zone": tz})


instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31),
                        timezones=st.just(UTC))
terms = st.sampled_from(["monthly", "quarterly", "yearly"])


# ---- the program ------------------------------------------------------------------------

def test_default_plus_has_the_design_prices_trial_and_benefits():
    assert (PLUS.prices.monthly, PLUS.prices.quarterly, PLUS.prices.yearly) == (1900, 4900, 14900)
    assert PLUS.trial_days == 7 and PLUS.cooling_off_days == 7
    assert PLUS.points_bonus_pct == 100 and PLUS.free_shipping is True
    assert PLUS.discount_bps == 0
    assert [(c.template_id, c.quantity) for c in PLUS.monthly_gift.coupons] == [
        ("PLUS-10OFF100", 2)]


def test_a_stored_plan_without_the_new_fields_loads_with_defaults():
    plan = PaidPlan.model_validate({"id": "P", "name": "P", "prices": {
        "monthly": 1, "quarterly": 2, "yearly": 3}})
    assert (plan.trial_days, plan.cooling_off_days, plan.discount_bps, plan.points_bonus_pct,
            plan.free_shipping, plan.monthly_gift.coupons) == (0, 7, 0, 0, False, ())


def test_a_plan_discount_above_10000_bps_is_refused():
    with pytest.raises(ValidationError):
        PaidPlan.model_validate({"id": "P", "name": "P", "discountBps": 10_001, "prices": {
            "monthly": 1, "quarterly": 2, "yearly": 3}})


def test_the_default_program_round_trips_through_its_wire_form():
    doc = PROGRAM.model_dump(by_alias=True, mode="json")
    assert Program.model_validate(doc) == PROGRAM
    assert doc["paidPlans"][0]["monthlyGift"]["coupons"][0]["templateId"] == "PLUS-10OFF100"


# ---- term arithmetic --------------------------------------------------------------------

def test_31_january_plus_one_month_ends_at_the_end_of_28_february():
    term = buy("monthly", at(SH, 2025, 1, 31, 10))
    assert term.ends_at == at(SH, 2025, 3, 1) - US


def test_31_january_plus_one_month_in_a_leap_year_ends_at_the_end_of_29_february():
    term = buy("monthly", at(SH, 2024, 1, 31, 10))
    assert term.ends_at == at(SH, 2024, 3, 1) - US


def test_a_term_ends_at_the_end_of_a_local_day_not_after_86400_second_days():
    # Bought at 23:30 local on 15 March in New York, across the DST change of 9 March.
    term = buy("monthly", at(NY, 2025, 3, 1, 23, 30), tz=NY)
    assert term.ends_at == at(NY, 2025, 4, 2) - US


def test_a_term_ends_before_a_local_day_that_begins_at_one_in_the_morning():
    # Santiago skipped from 00:00 to 01:00 on 8 Sep 2024: 7 Sep ended at 04:00 UTC.
    term = buy("monthly", at("America/Santiago", 2024, 8, 7, 12), tz="America/Santiago")
    assert term.ends_at == datetime(2024, 9, 8, 4, tzinfo=UTC) - US


def test_quarterly_and_yearly_count_three_and_twelve_calendar_months():
    now = at(SH, 2025, 11, 30, 9)
    assert buy("quarterly", now).ends_at == at(SH, 2026, 3, 1) - US  # 28 Feb 2026
    assert buy("yearly", now).ends_at == at(SH, 2026, 12, 1) - US


def test_a_yearly_term_from_29_february_ends_on_28_february():
    assert buy("yearly", at(SH, 2024, 2, 29, 12)).ends_at == at(SH, 2025, 3, 1) - US


def test_a_trial_lasts_trial_days_days_to_the_end_of_a_local_day():
    term = buy("trial", at(SH, 2025, 6, 10, 8))
    assert term.ends_at == at(SH, 2025, 6, 18) - US and term.price == 0


def test_the_local_date_decides_the_start_not_the_utc_date():
    # 20:00 UTC on 31 Jan is already 1 Feb in Shanghai: the term runs to the end of 1 March.
    term = buy("monthly", datetime(2025, 1, 31, 20, tzinfo=UTC))
    assert term.ends_at == at(SH, 2025, 3, 2) - US


def test_buying_while_active_extends_from_the_current_end():
    first = buy("monthly", at(SH, 2025, 1, 10, 9))
    second = buy("monthly", at(SH, 2025, 1, 20, 9), current=first, term_id="T2")
    assert second.starts_at == first.ends_at + US
    assert second.ends_at == at(SH, 2025, 3, 11) - US


def test_buying_after_a_lapse_starts_now_not_at_the_old_end():
    first = buy("monthly", at(SH, 2025, 1, 10, 9))
    now = at(SH, 2025, 4, 2, 15)
    second = buy("monthly", now, current=first, term_id="T2")
    assert second.starts_at == now
    assert second.ends_at == at(SH, 2025, 5, 3) - US


def test_a_plan_is_lapsed_from_its_ends_at_as_the_profile_reads_it():
    term = buy("monthly", at(SH, 2025, 1, 10, 9))
    assert subs.is_active(term.ends_at, term.ends_at - US)
    assert not subs.is_active(term.ends_at, term.ends_at)


def test_extensions_from_31_january_keep_to_month_ends_instead_of_drifting_to_the_28th():
    current = buy("monthly", at(SH, 2025, 1, 31, 9))
    ends = []
    for i in range(3):
        current = buy("monthly", at(SH, 2025, 2, 1, 9), current=current, term_id=f"T{i + 2}")
        ends.append(local(current.ends_at, SH).date())
    assert ends == [date(2025, 3, 31), date(2025, 4, 30), date(2025, 5, 31)]


def test_a_paid_term_bought_during_a_trial_starts_after_the_trial_and_keeps_its_days():
    trial = buy("trial", at(SH, 2025, 1, 31, 9))  # ends 7 Feb
    paid = buy("monthly", at(SH, 2025, 2, 3, 9), current=trial, term_id="T2")
    assert paid.starts_at == at(SH, 2025, 2, 8)
    assert paid.ends_at == at(SH, 2025, 3, 8) - US


def test_the_price_of_each_term_comes_from_the_plan_and_a_trial_is_free():
    assert [subs.term_price(PLUS, t) for t in ("monthly", "quarterly", "yearly", "trial")] == [
        1900, 4900, 14900, 0]


@given(now=instants, tz=ZONES, term=terms)
def test_a_new_term_starts_now_and_ends_at_the_end_of_a_local_day(now, tz, term):
    span = subs.next_term(PLUS, term, now=now, tz=tz, current=None)
    assert span.starts_at == now and not span.extends
    assert is_end_of_local_day(span.ends_at, tz)
    assert span.ends_at > now


@given(now=instants, tz=ZONES, term=terms)
def test_a_new_term_ends_on_the_start_day_n_months_later_clamped_to_the_month_end(now, tz, term):
    start = local(now, tz).date()
    months = subs.TERM_MONTHS[term]
    end = local(subs.next_term(PLUS, term, now=now, tz=tz, current=None).ends_at, tz).date()
    index = start.year * 12 + start.month - 1 + months
    assert (end.year, end.month) == (index // 12, index % 12 + 1)
    last_day = stdcal.monthrange(end.year, end.month)[1]
    assert end.day == min(start.day, last_day)


@given(now=instants, tz=ZONES, term=terms, later=st.integers(0, 400 * 86_400))
def test_an_extension_while_active_is_contiguous_and_counts_months_from_the_anchor(
        now, tz, term, later):
    first = buy("monthly", now, tz=tz)
    bought = now + timedelta(seconds=later)
    second = buy(term, bought, tz=tz, current=first, term_id="T2")
    start_day = local(now, tz).date()
    if bought < first.ends_at:
        assert second.starts_at == first.ends_at + US
        months = 1 + subs.TERM_MONTHS[term]
        assert local(second.ends_at, tz).date() == subs.add_months(start_day, months)
    else:
        assert second.starts_at == bought
    assert is_end_of_local_day(second.ends_at, tz)
    assert second.ends_at > first.ends_at


@given(day=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 1, 1)),
       months=st.integers(0, 240))
def test_add_months_lands_in_the_right_month_clamped(day, months):
    moved = subs.add_months(day, months)
    assert (moved.year * 12 + moved.month) - (day.year * 12 + day.month) == months
    assert moved.day == min(day.day, stdcal.monthrange(moved.year, moved.month)[1])


@given(year=st.integers(2000, 2090), tz=ZONES)
def test_january_31_plus_one_month_is_the_last_day_of_february_in_every_year(year, tz):
    term = buy("monthly", at(tz, year, 1, 31, 12), tz=tz)
    assert local(term.ends_at, tz).date() == date(year, 2, 29 if stdcal.isleap(year) else 28)


# ---- status -----------------------------------------------------------------------------

def test_no_terms_means_no_status():
    assert subs.status_of([], at(SH, 2025, 1, 1)) is None


def test_status_is_trial_during_a_trial_and_active_during_a_paid_term():
    trial = buy("trial", at(SH, 2025, 1, 1, 9))
    paid = buy("monthly", at(SH, 2025, 1, 2, 9), current=trial, term_id="T2")
    assert subs.status_of([trial, paid], at(SH, 2025, 1, 3)) == "trial"
    assert subs.status_of([trial, paid], at(SH, 2025, 1, 20)) == "active"


def test_status_is_lapsed_from_ends_at():
    term = buy("monthly", at(SH, 2025, 1, 1, 9))
    assert subs.status_of([term], term.ends_at - US) == "active"
    assert subs.status_of([term], term.ends_at) == "lapsed"


def test_status_is_refunded_when_the_newest_term_was_refunded():
    term = buy("monthly", at(SH, 2025, 1, 1, 9)).model_copy(
        update={"refunded_at": at(SH, 2025, 1, 3)})
    assert subs.status_of([term], at(SH, 2025, 1, 4)) == "refunded"
    assert subs.plan_ends_at([term]) is None


def test_trial_used_is_true_once_any_trial_of_the_plan_exists():
    assert not subs.trial_used([buy("monthly", at(SH, 2025, 1, 1))], "PLUS")
    assert subs.trial_used([buy("trial", at(SH, 2020, 1, 1))], "PLUS")


# ---- renewal ----------------------------------------------------------------------------

def test_the_next_renewal_is_the_local_day_the_plan_ends_and_notice_is_five_days_before():
    term = buy("monthly", at(SH, 2025, 1, 31, 9))
    renewal = subs.next_renewal_on(term.ends_at, auto_renew=True, now=at(SH, 2025, 2, 1), tz=SH)
    assert renewal == date(2025, 2, 28)
    assert subs.renewal_due_on(renewal) == date(2025, 2, 23)


def test_no_renewal_date_when_auto_renew_is_off_or_the_plan_lapsed():
    term = buy("monthly", at(SH, 2025, 1, 31, 9))
    assert subs.next_renewal_on(term.ends_at, auto_renew=False, now=at(SH, 2025, 2, 1),
                                tz=SH) is None
    assert subs.next_renewal_on(term.ends_at, auto_renew=True, now=term.ends_at,
                                tz=SH) is None
    assert subs.renewal_due_on(None) is None


# ---- monthly gift packs -----------------------------------------------------------------

def test_a_quarterly_term_owes_one_pack_per_month_as_each_month_begins():
    term = buy("quarterly", at(SH, 2025, 1, 31, 9))
    assert subs.gift_packs_due(term, date(2025, 1, 31), SH) == [0]
    assert subs.gift_packs_due(term, date(2025, 2, 27), SH) == [0]
    assert subs.gift_packs_due(term, date(2025, 2, 28), SH) == [0, 1]
    assert subs.gift_packs_due(term, date(2025, 3, 31), SH) == [0, 1, 2]
    assert subs.gift_packs_due(term, date(2025, 1, 30), SH) == []


def test_an_extension_owes_its_first_pack_on_its_first_day():
    first = buy("monthly", at(SH, 2025, 1, 10, 9))
    second = buy("monthly", at(SH, 2025, 1, 20, 9), current=first, term_id="T2")
    assert subs.gift_packs_due(second, date(2025, 2, 10), SH) == []
    assert subs.gift_packs_due(second, date(2025, 2, 11), SH) == [0]


def test_a_yearly_term_owes_twelve_packs_and_trials_and_refunded_terms_none():
    term = buy("yearly", at(SH, 2025, 3, 5, 9))
    assert subs.gift_packs_due(term, date(2026, 3, 5), SH) == list(range(12))
    assert subs.gift_packs_due(buy("trial", at(SH, 2025, 3, 5)), date(2025, 3, 9), SH) == []
    refunded = term.model_copy(update={"refunded_at": at(SH, 2025, 3, 6)})
    assert subs.gift_packs_due(refunded, date(2025, 6, 1), SH) == []


def test_the_gift_pack_key_names_the_term_and_the_month():
    assert subs.gift_pack_key("T1", 3) == "T1#03"


@given(now=instants, tz=ZONES, term=terms)
def test_pack_months_are_one_per_month_in_order_inside_the_term(now, tz, term):
    record_ = buy(term, now, tz=tz)
    starts = subs.gift_month_starts(record_, tz)
    assert len(starts) == subs.TERM_MONTHS[term]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert starts[0] == local(now, tz).date()
    assert starts[-1] <= local(record_.ends_at, tz).date()


# ---- refunds ----------------------------------------------------------------------------

def test_a_refund_within_cooling_off_without_benefits_is_the_full_price():
    term = buy("monthly", at(SH, 2025, 1, 10, 9))
    assert subs.refund_amount(term, PLUS, PROGRAM, BenefitsUsed(), at(SH, 2025, 1, 17, 23)) == 1900


def test_cooling_off_ends_at_the_end_of_the_seventh_local_day_after_payment():
    term = buy("monthly", at(SH, 2025, 1, 10, 9))
    assert subs.in_cooling_off(term, PLUS, at(SH, 2025, 1, 18) - US, SH)
    assert not subs.in_cooling_off(term, PLUS, at(SH, 2025, 1, 18), SH)


def test_a_refund_after_cooling_off_is_unused_whole_days_pro_rata_rounded_down():
    # 10 Jan .. 10 Feb touches 32 local days; on 20 Jan 21 days remain after today.
    term = buy("monthly", at(SH, 2025, 1, 10, 9))
    assert subs.term_days(term, SH) == 32
    assert subs.unused_days(term, at(SH, 2025, 1, 20, 12), SH) == 21
    assert subs.refund_amount(term, PLUS, PROGRAM, BenefitsUsed(),
                              at(SH, 2025, 1, 20, 12)) == 1900 * 21 // 32 == 1246


def test_a_refund_within_cooling_off_with_benefits_used_is_pro_rata_minus_their_value():
    # 2 days later, a 10-yuan coupon redeemed and 300 bonus points (3 yuan) earned.
    term = buy("monthly", at(SH, 2025, 1, 10, 9))
    used = BenefitsUsed(coupon_discount=1000, bonus_points=300)
    expected = 1900 * 29 // 32 - 1000 - 300
    assert subs.refund_amount(term, PLUS, PROGRAM, used, at(SH, 2025, 1, 12, 9)) == expected == 421


def test_bonus_points_count_at_their_checkout_value_rounded_in_the_members_favour():
    assert subs.benefits_value(BenefitsUsed(bonus_points=199), PROGRAM) == 199  # 100 = 1 yuan
    dear = PROGRAM.model_copy(update={"points": PROGRAM.points.model_copy(
        update={"points_per_yuan_redeemed": 300})})
    assert subs.benefits_value(BenefitsUsed(bonus_points=199), dear) == 66  # 66.33 fen
    assert subs.benefits_value(BenefitsUsed(coupon_discount=5, plan_discount=7), PROGRAM) == 12


def test_a_refund_never_goes_below_zero():
    term = buy("monthly", at(SH, 2025, 1, 10, 9))
    used = BenefitsUsed(coupon_discount=5000)
    assert subs.refund_amount(term, PLUS, PROGRAM, used, at(SH, 2025, 1, 20)) == 0


def test_a_term_not_begun_refunds_pro_rata_in_full_after_cooling_off():
    first = buy("yearly", at(SH, 2025, 1, 10, 9))
    second = buy("monthly", at(SH, 2025, 1, 10, 10), current=first, term_id="T2")
    assert subs.refund_amount(second, PLUS, PROGRAM, BenefitsUsed(),
                              at(SH, 2025, 3, 1)) == 1900


def test_a_trial_and_a_refunded_term_refund_nothing():
    trial = buy("trial", at(SH, 2025, 1, 10, 9))
    assert subs.refund_amount(trial, PLUS, PROGRAM, BenefitsUsed(), at(SH, 2025, 1, 11)) == 0
    refunded = buy("monthly", at(SH, 2025, 1, 10)).model_copy(
        update={"refunded_at": at(SH, 2025, 1, 11)})
    assert subs.refund_amount(refunded, PLUS, PROGRAM, BenefitsUsed(), at(SH, 2025, 1, 12)) == 0


def test_a_lapsed_term_refunds_nothing_after_cooling_off():
    term = buy("monthly", at(SH, 2025, 1, 10, 9))
    assert subs.refund_amount(term, PLUS, PROGRAM, BenefitsUsed(), at(SH, 2025, 3, 1)) == 0


@settings(max_examples=200)
@given(now=instants, tz=ZONES, term=terms, days=st.integers(0, 400),
       coupon=st.integers(0, 20_000), points=st.integers(0, 20_000))
def test_a_refund_is_between_zero_and_the_price_and_matches_the_rule_to_the_fen(
        now, tz, term, days, coupon, points):
    program = program_in(tz)
    bought = buy(term, now, tz=tz)
    when = now + timedelta(days=days, hours=3)
    used = BenefitsUsed(coupon_discount=coupon, bonus_points=points)
    amount = subs.refund_amount(bought, PLUS, program, used, when)
    assert 0 <= amount <= bought.price
    if not used.any and subs.in_cooling_off(bought, PLUS, when, tz):
        assert amount == bought.price
    else:
        total = (local(bought.ends_at, tz).date() - local(bought.starts_at, tz).date()).days + 1
        left = max((local(bought.ends_at, tz).date() - local(when, tz).date()).days, 0) \
            if when < bought.ends_at else 0
        points_fen = points * 100 // program.points.points_per_yuan_redeemed
        assert amount == max(bought.price * left // total - coupon - points_fen, 0)


@given(now=instants, tz=ZONES, term=terms, days=st.integers(0, 400))
def test_a_later_refund_of_the_same_term_never_pays_more(now, tz, term, days):
    program = program_in(tz)
    bought = buy(term, now, tz=tz)
    early = subs.refund_amount(bought, PLUS, program, BenefitsUsed(coupon_discount=1), now)
    late = subs.refund_amount(bought, PLUS, program, BenefitsUsed(coupon_discount=1),
                              now + timedelta(days=days))
    assert late <= early


# ---- checkout benefits ------------------------------------------------------------------

MEMBER_PRICE = PLUS.model_copy(update={"discount_bps": 300})


def test_the_better_of_tier_and_plan_discount_applies_never_both():
    v1, v2, v3 = PROGRAM.tiers[0], PROGRAM.tiers[1], PROGRAM.tiers[2]
    assert subs.member_discount(v1, MEMBER_PRICE) == (300, "plan")
    assert subs.member_discount(v2, MEMBER_PRICE) == (300, "plan")
    assert subs.member_discount(v3, MEMBER_PRICE) == (500, "tier")
    assert subs.member_discount(v3, None) == (500, "tier")


def test_a_tie_between_tier_and_plan_discount_goes_to_the_tier():
    v2 = PROGRAM.tiers[1]
    assert subs.member_discount(v2, PLUS.model_copy(update={"discount_bps": 200})) == (200, "tier")


def test_points_bonus_pct_is_added_to_the_tier_multiplier():
    assert subs.points_multiplier_pct(PROGRAM.tiers[0], PLUS) == 200
    assert subs.points_multiplier_pct(PROGRAM.tiers[2], PLUS) == 250
    assert subs.points_multiplier_pct(PROGRAM.tiers[2], None) == 150


def test_free_shipping_comes_from_the_plan_or_the_tier():
    assert subs.free_shipping(PROGRAM.tiers[0], PLUS)
    assert not subs.free_shipping(PROGRAM.tiers[0], None)
    assert subs.free_shipping(PROGRAM.tiers[2], None)


def test_the_plan_counts_at_checkout_only_if_active_at_paid_at():
    ends = at(SH, 2025, 2, 10) - US
    assert subs.active_plan(PROGRAM, "PLUS", ends, ends - US) == PLUS
    assert subs.active_plan(PROGRAM, "PLUS", ends, ends) is None
    assert subs.active_plan(PROGRAM, None, None, ends) is None
    assert subs.active_plan(PROGRAM, "GONE", ends, ends - US) is None
