"""The member portrait (domain/portrait.py): RFM scores, affinity, tier history."""
from datetime import UTC, datetime, timedelta

import pytest

from membership.domain.aggregates import OrderStats
from membership.domain.ledger import Entry
from membership.domain.portrait import category_affinity, rfm_of, tier_history
from membership.domain.program import default_program

PROGRAM = default_program()
NOW = datetime(2026, 11, 20, 4, tzinfo=UTC)
TZ = PROGRAM.time_zone


def stats(days=None, orders=0, spend=0):
    last = None if days is None else NOW - timedelta(days=days)
    return OrderStats(orders=orders, net_spend=spend, last_order_at=last,
                      order_months={"2026-11": orders} if orders else {},
                      spend_months={"2026-11": spend} if spend else {})


@pytest.mark.parametrize(("days", "score"), [
    (None, 1), (0, 5), (30, 5), (31, 4), (90, 4), (91, 3), (180, 3), (181, 2), (365, 2),
    (366, 1)])
def test_recency_score_at_the_breakpoints(days, score):
    assert rfm_of(stats(days), PROGRAM.rfm, NOW, TZ).recency == score


@pytest.mark.parametrize(("orders", "score"), [(0, 1), (1, 1), (2, 2), (4, 3), (8, 4),
                                               (15, 4), (16, 5)])
def test_frequency_score_counts_orders_in_12_months(orders, score):
    assert rfm_of(stats(1, orders), PROGRAM.rfm, NOW, TZ).frequency == score


@pytest.mark.parametrize(("spend", "score"), [(0, 1), (49_999, 1), (50_000, 2),
                                              (500_000, 4), (2_000_000, 5)])
def test_monetary_score_counts_net_spend_in_12_months(spend, score):
    assert rfm_of(stats(1, 1, spend), PROGRAM.rfm, NOW, TZ).monetary == score


def test_category_affinity_is_each_categorys_share_of_spend():
    shares = category_affinity(OrderStats(categories={"milk": 3_000, "toys": 1_000}))
    assert [(s.category, s.share_bps) for s in shares] == [("milk", 7_500), ("toys", 2_500)]


def growth(month, amount, created):
    return Entry(entry_id=f"e{month}{amount}", member_id="Mabcdefghij", asset="growth",
                 bucket=month, amount=amount, balance_after=max(amount, 0),
                 source_type="order.paid", source_key=f"k{month}{amount}", reason="r",
                 actor="a", created_at=created, effective_at=created)


def test_tier_history_follows_rolling_growth_month_by_month():
    entries = [growth("2026-03", 1_200, datetime(2026, 3, 10, tzinfo=UTC)),
               growth("2026-06", 4_000, datetime(2026, 6, 10, tzinfo=UTC)),
               # refunded in July: counts from July's end on
               growth("2026-06", -4_000, datetime(2026, 7, 10, tzinfo=UTC))]
    history = {m.month: (m.rolling_growth, m.qualified_tier)
               for m in tier_history(entries, PROGRAM, NOW)}
    assert len(history) == 12 and min(history) == "2025-12"
    assert history["2026-02"] == (0, "V1")
    assert history["2026-03"] == (1_200, "V2")
    assert history["2026-06"] == (5_200, "V3")
    assert history["2026-07"] == (1_200, "V2")
