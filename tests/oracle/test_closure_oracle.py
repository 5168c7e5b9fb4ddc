"""The money oracle with account closure among its steps (closure_machine.py), bounded.

Raise ORACLE_EXAMPLES / ORACLE_STEPS to search longer.
"""
import os

import pytest
from closure_machine import ClosureMachine
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("ORACLE_EXAMPLES", "12"))
STEPS = int(os.environ.get("ORACLE_STEPS", "30"))


@pytest.fixture
def oracle_settings(table, monkeypatch, reset_caches):
    monkeypatch.setenv("PAYMENT_VERIFIER", "membership.services.payments.TestReferenceVerifier")
    reset_caches()
    yield settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                    derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    monkeypatch.undo()
    reset_caches()


@pytest.mark.timeout(900)
def test_closure_forfeits_what_the_policy_says_and_the_ledger_still_reconciles(
        oracle_settings):
    ClosureMachine.TestCase.settings = oracle_settings
    ClosureMachine.outcomes.clear()
    ClosureMachine.TestCase().runTest()
    # Both paths ran: closures that succeeded and closures refused while value remained.
    assert ClosureMachine.outcomes["closed"] and ClosureMachine.outcomes["refused"], (
        ClosureMachine.outcomes)
