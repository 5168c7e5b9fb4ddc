"""Order aggregates (domain/aggregates.py): folding postings equals recomputing from orders."""
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from membership.domain import aggregates, calendar
from membership.domain.aggregates import OrderStats
from membership.domain.checkout import (
    OrderLine,
    OrderRefunded,
    RefundLine,
    Settlement,
    plan_refund,
    split_lines,
)

TZ = "Asia/Shanghai"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
CATEGORIES = ["milk", "toys", "apparel", "food", "books"]


def settlement(order_id, lines, paid_at, *, store="s1", balance=0, discount=0):
    splits = split_lines(tuple(lines), discount=discount, points_used=0, points_value_fen=0,
                         balance=balance)
    s = Settlement(order_id=order_id, member_id="Mabcdefghij", store_id=store,
                   paid_at=paid_at, tier_id="V1", lot_id=f"order-{order_id}",
                   growth_month=calendar.month_of(paid_at, TZ), points_used=0,
                   principal_used=balance, bonus_used=0, cash_paid=0, earned_points=0,
                   growth=0, captured_hold=False, lines=tuple(splits))
    return aggregates.with_categories(s, lines)


def refund(s, refund_id, lines=None):
    event = OrderRefunded(orderId=s.order_id, memberId=s.member_id, refundId=refund_id,
                          lines=None if lines is None else tuple(
                              RefundLine(lineId=i, quantity=q) for i, q in lines))
    return s.model_copy(update={"lines": plan_refund(s, event).lines})


def line(i, category, quantity, price):
    return OrderLine(lineId=str(i), sku=f"sku{i}", category=category, brand="b",
                     quantity=quantity, unitPrice=price)


orders_strategy = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from(CATEGORIES), st.integers(1, 4),
                           st.integers(1, 50_000)), min_size=1, max_size=3),
        st.integers(0, 400),  # days before NOW
        st.sampled_from(["s1", "s2", None]),
        st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4)), max_size=3),  # refunds
        st.booleans(),  # then refund the rest
    ),
    min_size=1, max_size=6)


@given(orders_strategy)
def test_aggregates_after_pays_and_refunds_equal_a_recomputation_from_the_orders(orders):
    stats = OrderStats(complete=True)
    final = []
    for n, (spec, days_ago, store, partials, rest) in enumerate(orders):
        paid_at = NOW - timedelta(days=days_ago)
        lines = [line(i, c, q, p) for i, (c, q, p) in enumerate(spec)]
        s = settlement(f"O{n}", lines, paid_at, store=store)
        stats = aggregates.order_paid(stats, s, now=NOW, tz=TZ)
        for k, (index, qty) in enumerate(partials):
            if index >= len(s.lines):
                continue
            target = s.lines[index]
            left = target.quantity - target.refunded_quantity
            if left == 0:
                continue
            after = refund(s, f"R{k}", [(target.line_id, min(qty, left))])
            stats = aggregates.order_refunded(stats, s, after, now=NOW, tz=TZ)
            s = after
        if rest and not aggregates.fully_refunded(s):
            after = refund(s, "RALL")
            stats = aggregates.order_refunded(stats, s, after, now=NOW, tz=TZ)
            s = after
        final.append(s)
    assert stats == aggregates.recompute(final, now=NOW, tz=TZ)


def test_a_full_refund_takes_back_exactly_what_the_order_added():
    s = settlement("O1", [line(0, "milk", 3, 3_333), line(1, "toys", 1, 101)], NOW)
    paid = aggregates.order_paid(OrderStats(), s, now=NOW, tz=TZ)
    half = refund(s, "R1", [("0", 1)])
    after_half = aggregates.order_refunded(paid, s, half, now=NOW, tz=TZ)
    done = aggregates.order_refunded(after_half, half, refund(half, "R2"), now=NOW, tz=TZ)
    assert (paid.orders, paid.net_spend) == (1, 10_100)
    assert (after_half.orders, after_half.net_spend) == (1, 10_100 - 3_333)
    assert (done.orders, done.net_spend, done.categories, done.order_months) == (0, 0, {}, {})
    assert done.last_order_at == NOW  # the last order paid, even if refunded since


def test_spend_per_category_keeps_the_top_ten():
    stats = OrderStats()
    for i in range(12):
        s = settlement(f"O{i}", [line(0, f"c{i:02d}", 1, 100 + i)], NOW)
        stats = aggregates.order_paid(stats, s, now=NOW, tz=TZ)
    assert len(stats.categories) == 10
    assert "c00" not in stats.categories and "c01" not in stats.categories
    assert stats.top_categories(3) == ["c11", "c10", "c09"]


def test_months_older_than_the_window_are_dropped():
    old = settlement("O1", [line(0, "milk", 1, 500)], NOW - timedelta(days=500))
    new = settlement("O2", [line(0, "milk", 1, 700)], NOW)
    stats = aggregates.order_paid(OrderStats(), old, now=NOW, tz=TZ)
    stats = aggregates.order_paid(stats, new, now=NOW, tz=TZ)
    assert stats.spend_months == {"2026-11": 700}
    assert stats.net_spend == 1_200 and stats.orders == 2


def test_stores_are_the_distinct_stores_bought_in():
    stats = OrderStats()
    for n, store in enumerate(["s2", "s1", "s2", None]):
        stats = aggregates.order_paid(
            stats, settlement(f"O{n}", [line(0, "milk", 1, 100)], NOW, store=store),
            now=NOW, tz=TZ)
    assert stats.stores == ("s1", "s2")
