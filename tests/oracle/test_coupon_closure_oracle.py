"""The coupon oracle with account closure among its steps (coupon_closure_machine.py)."""
import pytest
from coupon_closure_machine import CouponClosureMachine


@pytest.mark.timeout(900)
def test_closure_removes_unused_coupons_keeps_used_ones_and_template_counts(
        oracle_settings):
    # Many short runs: closures come before holds pile up.
    CouponClosureMachine.TestCase.settings = oracle_settings(24, 20)
    CouponClosureMachine.outcomes.clear()
    CouponClosureMachine.coupon_outcomes.clear()
    CouponClosureMachine.TestCase().runTest()
    assert CouponClosureMachine.outcomes["closed"], CouponClosureMachine.outcomes
    assert CouponClosureMachine.outcomes["refused"], CouponClosureMachine.outcomes
    # Closures that removed unused coupons, and closures that kept used ones.
    assert CouponClosureMachine.coupon_outcomes["removed"], (
        CouponClosureMachine.coupon_outcomes)
    assert CouponClosureMachine.coupon_outcomes["kept used"], (
        CouponClosureMachine.coupon_outcomes)
