"""Which paid plan an order's payment falls under (pure; docs/subscriptions.md).

Eligibility is decided at the order's `paidAt`, never at processing time. The member item's
`paid_plan` answers most orders: it covers the current run of contiguous terms, from its
start to its end. An order paid before that run began (a late event, or a run restarted
after a lapse) needs the terms themselves.
"""
from __future__ import annotations

from datetime import datetime

from membership.domain import calendar
from membership.domain.members import PaidPlanState
from membership.domain.program import PaidPlan, Program
from membership.domain.subscriptions import Purchase

FAST = "fast"  # the member's paid_plan decides: active at paidAt
NONE = "none"  # no plan at paidAt, decided without reading the terms
READ = "read"  # the terms decide


def decide_from_member(paid_plan: PaidPlanState | None, paid_at: datetime,
                       settled_period: str | None, tz: str) -> str:
    """FAST, NONE or READ: whether the member item alone settles the question."""
    at = calendar.utc(paid_at)
    if paid_plan is None:
        # Never bought, or the monthly settlement dropped a plan that ended before the
        # close of the period it settled: only an order paid before that close can have
        # been covered by it (a late event), and only then are the terms read.
        if settled_period is None:
            return NONE
        close = calendar.month_start(calendar.shift_month(settled_period, 1), tz)
        return READ if at < close else NONE
    if paid_plan.started_at <= at < paid_plan.ends_at:
        return FAST
    if at >= paid_plan.ends_at:
        return NONE  # after the end of the latest run: lapsed
    return READ  # before the current run began: an earlier run may have covered it


def term_covering(terms: list[Purchase], paid_at: datetime) -> Purchase | None:
    """The term in force at `paid_at`: begun, not ended, not yet refunded then."""
    at = calendar.utc(paid_at)
    for p in terms:
        t = p.record
        end = t.ends_at if t.refunded_at is None else min(t.ends_at, t.refunded_at)
        if t.starts_at <= at < end:
            return p
    return None


def plan_of_term(program: Program, term: Purchase | None) -> PaidPlan | None:
    """The term's plan as the program defines it now (a removed plan gives nothing)."""
    if term is None:
        return None
    return next((p for p in program.paid_plans if p.id == term.record.plan_id), None)
