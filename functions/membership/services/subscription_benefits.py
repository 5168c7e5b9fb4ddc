"""The paid plan's benefits on orders: which plan covered an order's `paidAt`, and the
benefits it used, recorded on that term inside the order's own posting.

Read inside the posting's attempt (a retry sees the terms as they are then): members
whose plan ended before `paidAt`, or who never bought one, cost no read at all; others
cost one Query of their `SUBSCRIPTION#` items.
"""
from __future__ import annotations

from datetime import datetime

from membership.domain.checkout import Settlement
from membership.domain.members import Member
from membership.domain.program import PaidPlan, Program
from membership.domain.subscription_benefits import (
    FAST,
    NONE,
    decide_from_member,
    plan_of_term,
    term_covering,
)
from membership.domain.subscriptions import Purchase
from membership.storage import subscriptions as store
from membership.storage.ledger import ExtraItem


def plan_at(member: Member, program: Program, paid_at: datetime
            ) -> tuple[PaidPlan | None, Purchase | None]:
    """(the plan active at `paid_at`, the term that covered it)."""
    decision = decide_from_member(member.paid_plan, paid_at, member.settled_period,
                                  program.time_zone)
    if decision == NONE:
        return None, None
    _, by_plan = store.read(member.member_id)
    term = term_covering([p for terms in by_plan.values() for p in terms], paid_at)
    if decision == FAST and term is None and member.paid_plan is not None:
        # The member item says active; trust it for the multiplier (nothing to record on).
        plan = next((p for p in program.paid_plans if p.id == member.paid_plan.plan_id), None)
        return plan, None
    return plan_of_term(program, term), term


def used_on_order(term: Purchase | None, settlement: Settlement) -> tuple[ExtraItem, ...]:
    """The term's benefits-used counters moved by what this order's plan gave."""
    if term is None:
        return ()
    return store.add_benefits_used(term, coupon_discount=settlement.plan_coupon_discount,
                                   bonus_points=settlement.bonus_points,
                                   plan_discount=settlement.plan_discount)


def _reversed(s: Settlement) -> int:
    return s.earned_reversed + s.earned_written_off


def given_back_on_refund(before: Settlement, after: Settlement) -> tuple[ExtraItem, ...]:
    """An order refund takes its bonus points back (with the rest of its earned points),
    so the term no longer counts them as used: the same share, cumulatively exact."""
    if before.term_id is None or not before.bonus_points or not before.earned_points:
        return ()
    share = (before.bonus_points * _reversed(after) // before.earned_points
             - before.bonus_points * _reversed(before) // before.earned_points)
    if not share:
        return ()
    subscription_id, seq = before.term_id.rsplit(".", 1)
    plan_id = subscription_id.rsplit(".", 1)[1]
    return store.add_term_counters(before.member_id, plan_id, int(seq), bonus_points=-share)
