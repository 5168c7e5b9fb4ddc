"""The money oracle with account closure among its steps (closure_machine.py), bounded."""
import pytest
from closure_machine import ClosureMachine


@pytest.mark.timeout(900)
def test_closure_forfeits_what_the_policy_says_and_the_ledger_still_reconciles(
        oracle_settings):
    ClosureMachine.TestCase.settings = oracle_settings(12, 30)
    ClosureMachine.outcomes.clear()
    ClosureMachine.TestCase().runTest()
    # Both paths ran: closures that succeeded and closures refused while value remained.
    assert ClosureMachine.outcomes["closed"] and ClosureMachine.outcomes["refused"], (
        ClosureMachine.outcomes)
