"""The money oracle in the suite: bounded so that it runs in about a minute.

Raise ORACLE_EXAMPLES / ORACLE_STEPS to search longer (e.g. before a release).
"""
import os

import pytest
from hypothesis import HealthCheck, settings
from money_machine import MoneyMachine

EXAMPLES = int(os.environ.get("ORACLE_EXAMPLES", "25"))
STEPS = int(os.environ.get("ORACLE_STEPS", "40"))


@pytest.fixture
def oracle_settings(dynamodb_local):
    return settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                    derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.timeout(900)
def test_every_member_owns_what_the_documented_policies_say(oracle_settings):
    MoneyMachine.TestCase.settings = oracle_settings
    MoneyMachine.TestCase().runTest()
