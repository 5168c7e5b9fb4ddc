"""The paid plan's daily schedule as pure rules: what a visit owes, and when the next is."""
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from membership.domain.program import default_program
from membership.domain.subscription_charges import SubscriptionCharged, renewal_term
from membership.domain.subscription_schedule import (
    ScheduleState,
    daily_work,
    next_due_on,
    visit_guards,
)
from membership.domain.subscriptions import TermRecord, gift_packs_due, next_term

TZ = "Asia/Shanghai"
PLUS = default_program().paid_plans[0]


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)


def bought(kinds: list[str], start: date, sid: str = "Mabcdefghij.PLUS") -> list[TermRecord]:
    terms: list[TermRecord] = []
    for n, kind in enumerate(kinds, 1):
        span = next_term(PLUS, kind, now=at(start), tz=TZ, current=terms[-1] if terms else None)
        terms.append(TermRecord(term_id=f"{sid}.{n:04d}", plan_id="PLUS", term=kind,
                                price=0, paid_at=at(start), starts_at=span.starts_at,
                                ends_at=span.ends_at, anchor=span.anchor,
                                months_from_anchor=span.months_from_anchor))
    return terms


def test_month_zero_is_owed_on_the_first_day():
    work = daily_work(bought(["monthly"], date(2026, 1, 31)), ScheduleState(),
                      auto_renew=False, now=at(date(2026, 1, 31), 12), tz=TZ)
    assert work.packs == (("Mabcdefghij.PLUS.0001", 0),)
    assert work.next_due_on == date(2026, 2, 23)  # the renewal notice day


def test_a_visit_after_everything_is_done_owes_nothing_and_leaves_the_index():
    terms = bought(["monthly"], date(2026, 1, 31))
    state = ScheduleState()
    for day in (date(2026, 1, 31), date(2026, 2, 23), date(2026, 3, 1)):
        state = daily_work(terms, state, auto_renew=False, now=at(day), tz=TZ).state
    last = daily_work(terms, state, auto_renew=False, now=at(date(2026, 3, 2)), tz=TZ)
    assert not last.posts and last.next_due_on is None


def test_the_renewal_notice_needs_auto_renew_on_its_day_and_is_handled_once():
    terms = bought(["monthly"], date(2026, 1, 31))
    state = daily_work(terms, ScheduleState(), auto_renew=True,
                       now=at(date(2026, 1, 31)), tz=TZ).state
    notice = daily_work(terms, state, auto_renew=True, now=at(date(2026, 2, 23)), tz=TZ)
    assert notice.renewal_due == terms[0]
    again = daily_work(terms, notice.state, auto_renew=True, now=at(date(2026, 2, 24)), tz=TZ)
    assert again.renewal_due is None


def test_a_lapse_is_owed_the_day_after_the_end_once():
    terms = bought(["monthly"], date(2026, 1, 31))
    work = daily_work(terms, ScheduleState(packs={terms[0].term_id: 1},
                                           renewal_checked=terms[0].term_id),
                      auto_renew=False, now=at(date(2026, 3, 1), 0), tz=TZ)
    assert work.lapsed == terms[0]
    assert visit_guards(work) == [f"subscription.lapsed:{terms[0].term_id}"]


def test_a_trial_owes_no_pack():
    terms = bought(["trial"], date(2026, 6, 10))
    work = daily_work(terms, ScheduleState(), auto_renew=False, now=at(date(2026, 6, 10)),
                      tz=TZ)
    assert work.packs == ()


def test_the_renewal_buys_the_latest_paid_term_kind_monthly_after_a_trial():
    from membership.domain.subscriptions import Purchase

    def p(term, seq):
        rec = bought([term], date(2026, 1, 1))[0]
        return Purchase(record=rec, member_id="Mabcdefghij", subscription_id="x", seq=seq,
                        paid_with="payment", extended=False)

    assert renewal_term([p("trial", 1)]) == "monthly"
    assert renewal_term([p("quarterly", 1), p("trial", 2)]) == "quarterly"


def test_a_charge_names_its_member_and_plan():
    c = SubscriptionCharged.model_validate({
        "subscriptionId": "Mabcdefghij.PLUS", "cycle": 2, "paymentReference": "r-1",
        "amount": 1900, "chargedAt": "2026-02-28T09:00:00+08:00"})
    assert (c.member_id, c.plan_id) == ("Mabcdefghij", "PLUS")


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(st.sampled_from(["monthly", "quarterly", "yearly", "trial"]),
                      min_size=1, max_size=4),
       start=st.dates(date(2024, 1, 1), date(2027, 12, 31)),
       gaps=st.lists(st.integers(1, 40), min_size=1, max_size=40),
       auto_renew=st.booleans())
def test_visits_on_any_days_give_each_month_once_and_never_skip_a_due_day(
        kinds, start, gaps, auto_renew):
    """Visits only when the index says due (or later): each (term, month) pack that began
    by the last visit is given exactly once, and no owed day is ever left behind."""
    terms = bought(kinds, start)
    state = ScheduleState()
    due = next_due_on(terms, state, start, TZ)
    given_packs: list[tuple[str, int]] = []
    day = start
    for gap in gaps:
        if due is not None and due <= day:
            work = daily_work(terms, state, auto_renew=auto_renew, now=at(day, 1), tz=TZ)
            given_packs.extend(work.packs)
            state, due = work.state, work.next_due_on
            assert due is None or due > day
        day += timedelta(days=gap)
        if due is None:
            break
    assert len(given_packs) == len(set(given_packs))
    last = day - timedelta(days=gaps[-1]) if due is not None else day
    owed = {(t.term_id, k) for t in terms for k in gift_packs_due(t, last, TZ)
            if t.term != "trial"}
    assert set(given_packs) <= owed
    if due is None:  # everything done: every month of every paid term was given
        assert set(given_packs) == {
            (t.term_id, k) for t in terms if t.term != "trial"
            for k in gift_packs_due(t, date(2100, 1, 1), TZ)}
