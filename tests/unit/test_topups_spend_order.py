"""Spending stored value at checkout: the program's order between principal and bonus."""
from datetime import UTC, datetime, timedelta

import pytest

from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.members import Member
from membership.domain.program import default_program

NOW = datetime(2026, 3, 14, 4, 0, tzinfo=UTC)


def builder(order, principal=50_000, bonus=5_000):
    program = default_program()
    program = program.model_copy(update={
        "topup": program.topup.model_copy(update={"spend_order": order})})
    m = Member(member_id="Mabcdefghij", subject="s", phone="+8613812345678", nickname="n",
               channel="app", created_at=NOW, updated_at=NOW, tier_id="V1", tier_since=NOW,
               balance_principal=principal, balance_bonus=bonus)
    return PostingBuilder(LedgerState(member=m), program, source_key="order:1",
                          source_type="order", reason="order", actor="system", now=NOW)


def test_default_program_spends_principal_first():
    assert default_program().topup.spend_order == "principal_first"


@pytest.mark.parametrize("order, amount, split", [
    ("principal_first", 20_000, (20_000, 0)),
    ("principal_first", 52_000, (50_000, 2_000)),
    ("bonus_first", 3_000, (0, 3_000)),
    ("bonus_first", 8_000, (3_000, 5_000)),
    ("proportional", 11_000, (10_000, 1_000)),
    ("proportional", 1, (1, 0)),  # the bonus share rounds down
])
def test_checkout_splits_a_debit_by_the_programs_spend_order(order, amount, split):
    assert builder(order).debit_balance(amount) == split


@pytest.mark.parametrize("order", ["principal_first", "bonus_first", "proportional"])
def test_a_released_hold_returns_to_the_buckets_it_came_from(order):
    b = builder(order)
    hold = b.place_hold("h1", balance=30_000, expires_at=NOW + timedelta(minutes=30))
    taken = (hold.principal, hold.bonus)
    b.release_hold("h1")
    member = b.member
    assert (member.balance_principal, member.balance_bonus) == (50_000, 5_000)
    assert sum(taken) == 30_000
