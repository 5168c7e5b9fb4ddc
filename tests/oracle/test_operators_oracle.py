"""The money oracle with operators' adjustments, bulk grants and freezes in the flow.

Bounded like the money oracle; ORACLE_EXAMPLES / ORACLE_STEPS search longer.
"""
import os

import pytest
from hypothesis import HealthCheck, settings
from operators_machine import OperatorsMachine

EXAMPLES = int(os.environ.get("ORACLE_EXAMPLES", "10"))
STEPS = int(os.environ.get("ORACLE_STEPS", "40"))


@pytest.fixture
def oracle_settings(table, monkeypatch, reset_caches):
    monkeypatch.setenv("PAYMENT_VERIFIER", "membership.services.payments.TestReferenceVerifier")
    # Chunks of two members: a grant to a few ids is several chunks, applied in any order.
    monkeypatch.setenv("GRANT_CHUNK_SIZE", "2")
    reset_caches()
    yield settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                   derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    monkeypatch.undo()
    reset_caches()


@pytest.mark.timeout(900)
def test_what_operators_grant_adjust_and_freeze_is_what_each_member_owns(oracle_settings):
    OperatorsMachine.TestCase.settings = oracle_settings
    OperatorsMachine.TestCase().runTest()
