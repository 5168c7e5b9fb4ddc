"""Ledger postings as pure rules: buckets, lots, holds, reversals and the invariants."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membership.domain import calendar
from membership.domain.ledger import (
    EntryAlreadyReversed,
    EntryNotReversible,
    HoldAlreadyCaptured,
    HoldAlreadyReleased,
    HoldExpired,
    InsufficientBalance,
    InsufficientGrowth,
    InsufficientPoints,
    LedgerState,
    PostingBuilder,
    reconcile,
)
from membership.domain.members import Member
from membership.domain.program import default_program

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
TZ = "Asia/Shanghai"


def member(**changes) -> Member:
    base = {"member_id": "M1", "subject": "s", "phone": "+8613812345678", "nickname": "n",
            "channel": "app", "created_at": NOW, "updated_at": NOW, "tier_id": "V1",
            "tier_since": NOW}
    return Member(**{**base, **changes})


class Ledger:
    """Applies postings in memory, the way storage would, keeping every entry."""

    def __init__(self, program=None):
        self.program = program or default_program()
        self.state = LedgerState(member=member())
        self.entries = []
        self.closed_holds = []
        self.guards = set()
        self.n = 0

    def builder(self, now=NOW, **kw):
        self.n += 1
        return PostingBuilder(self.state, self.program, source_key=kw.pop("key", f"s{self.n}"),
                              source_type="test", reason="test", actor="system", now=now, **kw)

    def apply(self, b: PostingBuilder):
        posting = b.build()
        for guard in (posting.source_key, *posting.extra_guards):
            if guard in self.guards:
                raise EntryAlreadyReversed(guard)
        self.guards.update((posting.source_key, *posting.extra_guards))
        lots = {lot.lot_id: lot for lot in self.state.lots}
        for change in posting.lots:
            if change.after is None:
                lots.pop(change.before.lot_id)
            else:
                lots[change.after.lot_id] = change.after
        holds = {h.hold_id: h for h in self.state.holds}
        for change in posting.holds:
            if change.after.status == "held":
                holds[change.after.hold_id] = change.after
            else:
                holds.pop(change.after.hold_id)
                self.closed_holds.append(change.after)
        self.state = LedgerState(member=posting.member, lots=tuple(lots.values()),
                                 holds=tuple(holds.values()))
        self.entries.extend(posting.entries)
        return posting

    def breaches(self):
        return reconcile(self.state.member, self.entries, list(self.state.lots),
                         list(self.state.holds))


def topped_up(principal=0, bonus=0, points=0):
    ledger = Ledger()
    b = ledger.builder()
    if principal:
        b.credit_balance("principal", principal)
    if bonus:
        b.credit_balance("bonus", bonus)
    if points:
        b.credit_points(points, lot_id="L0")
    ledger.apply(b)
    return ledger


def test_credit_moves_one_bucket_and_records_balance_after():
    ledger = topped_up(principal=500)
    (entry,) = ledger.entries
    assert (entry.asset, entry.bucket, entry.amount, entry.balance_after) == (
        "balance", "principal", 500, 500)
    assert ledger.state.member.balance_principal == 500


def test_debit_spends_principal_before_bonus_by_default():
    ledger = topped_up(principal=300, bonus=100)
    b = ledger.builder()
    assert b.debit_balance(350) == (300, 50)


@pytest.mark.parametrize("order, expected", [("bonus_first", (250, 100)),
                                             ("proportional", (263, 87))])
def test_spend_order_is_a_program_rule(order, expected):
    ledger = topped_up(principal=300, bonus=100)
    topup = ledger.program.topup.model_copy(update={"spend_order": order})
    ledger.program = ledger.program.model_copy(update={"topup": topup})
    assert ledger.builder().debit_balance(350) == expected


def test_debit_beyond_the_balance_is_insufficient_balance():
    ledger = topped_up(principal=100)
    with pytest.raises(InsufficientBalance):
        ledger.builder().debit_balance(101)


def test_points_are_spent_soonest_expiring_lot_first():
    ledger = Ledger()
    b = ledger.builder()
    b.credit_points(50, lot_id="late", expires_at=NOW + timedelta(days=300))
    b.credit_points(30, lot_id="soon", expires_at=NOW + timedelta(days=10))
    ledger.apply(b)
    b = ledger.builder()
    takes = b.debit_points(40)
    assert [(t.lot_id, t.amount) for t in takes] == [("soon", 30), ("late", 10)]


def test_pending_points_are_never_spent():
    ledger = Ledger()
    b = ledger.builder()
    b.credit_points(100, lot_id="order", pending=True)
    ledger.apply(b)
    with pytest.raises(InsufficientPoints):
        ledger.builder().debit_points(1)


def _lot_expiring_at_local_midnight_minus_one_second():
    ledger = Ledger()
    # A lot earned in 2025 expires at 2026-12-31 23:59:59 (and its last microsecond) local.
    b = ledger.builder(now=datetime(2025, 6, 1, tzinfo=UTC))
    b.credit_points(10, lot_id="2025")
    ledger.apply(b)
    return ledger


def local(*args):
    return datetime(*args, tzinfo=calendar.zone(TZ)).astimezone(UTC)


def test_lot_is_spendable_one_second_before_its_expiry():
    ledger = _lot_expiring_at_local_midnight_minus_one_second()
    b = ledger.builder(now=local(2026, 12, 31, 23, 59, 58))
    assert sum(t.amount for t in b.debit_points(10)) == 10


def test_lot_is_not_spendable_at_local_midnight():
    ledger = _lot_expiring_at_local_midnight_minus_one_second()
    with pytest.raises(InsufficientPoints):
        ledger.builder(now=local(2027, 1, 1, 0, 0, 0)).debit_points(1)


def test_expiry_takes_what_remains_of_due_lots_only():
    ledger = Ledger()
    b = ledger.builder(now=datetime(2025, 6, 1, tzinfo=UTC))
    b.credit_points(10, lot_id="old")
    ledger.apply(b)
    b = ledger.builder(now=datetime(2026, 6, 1, tzinfo=UTC))
    b.credit_points(7, lot_id="new")
    ledger.apply(b)
    b = ledger.builder(now=local(2027, 1, 1, 0, 5))
    expired = b.expire_lots(local(2027, 1, 1))
    ledger.apply(b)
    assert [(t.lot_id, t.amount) for t in expired] == [("old", 10)]
    assert ledger.state.member.points_available == 7
    assert ledger.breaches() == []


def test_hold_reserves_then_capture_keeps_funds_spent():
    ledger = topped_up(principal=1_000, points=200)
    b = ledger.builder()
    b.place_hold("H1", points=100, balance=300, expires_at=NOW + timedelta(minutes=30))
    ledger.apply(b)
    assert ledger.state.member.balance_principal == 700
    assert ledger.state.member.points_available == 100
    b = ledger.builder()
    b.capture_hold("H1")
    ledger.apply(b)
    assert ledger.state.member.balance_principal == 700
    assert ledger.closed_holds[0].status == "captured"
    assert ledger.breaches() == []


def test_release_returns_funds_to_their_buckets_and_lots():
    ledger = topped_up(principal=100, bonus=50, points=80)
    b = ledger.builder()
    b.place_hold("H1", points=30, balance=120, expires_at=NOW + timedelta(minutes=30))
    ledger.apply(b)
    b = ledger.builder()
    b.release_hold("H1")
    ledger.apply(b)
    m = ledger.state.member
    assert (m.balance_principal, m.balance_bonus, m.points_available) == (100, 50, 80)
    assert [lot.remaining for lot in ledger.state.lots] == [80]
    assert ledger.breaches() == []


def _held(ledger):
    b = ledger.builder()
    b.place_hold("H1", balance=10, expires_at=NOW + timedelta(minutes=30))
    ledger.apply(b)
    return ledger


def test_captured_hold_cannot_be_captured_again():
    ledger = _held(topped_up(principal=100))
    b = ledger.builder()
    b.capture_hold("H1")
    posting = b.build()
    # The closed hold leaves the live state: storage keeps its record; the builder
    # refuses from the status it reads.
    closed = posting.holds[0].after
    again = PostingBuilder(LedgerState(member=posting.member, holds=(closed,)), ledger.program,
                           source_key="x", source_type="t", reason="r", actor="a", now=NOW)
    with pytest.raises(HoldAlreadyCaptured):
        again.capture_hold("H1")
    with pytest.raises(HoldAlreadyCaptured):
        again.release_hold("H1")


def test_released_hold_cannot_be_captured():
    ledger = _held(topped_up(principal=100))
    b = ledger.builder()
    released = b.release_hold("H1")
    again = PostingBuilder(LedgerState(member=b.build().member, holds=(released,)),
                           ledger.program, source_key="x", source_type="t", reason="r",
                           actor="a", now=NOW)
    with pytest.raises(HoldAlreadyReleased):
        again.capture_hold("H1")


def test_expired_hold_cannot_be_captured():
    ledger = _held(topped_up(principal=100))
    with pytest.raises(HoldExpired):
        ledger.builder(now=NOW + timedelta(minutes=31)).capture_hold("H1")


def test_reversal_points_at_the_original_and_restores_the_bucket():
    ledger = topped_up(principal=100)
    original = ledger.entries[0]
    b = ledger.builder()
    b.reverse(original)
    posting = ledger.apply(b)
    assert posting.entries[0].reverses == original.entry_id
    assert posting.entries[0].amount == -100
    assert f"reversal:{original.entry_id}" in posting.extra_guards
    assert ledger.state.member.balance_principal == 0


def test_reversing_the_same_entry_twice_is_rejected():
    ledger = topped_up(principal=100)
    original = ledger.entries[0]
    b = ledger.builder()
    b.reverse(original)
    ledger.apply(b)
    b = ledger.builder()
    b.credit_balance("principal", 100)
    ledger.apply(b)
    b = ledger.builder()
    b.reverse(original)
    with pytest.raises(EntryAlreadyReversed):
        ledger.apply(b)


def test_a_reversal_is_not_itself_reversed():
    ledger = topped_up(principal=100)
    b = ledger.builder()
    b.reverse(ledger.entries[0])
    posting = ledger.apply(b)
    with pytest.raises(EntryNotReversible):
        ledger.builder().reverse(posting.entries[0])


def test_reversing_a_credit_whose_money_was_spent_would_go_negative_and_is_refused():
    ledger = topped_up(principal=100)
    b = ledger.builder()
    b.debit_balance(80)
    ledger.apply(b)
    with pytest.raises(InsufficientBalance):
        ledger.builder().reverse(ledger.entries[0])


def test_consolidation_merges_same_expiry_lots_without_moving_value():
    ledger = Ledger()
    b = ledger.builder()
    for i in range(5):
        b.credit_points(3, lot_id=f"L{i}")
    ledger.apply(b)
    b = ledger.builder()
    assert b.consolidate_lots() == 4
    posting = ledger.apply(b)
    assert posting.entries == ()
    assert [lot.remaining for lot in ledger.state.lots] == [15]
    assert ledger.breaches() == []


def test_next_expiry_is_the_soonest_available_lot():
    ledger = Ledger()
    b = ledger.builder()
    b.credit_points(5, lot_id="a", expires_at=NOW + timedelta(days=3))
    b.credit_points(7, lot_id="b", expires_at=NOW + timedelta(days=3))
    b.credit_points(9, lot_id="c", expires_at=NOW + timedelta(days=30))
    ledger.apply(b)
    m = ledger.state.member
    assert (m.points_next_expiry_at, m.points_next_expiry_amount) == (NOW + timedelta(days=3), 12)


def test_reconcile_reports_a_balance_that_disagrees_with_its_entries():
    ledger = topped_up(principal=100)
    tampered = ledger.state.member.model_copy(update={"balance_principal": 90})
    breaches = reconcile(tampered, ledger.entries, list(ledger.state.lots))
    assert [b.check for b in breaches] == ["balance.principal"]


operations = st.lists(st.tuples(
    st.sampled_from(["credit_p", "credit_b", "debit", "earn", "spend", "hold", "capture",
                     "release", "reverse", "growth", "expire"]),
    st.integers(min_value=1, max_value=500)), max_size=30)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_any_sequence_of_postings_keeps_every_invariant(ops):
    ledger = Ledger()
    clock = NOW
    for op, amount in ops:
        clock += timedelta(days=amount % 40)
        b = ledger.builder(now=clock)
        try:
            if op == "credit_p":
                b.credit_balance("principal", amount)
            elif op == "credit_b":
                b.credit_balance("bonus", amount)
            elif op == "debit":
                b.debit_balance(amount)
            elif op == "earn":
                b.credit_points(amount, lot_id=f"lot{ledger.n}")
            elif op == "spend":
                b.debit_points(amount)
            elif op == "hold":
                b.place_hold(f"H{ledger.n}", balance=amount // 2, points=amount - amount // 2,
                             expires_at=clock + timedelta(days=1))
            elif op in ("capture", "release") and ledger.state.holds:
                hold = ledger.state.holds[0]
                (b.capture_hold if op == "capture" else b.release_hold)(hold.hold_id)
            elif op == "reverse" and ledger.entries:
                b.reverse(ledger.entries[amount % len(ledger.entries)])
            elif op == "growth":
                b.credit_growth(amount)
            elif op == "expire":
                b.expire_lots(clock)
            ledger.apply(b)
        except (InsufficientBalance, InsufficientPoints, InsufficientGrowth, HoldExpired,
                EntryNotReversible, EntryAlreadyReversed):
            pass
        assert ledger.breaches() == []
