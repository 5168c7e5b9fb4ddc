"""Which paid plan an order's paidAt falls under: the member item decides when it can,
the terms otherwise (domain/subscription_benefits.py)."""
from datetime import UTC, date, datetime, timedelta

from membership.domain.members import PaidPlanState
from membership.domain.subscription_benefits import (
    FAST,
    NONE,
    READ,
    decide_from_member,
    term_covering,
)
from membership.domain.subscriptions import Purchase, TermRecord

TZ = "Asia/Shanghai"
START = datetime(2026, 3, 10, 1, tzinfo=UTC)
END = datetime(2026, 4, 10, 15, 59, 59, 999999, tzinfo=UTC)
PLAN = PaidPlanState(plan_id="PLUS", started_at=START, ends_at=END)


def test_paid_inside_the_current_run_is_decided_by_the_member_item():
    assert decide_from_member(PLAN, START, None, TZ) == FAST
    assert decide_from_member(PLAN, END - timedelta(microseconds=1), None, TZ) == FAST


def test_paid_at_or_after_the_end_has_no_plan_without_a_read():
    assert decide_from_member(PLAN, END, None, TZ) == NONE


def test_paid_before_the_current_run_reads_the_terms():
    assert decide_from_member(PLAN, START - timedelta(seconds=1), None, TZ) == READ


def test_a_member_who_never_bought_costs_no_read():
    assert decide_from_member(None, START, None, TZ) == NONE
    assert decide_from_member(None, START, "2026-02", TZ) == NONE  # after the close


def test_a_plan_the_settlement_dropped_is_read_for_orders_paid_before_its_close():
    # 2026-02 closes at 1 Mar 00:00 Shanghai (28 Feb 16:00 UTC)
    assert decide_from_member(None, datetime(2026, 2, 28, 15, 59, tzinfo=UTC), "2026-02",
                              TZ) == READ
    assert decide_from_member(None, datetime(2026, 2, 28, 16, 0, tzinfo=UTC), "2026-02",
                              TZ) == NONE


def purchase(seq, starts, ends, refunded=None):
    record = TermRecord(term_id=f"M.PLUS.{seq:04d}", plan_id="PLUS", term="monthly",
                        price=1900, paid_at=starts, starts_at=starts, ends_at=ends,
                        anchor=date(2026, 3, 10), refunded_at=refunded)
    return Purchase(record=record, member_id="M", subscription_id="M.PLUS", seq=seq,
                    paid_with="payment", extended=False)


def test_the_covering_term_ends_early_when_it_was_refunded():
    refunded = START + timedelta(days=5)
    term = purchase(1, START, END, refunded)
    assert term_covering([term], refunded - timedelta(seconds=1)) == term
    assert term_covering([term], refunded) is None


def test_no_term_covers_a_gap_between_runs():
    first = purchase(1, START, START + timedelta(days=30))
    second = purchase(2, START + timedelta(days=60), START + timedelta(days=90))
    assert term_covering([first, second], START + timedelta(days=45)) is None
    assert term_covering([first, second], START + timedelta(days=61)) == second
