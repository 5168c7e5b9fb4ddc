"""The coupon oracle around a PLUS member: the daily schedule runs whenever time passes
(on random days, sometimes twice), purchases extend, the provider's charges (new,
redelivered, for a cycle already paid, for a wrong amount) extend the plan end, the plan
runs out, and the member's wallet must hold exactly one monthly pack per (term, month)
that has begun; PLUS's usage counter counts the member from a run's first term until the
daily run sees the run ended."""
from __future__ import annotations

from datetime import timedelta

from coupon_machine import CouponMachine
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule
from money_machine import LAST


class PlusMachine(CouponMachine):
    @initialize(history=st.just("plus_member"))
    def start(self, history="plus_member"):
        super().start(history)

    @precondition(lambda self: self.now < LAST)
    @rule(minutes=st.sampled_from([31, 10, 24 * 60, 8 * 24 * 60]),
          again=st.sampled_from([False, False, True]))
    def time_passes(self, minutes, again=False):
        super().time_passes(minutes)
        self.plus_daily(again)

    @precondition(lambda self: self.now < LAST)
    @rule(minute=st.sampled_from([3, 5, 60]), months=st.sampled_from([1, 1, 1, 7]),
          again=st.sampled_from([False, False, True]))
    def next_month_begins(self, minute, months, again=False):
        super().next_month_begins(minute, months)
        self.plus_daily(again)

    @precondition(lambda self: self.now < LAST and self.model.plus_terms)
    @rule(minutes=st.sampled_from([-1, 5, 10 * 60]), again=st.sampled_from([False, True]))
    def plan_runs_out(self, minutes, again=False):
        """Time passes to a moment around the plan's end (its last minute, or the next
        local day's early hours) and the daily run sees it: a run that ended is counted
        down once, whatever the number of runs."""
        end = max((t.ends_at for t in self.model.plan_terms if t.refunded_at is None),
                  default=self.now)
        target = end + timedelta(minutes=minutes)
        if target > self.now:
            self.now = target.replace(second=0, microsecond=0)
        self.plus_daily(again)
