"""The money oracle with coupons in the suite, bounded to a few minutes on two cores."""
import pytest
from coupon_machine import CouponMachine
from money_machine import birthday_gift_for_every_tier


@pytest.mark.timeout(900)
def test_every_member_owns_the_coupons_the_documented_policies_say(oracle_settings):
    from membership.domain.program import default_program
    from membership.storage.program import save_program

    CouponMachine.TestCase.settings = oracle_settings(8, 30)
    save_program(birthday_gift_for_every_tier(default_program()))
    CouponMachine.TestCase().runTest()
