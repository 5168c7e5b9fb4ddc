"""The money oracle with the paid plan's monthly packs and charges, bounded for the suite."""
import pytest
from plus_machine import PlusMachine


@pytest.mark.timeout(900)
def test_a_plus_member_owns_exactly_the_documented_monthly_packs(oracle_settings):
    PlusMachine.TestCase.settings = oracle_settings(6, 40)
    PlusMachine.TestCase().runTest()
