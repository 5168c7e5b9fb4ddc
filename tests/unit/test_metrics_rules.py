"""The metrics' arithmetic (domain/metrics.py), the paid-plan and points counts it reads
(which counter a term moves, a term at the close, points issued by a posting) and how a
posting's counters of one month share one shard."""
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from membership.domain import calendar
from membership.domain import subscriptions as subs
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.members import Member
from membership.domain.metrics import Flows, metrics_of, plan_flow, ratio_bps
from membership.domain.program import default_program
from membership.domain.settlement import Tally, term_at_close

PROGRAM = default_program()
PLUS = PROGRAM.paid_plans[0]
SH = "Asia/Shanghai"


def at(*args: int) -> datetime:
    """An instant on the Shanghai clock, in UTC."""
    return datetime(*args, tzinfo=ZoneInfo(SH)).astimezone(UTC)


def buy(term: str, now: datetime, current=None, term_id: str = "T1", refunded_at=None):
    span = subs.next_term(PLUS, term, now=now, tz=SH, current=current)
    return subs.TermRecord(term_id=term_id, plan_id="PLUS", term=term,
                           price=subs.term_price(PLUS, term), paid_at=now,
                           starts_at=span.starts_at, ends_at=span.ends_at, anchor=span.anchor,
                           months_from_anchor=span.months_from_anchor,
                           refunded_at=refunded_at)


def test_ratios_are_basis_points_rounded_down_and_null_without_a_denominator():
    assert ratio_bps(1, 3) == 3_333 and ratio_bps(0, 5) == 0 and ratio_bps(3, 0) is None


def test_penetration_counts_guests_only_in_the_whole():
    m = metrics_of("2026-11", Flows(member_orders=3, member_spend=900, guest_orders=1,
                                    guest_spend=100, new_members=2), None, PROGRAM, "none")
    assert m.penetration == {"memberOrders": 3, "allOrders": 4, "ordersBps": 7_500,
                             "memberSpend": 900, "allSpend": 1_000, "spendBps": 9_000}
    assert m.members == {"total": None, "new": 2} and m.points["liability"] is None


def test_stocks_come_from_the_settlement_tally():
    tally = Tally(processed=4, tiers_before={"V1": 3, "V2": 1}, tiers_after={"V1": 2, "V2": 2},
                  tiers_kept={"V1": 2, "V2": 1}, points_available=250, points_pending=50,
                  balance_principal=7_000, balance_bonus=300, paid_active=1, points_expired=9)
    m = metrics_of("2026-11", Flows(), tally, PROGRAM, "completed")
    assert m.members["total"] == 4
    assert m.tiers == {"distribution": {"V1": 2, "V2": 2},
                       "retentionBps": {"V1": 6_666, "V2": 10_000}}
    assert (m.points["liability"], m.points["cashValue"], m.points["expired"]) == (300, 300, 9)
    assert m.stored_value == {"principal": 7_000, "bonus": 300}
    assert m.paid_members == {"active": 1, "paying": None}  # a run from before terms counted
    assert m.conversion == {"bps": None, "paidStarts": 0, "freeAtStart": None}
    assert m.renewal == {"bps": None, "renewed": 0, "ended": None}
    assert m.points["breakageBps"] is None  # nothing issued this month


def test_tallies_add_their_stocks():
    a = Tally(points_available=1, balance_bonus=2, paid_active=1, tiers_kept={"V1": 1})
    b = Tally(points_available=10, balance_bonus=20, paid_active=0, tiers_kept={"V1": 2})
    total = a + b
    assert (total.points_available, total.balance_bonus, total.paid_active,
            total.tiers_kept) == (11, 22, 1, {"V1": 3})


def test_tallies_of_runs_before_the_plan_counts_stay_unknown_and_known_ones_add():
    old, new = Tally(processed=3), Tally(processed=2, members_closed=1, paying_at_close=0,
                                         terms_ended=2)
    assert (old + old).paying_at_close is None and (old + old).free_at_close is None
    both = old + new + new
    assert (both.members_closed, both.paying_at_close, both.terms_ended) == (2, 0, 4)
    assert both.free_at_close == 7 - 2 - 0


# ---- conversion, renewal, breakage ---------------------------------------------------------

def test_conversion_divides_paid_starts_by_the_free_members_at_the_previous_close():
    previous = Tally(processed=40, members_closed=2, paying_at_close=8)
    m = metrics_of("2026-02", Flows(paid_starts=7), None, PROGRAM, "none", previous=previous)
    assert m.conversion == {"bps": 7 * 10_000 // 30, "paidStarts": 7, "freeAtStart": 30}
    # Without the previous month's completed run the denominator is unknown, not 0.
    m = metrics_of("2026-02", Flows(paid_starts=7), None, PROGRAM, "none")
    assert m.conversion == {"bps": None, "paidStarts": 7, "freeAtStart": None}
    everyone_pays = Tally(processed=3, members_closed=0, paying_at_close=3)
    assert metrics_of("2026-02", Flows(), None, PROGRAM, "none",
                      previous=everyone_pays).conversion["bps"] is None


def test_renewal_divides_the_renewed_by_the_paid_terms_that_ended():
    tally = Tally(processed=5, members_closed=0, paying_at_close=2, terms_ended=3)
    m = metrics_of("2026-02", Flows(renewals=2), tally, PROGRAM, "completed")
    assert m.renewal == {"bps": 6_666, "renewed": 2, "ended": 3}
    assert m.paid_members["paying"] == 2
    none_ended = Tally(members_closed=0, paying_at_close=0, terms_ended=0)
    assert metrics_of("2026-02", Flows(), none_ended, PROGRAM, "completed"
                      ).renewal["bps"] is None


def test_breakage_is_the_months_expired_over_the_months_issued():
    m = metrics_of("2026-12", Flows(points_issued=3_000), Tally(points_expired=1_000),
                   PROGRAM, "completed")
    assert (m.points["issued"], m.points["expired"], m.points["breakageBps"]) == (
        3_000, 1_000, 3_333)
    # Before the settlement the month's expired points are unknown, issued ones are not.
    m = metrics_of("2026-12", Flows(points_issued=3_000), None, PROGRAM, "none")
    assert (m.points["issued"], m.points["expired"], m.points["breakageBps"]) == (
        3_000, None, None)
    # Lots of other years expiring in a month of few credits: above 100 %, not capped.
    m = metrics_of("2026-12", Flows(points_issued=100), Tally(points_expired=250),
                   PROGRAM, "completed")
    assert m.points["breakageBps"] == 25_000


# ---- which counter a paid term moves -------------------------------------------------------

def test_a_first_paid_term_is_a_paid_start_in_the_month_it_starts():
    first = buy("monthly", at(2026, 1, 31, 23, 30))
    assert plan_flow(first, [first], SH) == ("paid_starts", "2026-01")


def test_a_trial_counts_for_nothing_and_the_paid_term_after_it_starts_paying_at_its_end():
    trial = buy("trial", at(2026, 1, 27, 9))  # ends at the end of 3 Feb
    assert plan_flow(trial, [trial], SH) is None
    paid = buy("monthly", at(2026, 1, 29, 9), current=trial, term_id="T2")
    assert paid.starts_at == at(2026, 2, 4)
    assert plan_flow(paid, [trial, paid], SH) == ("paid_starts", "2026-02")


def test_a_term_continuing_a_paid_term_renews_it_in_the_month_that_term_ends():
    first = buy("monthly", at(2026, 1, 10, 9))  # ends at the end of 10 Feb
    early = buy("quarterly", at(2026, 1, 20, 9), current=first, term_id="T2")
    assert plan_flow(early, [first, early], SH) == ("renewals", "2026-02")
    # The last local day of a month: its last microsecond is still that month.
    month_end = buy("monthly", at(2026, 2, 28, 9))  # ends at the end of 28 Mar
    last = buy("monthly", at(2026, 3, 20, 9), current=month_end, term_id="T2")
    assert plan_flow(last, [month_end, last], SH) == ("renewals", "2026-03")


def test_buying_again_after_a_lapse_or_a_refund_is_a_paid_start_not_a_renewal():
    first = buy("monthly", at(2026, 1, 10, 9))
    after_lapse = buy("monthly", at(2026, 3, 1, 9), current=first, term_id="T2")
    assert plan_flow(after_lapse, [first, after_lapse], SH) == ("paid_starts", "2026-03")
    refunded = first.model_copy(update={"refunded_at": at(2026, 1, 12)})
    again = buy("monthly", at(2026, 1, 15, 9), term_id="T2")
    assert plan_flow(again, [refunded, again], SH) == ("paid_starts", "2026-01")


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(st.sampled_from(["monthly", "quarterly", "yearly", "trial"]),
                      min_size=1, max_size=6),
       gaps=st.lists(st.integers(min_value=0, max_value=400), min_size=6, max_size=6))
def test_a_run_of_terms_has_one_paid_start_and_renews_each_paid_term_a_paid_one_follows(
        kinds, gaps):
    """Refunding a term (newest first) asks the same question as its purchase did."""
    now, terms = at(2026, 1, 1, 9), []
    for n, kind in enumerate(kinds):
        now += timedelta(days=gaps[n])
        current = subs.latest_term(terms)
        terms.append(buy(kind, now, current=current, term_id=f"T{n}"))
    flows = [plan_flow(t, terms[:n + 1], SH) for n, t in enumerate(terms)]
    assert [f is None for f in flows] == [t.term == "trial" for t in terms]
    for n, term in enumerate(terms):
        assert plan_flow(term, terms, SH) == flows[n]  # the refund sees what the purchase did
        before = terms[n - 1] if n else None
        continues = (before is not None
                     and before.ends_at + calendar.LAST_MICROSECOND == term.starts_at)
        if flows[n] is not None:
            renews = continues and before.term != "trial"
            assert flows[n][0] == ("renewals" if renews else "paid_starts")


# ---- a term at the settlement's close ------------------------------------------------------

def test_a_paid_term_covering_the_close_pays_and_one_ending_in_the_month_ended():
    term = buy("monthly", at(2026, 1, 20, 9))  # ends at the end of 20 Feb
    assert term_at_close(term.term, term.starts_at, term.ends_at, None, "2026-01", SH) == (
        True, False)
    assert term_at_close(term.term, term.starts_at, term.ends_at, None, "2026-02", SH) == (
        False, True)
    # Bought after the close (before the run's scan): not paying at the close.
    assert term_at_close(term.term, term.starts_at, term.ends_at, None, "2025-12", SH) == (
        False, False)


def test_a_trial_is_free_and_a_refunded_term_is_neither_renewable_nor_paying_after():
    trial = buy("trial", at(2026, 1, 28, 9))
    assert term_at_close("trial", trial.starts_at, trial.ends_at, None, "2026-01", SH) == (
        False, False)
    term = buy("monthly", at(2026, 1, 20, 9))
    before_close, after_close = at(2026, 1, 25), at(2026, 2, 3)
    assert term_at_close(term.term, term.starts_at, term.ends_at, before_close, "2026-01",
                         SH) == (False, False)
    assert term_at_close(term.term, term.starts_at, term.ends_at, after_close, "2026-01",
                         SH) == (True, False)
    assert term_at_close(term.term, term.starts_at, term.ends_at, after_close, "2026-02",
                         SH) == (False, False)


# ---- points issued by a posting ------------------------------------------------------------

def member(**changes) -> Member:
    now = at(2026, 1, 1)
    return Member(**{"member_id": "M1", "subject": "s", "phone": "+8613812345678",
                     "nickname": "n", "channel": "app", "created_at": now, "updated_at": now,
                     "tier_id": "V1", "tier_since": now, **changes})


def builder(state, now, effective_at=None):
    return PostingBuilder(state, PROGRAM, source_key="k", source_type="test", reason="test",
                          actor="system", now=now, effective_at=effective_at)


def test_a_posting_counts_the_points_it_credits_in_the_month_of_its_business_time():
    b = builder(LedgerState(member=member()), now=at(2026, 2, 1, 0, 3),
                effective_at=at(2026, 1, 31, 23, 58))  # an order paid before midnight
    b.credit_points(300, lot_id="order", pending=True)
    b.credit_points(20, lot_id="gift")
    assert b.build().points_issued == {"2026-01": 320}


def test_points_given_back_or_released_are_not_issued_again_and_a_debt_paid_is():
    b = builder(LedgerState(member=member()), now=at(2026, 1, 5))
    b.credit_points(100, lot_id="a")
    takes = b.debit_points(60)
    b.return_points(takes)  # an order's points back to their lots
    b.credit_points(50, lot_id="p", pending=True)
    b.release_pending("p")
    assert b.build().points_issued == {"2026-01": 150}
    owing = builder(LedgerState(member=member(points_debt=30)), now=at(2026, 1, 5))
    owing.credit_points(40, lot_id="b")
    posting = owing.build()
    assert posting.points_issued == {"2026-01": 40}
    assert posting.member.points_available == 10 and posting.member.points_debt == 0


def test_a_posting_that_credits_nothing_issues_nothing():
    b = builder(LedgerState(member=member(balance_principal=500)), now=at(2026, 1, 5))
    b.debit_balance(100)
    assert b.build().points_issued == {}


# ---- one counter item per month in a transaction -------------------------------------------

def test_points_issued_join_the_months_counter_shard_the_posting_writes_already():
    from membership.storage.metrics import CounterAdd, counter_add, with_points_issued

    order = counter_add("2026-01", "SO-1", member_orders=1, member_spend=900)
    other = object()
    joined = with_points_issued((other, order), {"2026-01": 90}, "M1")
    assert len(joined) == 2 and joined[0] is other
    assert joined[1].model.PK == order.model.PK and joined[1].model.SK == order.model.SK
    assert joined[1].amounts == {"member_orders": 1, "member_spend": 900,
                                 "points_issued": 90}
    assert len(joined[1].actions) == 3
    # Another month (a birthday gift on the 1st, an order of last month): its own shard.
    apart = with_points_issued((order,), {"2026-02": 5}, "M1")
    assert len(apart) == 2 and isinstance(apart[1], CounterAdd)
    assert (apart[1].period, apart[1].amounts) == ("2026-02", {"points_issued": 5})
    assert apart[1].model.PK == "METRICS#2026-02"
