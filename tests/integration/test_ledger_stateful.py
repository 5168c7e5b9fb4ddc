"""Random sequences of postings, duplicates and reversals against DynamoDB Local, with
every invariant checked after every step."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from membership.domain.ledger import PostingBuilder
from membership.domain.members import SignupRequest, member_id_for
from membership.errors import DomainError
from membership.services import members as member_service
from membership.services.ledger import reconcile_member
from membership.storage import ledger as store
from membership.storage.program import load_program

amounts = st.integers(min_value=1, max_value=400)


class LedgerMachine(RuleBasedStateMachine):
    """Drives the real storage; a plain model predicts the balances."""

    counter = 0

    @initialize()
    def signup(self):
        LedgerMachine.counter += 1
        self.sub = f"stateful-{LedgerMachine.counter}"
        member_service.signup(self.sub, SignupRequest(
            phone=f"1391{LedgerMachine.counter:07d}", nickname="s", channel="app"))
        self.member_id = member_id_for(self.sub)
        self.principal = 0
        self.points = 100  # signup gift
        self.sources: list[tuple[str, int]] = []
        self.n = 0
        self.clock = datetime.now(UTC)

    def _post(self, key, legs):
        program = load_program()

        def build(state):
            b = PostingBuilder(state, program, source_key=key, source_type="test",
                               reason="test", actor="system", now=self.clock)
            legs(b)
            return b.build()

        return store.post(self.member_id, key, build)

    def _key(self):
        self.n += 1
        return f"{self.sub}:{self.n}"

    @rule(amount=amounts)
    def top_up(self, amount):
        key = self._key()
        self._post(key, lambda b: b.credit_balance("principal", amount))
        self.principal += amount
        self.sources.append((key, amount))

    @rule(amount=amounts)
    def spend(self, amount):
        try:
            self._post(self._key(), lambda b: b.debit_balance(amount))
            self.principal -= amount
        except DomainError as exc:
            assert exc.code == "insufficient_balance" and amount > self.principal

    @rule(amount=amounts)
    def earn_points(self, amount):
        key = self._key()
        self._post(key, lambda b: b.credit_points(amount, lot_id=key))
        self.points += amount

    @rule(amount=amounts)
    def spend_points(self, amount):
        try:
            self._post(self._key(), lambda b: b.debit_points(amount))
            self.points -= amount
        except DomainError as exc:
            # Short of points, or the clock has moved past some lots' expiry.
            assert exc.code == "insufficient_points"

    @rule(data=st.data())
    def redeliver(self, data):
        if not self.sources:
            return
        key, amount = data.draw(st.sampled_from(self.sources))
        outcome = self._post(key, lambda b: b.credit_balance("principal", amount))
        assert outcome.replayed  # the second delivery changes nothing

    @rule(data=st.data())
    def reverse_a_top_up(self, data):
        if not self.sources:
            return
        key, amount = data.draw(st.sampled_from(self.sources))
        entry = next(e for e in store.all_entries(self.member_id)
                     if e.source_key == key and e.asset == "balance")
        try:
            self._post(self._key(), lambda b: b.reverse(entry))
            self.principal -= amount
        except DomainError as exc:
            assert exc.code in ("entry_already_reversed", "insufficient_balance")

    @rule(days=st.integers(min_value=1, max_value=200))
    def time_passes(self, days):
        self.clock += timedelta(days=days)

    @invariant()
    def reconciles(self):
        if not hasattr(self, "member_id"):
            return
        assert reconcile_member(self.member_id) == []
        member = store.read_live_range(self.member_id).member
        assert member.balance_principal == self.principal
        assert member.points_available == self.points


@pytest.fixture
def machine_settings(table):
    return settings(max_examples=8, stateful_step_count=15, deadline=None,
                    suppress_health_check=list(HealthCheck))


def test_random_postings_always_reconcile(machine_settings):
    LedgerMachine.TestCase.settings = machine_settings
    LedgerMachine.TestCase().runTest()
