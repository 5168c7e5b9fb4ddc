"""Debts (docs/money.md) as pure rules: what a reversal cannot take back is owed, and every
later credit of the asset pays it first, so the net outcome does not depend on order."""
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from test_ledger_rules import NOW, Ledger

from membership.domain.ledger import MAX_TAKE_LOTS, PointsTooFragmented


def test_bonus_credited_while_in_debt_pays_the_debt_first():
    ledger = Ledger()
    b = ledger.builder()
    b.record_bonus_debt(500, reason="topup_bonus_debt")
    ledger.apply(b)
    b = ledger.builder()
    b.credit_balance("bonus", 300)
    ledger.apply(b)
    assert (ledger.state.member.balance_bonus, ledger.state.member.bonus_debt) == (0, 200)
    b = ledger.builder()
    b.credit_balance("bonus", 300)
    ledger.apply(b)
    assert (ledger.state.member.balance_bonus, ledger.state.member.bonus_debt) == (100, 0)
    assert ledger.breaches() == []


def test_principal_never_pays_bonus_debt():
    ledger = Ledger()
    b = ledger.builder()
    b.record_bonus_debt(500)
    b.credit_balance("principal", 1_000)
    ledger.apply(b)
    m = ledger.state.member
    assert (m.balance_principal, m.balance_bonus, m.bonus_debt) == (1_000, 0, 500)


def test_returned_points_pay_the_points_debt_first_soonest_expiring_first():
    ledger = Ledger()
    b = ledger.builder()
    b.credit_points(100, lot_id="soon", expires_at=NOW + timedelta(days=10))
    b.credit_points(100, lot_id="late", expires_at=NOW + timedelta(days=400))
    ledger.apply(b)
    b = ledger.builder()
    takes = b.debit_points(150)
    b.record_points_debt(120, reason="written_off")
    ledger.apply(b)
    b = ledger.builder()
    b.return_points(takes)
    ledger.apply(b)
    m = ledger.state.member
    lots = {lot.lot_id: lot.remaining for lot in ledger.state.lots}
    # 100 from "soon" and 20 from "late" pay the debt; "late" keeps 50 + 30.
    assert (m.points_available, m.points_debt, lots) == (80, 0, {"late": 80})
    assert ledger.breaches() == []


def test_pending_points_pay_the_debt_when_they_become_available():
    ledger = Ledger()
    b = ledger.builder()
    b.credit_points(300, lot_id="order", pending=True)
    b.record_points_debt(200)
    ledger.apply(b)
    assert ledger.state.member.points_pending == 300  # pending points are not touched
    b = ledger.builder()
    b.release_pending("order")
    ledger.apply(b)
    m = ledger.state.member
    assert (m.points_available, m.points_pending, m.points_debt) == (100, 0, 0)
    assert ledger.breaches() == []


def test_points_returned_into_an_expired_lot_expire_at_once_and_pay_no_debt():
    ledger = Ledger()
    b = ledger.builder()
    b.credit_points(100, lot_id="soon", expires_at=NOW + timedelta(days=1))
    ledger.apply(b)
    b = ledger.builder()
    takes = b.debit_points(100)
    b.record_points_debt(40)
    ledger.apply(b)
    b = ledger.builder(now=NOW + timedelta(days=2))
    b.return_points(takes)
    posting = ledger.apply(b)
    m = ledger.state.member
    assert (m.points_available, m.points_debt, ledger.state.lots) == (0, 40, ())
    assert [e.detail_type for e in posting.events] == ["points.expired"]
    assert ledger.breaches() == []


def test_a_take_over_many_same_expiry_lots_merges_them_first():
    ledger = Ledger()
    b = ledger.builder()
    for i in range(60):
        b.credit_points(1, lot_id=f"lot-{i:02d}", expires_at=NOW + timedelta(days=30))
    ledger.apply(b)
    b = ledger.builder()
    takes = b.debit_points(50)
    ledger.apply(b)
    assert len(takes) == 1 and ledger.breaches() == []
    assert sum(lot.remaining for lot in ledger.state.lots) == 10


def test_a_take_that_would_touch_too_many_lots_of_distinct_expiries_is_refused():
    ledger = Ledger()
    b = ledger.builder()
    for i in range(MAX_TAKE_LOTS + 1):
        b.credit_points(1, lot_id=f"lot-{i:02d}", expires_at=NOW + timedelta(days=30 + i))
    ledger.apply(b)
    b = ledger.builder()
    try:
        b.debit_points(MAX_TAKE_LOTS + 1)
    except PointsTooFragmented as exc:
        assert exc.details["maximum"] == MAX_TAKE_LOTS
    else:
        raise AssertionError("the take was not refused")
    # A clawback takes what one take can reach; the rest becomes debt.
    assert len(b.debit_points(MAX_TAKE_LOTS + 1, partial=True)) == MAX_TAKE_LOTS


# An operation: ("credit", n) bonus credited, ("owe", n) a reversal of n that takes what the
# bucket holds and owes the rest, ("spend", n) spent if the bucket covers it.
operations = st.lists(st.tuples(st.sampled_from(["credit", "owe", "spend"]),
                                st.integers(min_value=1, max_value=900)), max_size=12)


def _run_bonus(ops):
    ledger = Ledger()
    spent = 0
    for kind, amount in ops:
        b = ledger.builder()
        m = ledger.state.member
        if kind == "credit":
            b.credit_balance("bonus", amount)
        elif kind == "owe":
            take = min(amount, m.balance_bonus)
            if take:
                b.debit_buckets(bonus=take)
            if amount - take:
                b.record_bonus_debt(amount - take)
        elif m.balance_bonus >= amount:
            b.debit_buckets(bonus=amount)
            spent += amount
        else:
            continue
        ledger.apply(b)
    return ledger, spent


@settings(max_examples=200, deadline=None)
@given(operations)
def test_the_bonus_net_of_debt_is_credits_minus_reversals_minus_spending(ops):
    ledger, spent = _run_bonus(ops)
    m = ledger.state.member
    credits = sum(n for k, n in ops if k == "credit")
    owed = sum(n for k, n in ops if k == "owe")
    assert m.balance_bonus - m.bonus_debt == credits - owed - spent
    assert m.balance_bonus == 0 or m.bonus_debt == 0  # never both
    assert ledger.breaches() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["credit", "owe"]),
                          st.integers(min_value=1, max_value=900)), max_size=10),
       st.randoms(use_true_random=False))
def test_credits_and_reversals_end_the_same_in_any_order(ops, rnd):
    shuffled = list(ops)
    rnd.shuffle(shuffled)
    a, _ = _run_bonus(ops)
    b, _ = _run_bonus(shuffled)
    assert (a.state.member.balance_bonus, a.state.member.bonus_debt) == (
        b.state.member.balance_bonus, b.state.member.bonus_debt)


def test_a_debt_entry_is_not_reversed():
    from membership.domain.ledger import EntryNotReversible

    ledger = Ledger()
    b = ledger.builder()
    entry = b.record_bonus_debt(100)
    ledger.apply(b)
    b = ledger.builder()
    try:
        b.reverse(entry)
    except EntryNotReversible:
        pass
    else:
        raise AssertionError("a debt entry was reversed")
