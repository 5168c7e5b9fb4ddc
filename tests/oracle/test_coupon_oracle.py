"""The money oracle with coupons in the suite, bounded to a few minutes on two cores.

Raise ORACLE_EXAMPLES / ORACLE_STEPS to search longer.
"""
import os

import pytest
from coupon_machine import CouponMachine
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("ORACLE_EXAMPLES", "8"))
STEPS = int(os.environ.get("ORACLE_STEPS", "30"))


@pytest.fixture
def coupon_oracle_settings(table, monkeypatch, reset_caches):
    monkeypatch.setenv("PAYMENT_VERIFIER", "membership.services.payments.TestReferenceVerifier")
    reset_caches()
    yield settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                   derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    monkeypatch.undo()
    reset_caches()


@pytest.mark.timeout(900)
def test_every_member_owns_the_coupons_the_documented_policies_say(coupon_oracle_settings):
    CouponMachine.TestCase.settings = coupon_oracle_settings
    CouponMachine.TestCase().runTest()
