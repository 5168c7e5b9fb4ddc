"""The coupon oracle around a PLUS member: the daily schedule runs whenever time passes
(on random days, sometimes twice), purchases extend, the provider's charges (new,
redelivered, for a cycle already paid, for a wrong amount) extend the plan end, and the
member's wallet must hold exactly one monthly pack per (term, month) that has begun."""
from __future__ import annotations

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
