"""The money oracle in the suite: bounded so that it runs in about a minute.

Raise ORACLE_EXAMPLES / ORACLE_STEPS to search longer (e.g. before a release).
"""
import os

import pytest
from activity_machine import EXTRA_TASKS, OUTCOMES, ActivityMachine
from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("ORACLE_EXAMPLES", "25"))
STEPS = int(os.environ.get("ORACLE_STEPS", "40"))


@pytest.fixture
def oracle_settings(table, monkeypatch, reset_caches):
    # Top-ups verify their payment: the oracle opts into the test verifier explicitly.
    monkeypatch.setenv("PAYMENT_VERIFIER", "membership.services.payments.TestReferenceVerifier")
    reset_caches()
    # The default program and a task of every limit the app reports.
    from membership.domain.program import Task, default_program
    from membership.storage.program import save_program

    program = default_program()
    save_program(program.model_copy(update={
        "tasks": program.tasks + tuple(Task.model_validate(t) for t in EXTRA_TASKS)}))
    yield settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                    derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    monkeypatch.undo()
    reset_caches()


@pytest.mark.timeout(900)
def test_every_member_owns_what_the_documented_policies_say(oracle_settings):
    ActivityMachine.TestCase.settings = oracle_settings
    ActivityMachine.TestCase().runTest()
    if os.environ.get("ORACLE_STATS"):
        print("\n".join(f"{n:5d}  {what}" for what, n in sorted(OUTCOMES.items())))


@pytest.mark.timeout(900)
def test_provider_paid_top_ups_credit_once_whatever_arrives_first(oracle_settings):
    """The same flow with payments made at WeChat Pay / Alipay: their notifications and the
    app's calls in any order and number, and the providers' refund notices."""
    from payments_machine import PaymentsMoneyMachine

    # Half the runs of the main oracle: the flows before payments are searched there.
    PaymentsMoneyMachine.TestCase.settings = settings(
        oracle_settings, max_examples=max(EXAMPLES // 2, 1))
    PaymentsMoneyMachine.TestCase().runTest()
