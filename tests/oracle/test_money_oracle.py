"""The money oracle in the suite: bounded so that it runs in about a minute."""
import os

import pytest
from activity_machine import EXTRA_TASKS, OUTCOMES, ActivityMachine
from hypothesis import settings
from money_machine import birthday_gift_for_every_tier


@pytest.fixture
def money_oracle_settings(oracle_settings):
    settings_ = oracle_settings(25, 40)
    # The default program, a task of every limit the app reports, and the birthday gift
    # for every tier.
    from membership.domain.program import Task, default_program
    from membership.storage.program import save_program

    program = birthday_gift_for_every_tier(default_program())
    save_program(program.model_copy(update={
        "tasks": program.tasks + tuple(Task.model_validate(t) for t in EXTRA_TASKS)}))
    return settings_


@pytest.mark.timeout(900)
def test_every_member_owns_what_the_documented_policies_say(money_oracle_settings):
    ActivityMachine.TestCase.settings = money_oracle_settings
    ActivityMachine.TestCase().runTest()
    if os.environ.get("ORACLE_STATS"):
        print("\n".join(f"{n:5d}  {what}" for what, n in sorted(OUTCOMES.items())))


@pytest.mark.timeout(900)
def test_provider_paid_top_ups_credit_once_whatever_arrives_first(money_oracle_settings):
    """The same flow with payments made at WeChat Pay / Alipay: their notifications and the
    app's calls in any order and number, and the providers' refund notices; PLUS terms paid
    there buy their term once."""
    from payments_machine import PaymentsMoneyMachine

    # Half the runs of the main oracle: the flows before payments are searched there.
    PaymentsMoneyMachine.TestCase.settings = settings(
        money_oracle_settings, max_examples=max(money_oracle_settings.max_examples // 2, 1))
    PaymentsMoneyMachine.TestCase().runTest()
