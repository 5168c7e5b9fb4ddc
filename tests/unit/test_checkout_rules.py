"""Checkout rules: quote math, line spreading, settlement of paid orders and refunds."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membership.domain import calendar
from membership.domain import checkout as co
from membership.domain.ledger import (
    InsufficientBalance,
    InsufficientPoints,
    LedgerState,
    LotTake,
    PostingBuilder,
    reconcile,
)
from membership.domain.members import Member
from membership.domain.program import default_program
from membership.domain.tiers import upgrade_if_qualified

PROGRAM = default_program()
NOW = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)
MEMBER_ID = "Mabcdefghijk"


def member(**changes) -> Member:
    base = {"member_id": MEMBER_ID, "subject": "s", "phone": "+8613812345678", "nickname": "n",
                "channel": "app", "created_at": NOW, "updated_at": NOW, "tier_id": "V1", "tier_since": NOW}
    return Member(**{**base, **changes})


def line(line_id="L1", quantity=1, unit_price=10_000, **changes) -> co.OrderLine:
    return co.OrderLine(lineId=line_id, sku="sku", category="c", brand="b",
                        quantity=quantity, unitPrice=unit_price, **changes)


def quote_request(lines, **changes) -> co.QuoteRequest:
    return co.QuoteRequest(memberId=MEMBER_ID, lines=tuple(lines), **changes)


# ---- allocate ----------------------------------------------------------------------------

weights_st = st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=30)


@given(weights_st, st.integers(min_value=0, max_value=10**8))
def test_allocated_shares_sum_exactly_to_the_total(weights, total):
    assert sum(co.allocate(total, weights)) == total


@given(weights_st, st.data())
def test_no_share_exceeds_its_weight_when_the_total_fits(weights, data):
    total = data.draw(st.integers(min_value=0, max_value=sum(weights)))
    shares = co.allocate(total, weights)
    if sum(weights):
        assert all(0 <= s <= w for s, w in zip(shares, weights))


@given(st.lists(st.integers(min_value=1, max_value=10**7), min_size=1, max_size=30),
       st.integers(min_value=0, max_value=10**8))
def test_each_share_is_within_one_unit_of_its_exact_proportion(weights, total):
    whole = sum(weights)
    for share, weight in zip(co.allocate(total, weights), weights):
        assert abs(share * whole - total * weight) < whole


def test_leftover_fen_go_to_the_largest_remainders_then_the_earlier_line():
    assert co.allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert co.allocate(5, [10, 30, 60]) == [1, 1, 3]  # 0.5 and 1.5 tie: the earlier wins
    assert co.allocate(3, [1, 3, 6]) == [0, 1, 2]  # .3 .9 1.8: the .9 and .8 get one


def test_all_zero_weights_split_evenly():
    assert co.allocate(5, [0, 0]) == [3, 2]


# ---- the quote ---------------------------------------------------------------------------

def test_registered_member_gets_no_tier_discount():
    q = co.quote(quote_request([line(quantity=2, unit_price=5_000)]), member(), PROGRAM)
    assert (q.subtotal, q.tier_discount, q.amount_after_discounts) == (10_000, 0, 10_000)


def test_tier_discount_rounds_down_to_the_fen():
    # 5% of 999 fen is 49.95 fen: the member gets 49.
    q = co.quote(quote_request([line(unit_price=999)]), member(tier_id="V3"), PROGRAM)
    assert q.tier_discount == 49
    assert q.amount_after_discounts == 950


def test_points_redeemable_is_capped_at_half_the_amount_after_discounts():
    q = co.quote(quote_request([line(unit_price=10_001)]), member(points_available=99_999),
                 PROGRAM)
    assert q.points_redeemable == 5_000  # 50% of 10,001 fen is 5,000.5 fen -> 5,000 points


def test_points_redeemable_is_limited_by_the_members_points():
    q = co.quote(quote_request([line(unit_price=10_000)]), member(points_available=1_234),
                 PROGRAM)
    assert q.points_redeemable == 1_234


def test_hundred_points_offset_one_yuan():
    q = co.quote(quote_request([line(unit_price=10_000)], pointsToRedeem=300),
                 member(points_available=1_000), PROGRAM)
    assert q.points_value == 300
    assert q.payable == 9_700


def test_points_over_the_cap_are_refused():
    with pytest.raises(co.PointsOverCap):
        co.quote(quote_request([line(unit_price=1_000)], pointsToRedeem=501),
                 member(points_available=10_000), PROGRAM)


def test_points_the_member_lacks_are_refused():
    with pytest.raises(InsufficientPoints):
        co.quote(quote_request([line(unit_price=10_000)], pointsToRedeem=200),
                 member(points_available=100), PROGRAM)


def test_balance_usable_is_the_smaller_of_balance_and_what_is_left_to_pay():
    rich = co.quote(quote_request([line(unit_price=10_000)], pointsToRedeem=1_000),
                    member(points_available=1_000, balance_principal=50_000), PROGRAM)
    poor = co.quote(quote_request([line(unit_price=10_000)]),
                    member(balance_principal=700, balance_bonus=50), PROGRAM)
    assert rich.balance_usable == 9_000
    assert poor.balance_usable == 750


def test_balance_beyond_what_is_left_to_pay_is_refused():
    with pytest.raises(co.BalanceOverPayable):
        co.quote(quote_request([line(unit_price=1_000)], balanceToUse=1_001),
                 member(balance_principal=5_000), PROGRAM)


def test_balance_the_member_lacks_is_refused():
    with pytest.raises(InsufficientBalance):
        co.quote(quote_request([line(unit_price=1_000)], balanceToUse=600),
                 member(balance_principal=500), PROGRAM)


def test_points_and_growth_to_earn_count_whole_yuan_of_cash_and_balance_only():
    # 123.45 yuan after a 1,000-point offset: 113 whole yuan of cash + balance.
    q = co.quote(quote_request([line(unit_price=12_345)], pointsToRedeem=1_000,
                               balanceToUse=2_000),
                 member(points_available=1_000, balance_principal=2_000), PROGRAM)
    assert q.payable == 12_345 - 1_000 - 2_000
    assert q.growth_to_earn == 113
    assert q.points_to_earn == 113


def test_points_to_earn_apply_the_tier_multiplier_rounded_down():
    q = co.quote(quote_request([line(unit_price=12_399)]), member(tier_id="V2"), PROGRAM)
    # V2: 2% off 12,399 = 247 -> 12,152 fen paid -> 121 yuan x 1.2 = 145.2 -> 145
    assert q.tier_discount == 247
    assert q.points_to_earn == 145
    assert q.growth_to_earn == 121


lines_st = st.lists(
    st.tuples(st.integers(min_value=1, max_value=20), st.integers(min_value=0, max_value=50_000)),
    min_size=1, max_size=12)


@settings(max_examples=200)
@given(lines_st, st.sampled_from(["V1", "V2", "V3", "V4"]), st.data())
def test_quote_lines_sum_exactly_to_every_total(spec, tier, data):
    lines = [line(f"L{i}", q, p) for i, (q, p) in enumerate(spec)]
    m = member(tier_id=tier, points_available=10**6, balance_principal=10**7)
    first = co.quote(quote_request(lines), m, PROGRAM)
    points = data.draw(st.integers(min_value=0, max_value=first.points_redeemable))
    left = first.amount_after_discounts - co.points_value(points, PROGRAM)
    balance = data.draw(st.integers(min_value=0, max_value=left))
    q = co.quote(quote_request(lines, pointsToRedeem=points, balanceToUse=balance), m, PROGRAM)
    assert sum(x.tier_discount for x in q.lines) == q.tier_discount
    assert sum(x.points_value for x in q.lines) == q.points_value
    assert sum(x.points_used for x in q.lines) == q.points_to_redeem
    assert sum(x.balance for x in q.lines) == q.balance_to_use
    assert sum(x.payable for x in q.lines) == q.payable
    for x in q.lines:
        assert x.tier_discount + x.points_value + x.balance + x.payable == x.subtotal
        assert min(x.tier_discount, x.points_value, x.balance, x.payable) >= 0
    assert q.subtotal - q.tier_discount - q.points_value - q.balance_to_use == q.payable


def test_line_ids_must_be_unique():
    with pytest.raises(ValueError):
        quote_request([line("L1"), line("L1")])


def test_money_must_be_integer_fen():
    with pytest.raises(ValueError):
        co.OrderLine(lineId="L1", sku="s", category="c", brand="b", quantity=1,
                     unitPrice=10.5)


# ---- refunds, line by line ---------------------------------------------------------------

def settlement(lines: list[co.LineSplit], **changes) -> co.Settlement:
    total = {f: sum(getattr(x, f) for x in lines)
             for f in ("points_used", "balance", "cash", "earned_points", "growth")}
    base = {"order_id": "O1", "member_id": MEMBER_ID, "paid_at": NOW, "tier_id": "V1",
                "lot_id": "order-O1", "growth_month": "2025-03", "points_used": total["points_used"],
                "principal_used": total["balance"], "bonus_used": 0, "cash_paid": total["cash"],
                "earned_points": total["earned_points"], "growth": total["growth"],
                "captured_hold": False, "lines": tuple(lines)}
    return co.Settlement(**{**base, **changes})


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(min_value=1, max_value=6),
                          st.integers(min_value=1, max_value=30_000)),
                min_size=1, max_size=6),
       st.integers(min_value=0, max_value=5_000), st.data())
def test_refunding_every_unit_in_any_steps_reverses_exactly_what_was_spent_and_earned(
        spec, points_cap, data):
    lines = [line(f"L{i}", q, p) for i, (q, p) in enumerate(spec)]
    subtotal = sum(x.amount for x in lines)
    discount = data.draw(st.integers(min_value=0, max_value=subtotal // 10))
    points = min(points_cap, (subtotal - discount) // 2)
    balance = data.draw(st.integers(min_value=0, max_value=subtotal - discount - points))
    paid = subtotal - discount - points
    splits = co.split_lines(tuple(lines), discount=discount, points_used=points,
                            points_value_fen=points, balance=balance,
                            earned_points=paid // 100, growth=paid // 100)
    s = settlement(splits)
    totals = {"points": 0, "balance": 0, "earned": 0, "growth": 0}
    remaining = {x.line_id: x.quantity for x in splits}
    for n in range(100):
        if not any(remaining.values()):
            break
        refund_lines = []
        for line_id, left in remaining.items():
            take = data.draw(st.integers(min_value=0, max_value=left))
            if take:
                refund_lines.append(co.RefundLine(lineId=line_id, quantity=take))
                remaining[line_id] -= take
        if not refund_lines:
            continue
        plan = co.plan_refund(s, co.OrderRefunded(orderId="O1", memberId=MEMBER_ID,
                                                  refundId=f"R{n}", lines=tuple(refund_lines)))
        totals["points"] += plan.points_return
        totals["balance"] += plan.balance_return
        totals["earned"] += plan.earned_reverse
        totals["growth"] += plan.growth_reverse
        s = s.model_copy(update={"lines": plan.lines})
    last = co.plan_refund(s, co.OrderRefunded(orderId="O1", memberId=MEMBER_ID, refundId="Z"))
    assert totals["points"] + last.points_return == points
    assert totals["balance"] + last.balance_return == balance
    assert totals["earned"] + last.earned_reverse == paid // 100
    assert totals["growth"] + last.growth_reverse == paid // 100


def test_partial_refund_is_proportional_to_the_refunded_units():
    splits = co.split_lines((line("L1", 4, 2_500), line("L2", 1, 10_000)), discount=0,
                            points_used=2_000, points_value_fen=2_000, balance=4_000,
                            earned_points=140, growth=140)
    plan = co.plan_refund(settlement(splits), co.OrderRefunded(
        orderId="O1", memberId=MEMBER_ID, refundId="R1",
        lines=(co.RefundLine(lineId="L1", quantity=1),)))
    # L1 is half the order: 1,000 points, 2,000 fen, 70 earned; one unit of four is a quarter.
    assert (plan.points_return, plan.balance_return, plan.earned_reverse) == (250, 500, 17)


def test_refunding_more_units_than_are_left_is_refused():
    s = settlement(co.split_lines((line("L1", 2, 100),), discount=0, points_used=0,
                                  points_value_fen=0, balance=0))
    with pytest.raises(co.OverRefund):
        co.plan_refund(s, co.OrderRefunded(orderId="O1", memberId=MEMBER_ID, refundId="R",
                                           lines=(co.RefundLine(lineId="L1", quantity=3),)))


def test_refunding_an_unknown_line_is_refused():
    s = settlement(co.split_lines((line("L1", 2, 100),), discount=0, points_used=0,
                                  points_value_fen=0, balance=0))
    with pytest.raises(co.UnknownLine):
        co.plan_refund(s, co.OrderRefunded(orderId="O1", memberId=MEMBER_ID, refundId="R",
                                           lines=(co.RefundLine(lineId="L9", quantity=1),)))


def test_takes_between_slices_the_spent_points_lot_by_lot():
    x = NOW + timedelta(days=1)
    takes = (LotTake(lot_id="a", expires_at=x, amount=30),
             LotTake(lot_id="b", expires_at=x, amount=70))
    assert co.takes_between(takes, 20, 50) == (
        LotTake(lot_id="a", expires_at=x, amount=10), LotTake(lot_id="b", expires_at=x, amount=20))


# ---- settlement on the ledger ------------------------------------------------------------

def builder(state: LedgerState, key="k", now=NOW, effective_at=None) -> PostingBuilder:
    return PostingBuilder(state, PROGRAM, source_key=key, source_type="t", reason="r",
                          actor="test", now=now, effective_at=effective_at)


def paid_event(order_id="O1", lines=None, paid_at=NOW, **amounts) -> co.OrderPaid:
    lines = lines or (line("L1", 2, 10_000),)
    subtotal = sum(x.amount for x in lines)
    a = {"subtotal": subtotal, "discount": 0, "pointsUsed": 0, "balanceUsed": 0}
    a.update(amounts)
    a.setdefault("cashPaid", a["subtotal"] - a["discount"] - a["pointsUsed"] - a["balanceUsed"])
    return co.OrderPaid(orderId=order_id, memberId=MEMBER_ID, storeId="S1", paidAt=paid_at,
                        lines=tuple(lines), amounts=co.OrderAmounts(**a))


def with_points(state_member: Member, points: int, lot_id="gift") -> LedgerState:
    b = builder(LedgerState(member=state_member), key="seed")
    b.credit_points(points, lot_id=lot_id)
    p = b.build()
    return LedgerState(member=p.member, lots=tuple(c.after for c in p.lots if c.after))


def state_of(posting, before: LedgerState | None = None) -> LedgerState:
    """The state after `posting`, carrying over the lots and holds it did not touch."""
    lots = {lot.lot_id: lot for lot in (before.lots if before else ())}
    for change in posting.lots:
        if change.before:
            lots.pop(change.before.lot_id, None)
        if change.after:
            lots[change.after.lot_id] = change.after
    holds = {h.hold_id: h for h in (before.holds if before else ())}
    for change in posting.holds:
        if change.after.status == "held":
            holds[change.after.hold_id] = change.after
        else:
            holds.pop(change.after.hold_id, None)
    return LedgerState(member=posting.member, lots=tuple(lots.values()),
                       holds=tuple(holds.values()))


def test_paid_order_awards_pending_points_and_growth_dated_by_paid_time():
    late = datetime(2025, 2, 1, 3, 0, tzinfo=UTC)  # processed in February (UTC+8)
    paid_at = datetime(2025, 1, 31, 23, 30, tzinfo=calendar.zone("Asia/Shanghai"))
    b = builder(LedgerState(member=member()), now=late, effective_at=paid_at)
    s = co.settle_paid(b, paid_event(paid_at=paid_at), PROGRAM, upgrade_if_qualified)
    p = b.build()
    assert (s.earned_points, s.growth, s.growth_month) == (200, 200, "2025-01")
    assert p.member.points_pending == 200 and p.member.growth_months == {"2025-01": 200}
    lot = next(c.after for c in p.lots if c.after.lot_id == "order-O1")
    assert lot.pending and lot.expires_at == calendar.end_of_next_year(paid_at, "Asia/Shanghai")


def test_paid_order_that_crosses_a_threshold_upgrades_at_once_with_a_pending_gift():
    b = builder(LedgerState(member=member(growth_months={"2025-02": 950})))
    s = co.settle_paid(b, paid_event(), PROGRAM, upgrade_if_qualified)
    p = b.build()
    assert p.member.tier_id == "V2"
    # The gift is pending with the order's own points, until its return window closes.
    assert (p.member.points_available, p.member.points_pending) == (0, 200 + s.earned_points)
    assert [g.tier_id for g in s.gifts] == ["V2"] and p.member.tier_gifts == {"V2": "2025-03"}
    assert [e.detail_type for e in p.events] == ["member.tier_changed"]


def test_paid_order_captures_its_hold():
    hb_state = with_points(member(balance_principal=5_000), 1_000)
    hb = builder(hb_state, key="hold:O1")
    co.place_hold(hb, co.HoldRequest(orderId="O1", memberId=MEMBER_ID, points=1_000,
                                     balance=5_000), PROGRAM)
    held = hb.build()
    b = builder(state_of(held, hb_state), now=NOW + timedelta(minutes=5))
    s = co.settle_paid(b, paid_event(pointsUsed=1_000, balanceUsed=5_000), PROGRAM,
                       upgrade_if_qualified)
    p = b.build()
    assert s.captured_hold and p.holds[0].after.status == "captured"
    assert (p.member.balance_principal, p.member.points_available) == (0, 0)
    assert s.principal_used == 5_000 and sum(t.amount for t in s.takes) == 1_000


def test_paid_amounts_that_differ_from_the_hold_are_an_error():
    hb_state = LedgerState(member=member(balance_principal=5_000))
    hb = builder(hb_state, key="hold:O1")
    co.place_hold(hb, co.HoldRequest(orderId="O1", memberId=MEMBER_ID, balance=5_000),
                  PROGRAM)
    held = hb.build()
    b = builder(state_of(held, hb_state))
    with pytest.raises(co.HoldMismatch):
        co.settle_paid(b, paid_event(balanceUsed=4_000), PROGRAM, upgrade_if_qualified)


def test_paid_without_a_hold_debits_directly():
    b = builder(LedgerState(member=member(balance_principal=3_000)))
    s = co.settle_paid(b, paid_event(balanceUsed=3_000), PROGRAM, upgrade_if_qualified)
    assert not s.captured_hold and b.build().member.balance_principal == 0


def test_paid_amounts_that_do_not_add_up_are_malformed():
    b = builder(LedgerState(member=member()))
    with pytest.raises(co.AmountsMismatch):
        co.settle_paid(b, paid_event(cashPaid=1), PROGRAM, upgrade_if_qualified)


def _paid_and_completed(points_before=0):
    start = with_points(member(), points_before) if points_before else LedgerState(
        member=member())
    b = builder(start, key="order.paid:O1")
    s = co.settle_paid(b, paid_event(lines=(line("L1", 2, 10_000),)), PROGRAM,
                       upgrade_if_qualified)
    paid = state_of(b.build(), start)
    b = builder(paid, key="order.completed:O1")
    co.complete_order(b, s)
    return s, state_of(b.build(), paid)


def test_completion_releases_the_orders_pending_points():
    _, done = _paid_and_completed()
    assert (done.member.points_pending, done.member.points_available) == (0, 200)


def test_partial_refund_after_the_earned_points_were_spent_never_goes_negative():
    s, done = _paid_and_completed()
    spend = builder(done, key="spend")
    spend.debit_points(150)  # 50 of the order's 200 points are left
    spent = state_of(spend.build(), done)
    b = builder(spent, key="order.refunded:O1:R1")
    refund = co.OrderRefunded(orderId="O1", memberId=MEMBER_ID, refundId="R1",
                              lines=(co.RefundLine(lineId="L1", quantity=1),))
    updated = co.apply_refund(b, s, refund)
    p = b.build()
    # Half the order: 100 earned points to reverse; 50 are left in the lot, nothing else.
    assert b.result["earnedPointsReversed"] == 100
    assert b.result["earnedPointsWrittenOff"] == 50
    assert p.member.points_available == 0 and p.member.growth_months == {"2025-03": 100}
    assert updated.earned_written_off == 50 and updated.lines[0].refunded_quantity == 1


def test_earned_points_shortfall_comes_from_the_members_other_points_first():
    s, done = _paid_and_completed()
    gift = builder(done, key="gift")
    gift.credit_points(500, lot_id="late", expires_at=NOW + timedelta(days=3 * 365))
    rich = state_of(gift.build(), done)
    spend = builder(rich, key="spend")
    spend.debit_points(300)  # the order's lot expires first: all 200 go, then 100 of "late"
    spent = state_of(spend.build(), rich)
    b = builder(spent, key="order.refunded:O1:R1")
    co.apply_refund(b, s, co.OrderRefunded(orderId="O1", memberId=MEMBER_ID, refundId="R1"))
    p = b.build()
    assert b.result["earnedPointsWrittenOff"] == 0
    assert p.member.points_available == 400 - 200


def test_full_refund_restores_balance_buckets_points_and_growth_exactly():
    start = with_points(member(balance_principal=3_000, balance_bonus=1_001), 900)
    b = builder(start, key="order.paid:O1")
    event = paid_event(lines=(line("L1", 3, 3_333), line("L2", 1, 1)), pointsUsed=900,
                       balanceUsed=4_001)
    s = co.settle_paid(b, event, PROGRAM, upgrade_if_qualified)
    state = state_of(b.build(), start)
    for n, (line_id, qty) in enumerate((("L1", 1), ("L1", 2), ("L2", 1))):
        rb = builder(state, key=f"order.refunded:O1:R{n}")
        s = co.apply_refund(rb, s, co.OrderRefunded(
            orderId="O1", memberId=MEMBER_ID, refundId=f"R{n}",
            lines=(co.RefundLine(lineId=line_id, quantity=qty),)))
        state = state_of(rb.build(), state)
    m = state.member
    assert (m.balance_principal, m.balance_bonus) == (3_000, 1_001)
    assert (m.points_available, m.points_pending) == (900, 0)
    assert sum(m.growth_months.values()) == 0
    assert s.earned_written_off == 0


def test_settlement_postings_reconcile():
    start = with_points(member(balance_principal=10_000), 2_000)
    b = builder(start, key="order.paid:O1")
    co.settle_paid(b, paid_event(pointsUsed=1_000, balanceUsed=5_000), PROGRAM,
                   upgrade_if_qualified)
    p = b.build()
    seed = builder(LedgerState(member=member(balance_principal=10_000)), key="seed")
    seed.credit_points(2_000, lot_id="gift")
    entries = [*seed.build().entries, *p.entries]
    # The member started with principal outside any entry: count it as an opening entry.
    breaches = [x for x in reconcile(p.member, entries, list(state_of(p, start).lots))
                if x.check != "balance.principal"]
    assert breaches == []
