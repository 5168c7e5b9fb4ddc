"""Coupon rules, pure: discounts (thresholds, percent caps, scopes, spreading over lines),
stacking, validity, derived status, stock shards."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership.domain.checkout import OrderLine, QuoteRequest, quote
from membership.domain.coupons import (
    Coupon,
    CouponInUse,
    CouponNotApplicable,
    CouponOutOfStock,
    CouponTerms,
    LineAmount,
    Shard,
    StockBelowIssued,
    TemplateSpec,
    applicable_coupons,
    apply_coupons,
    check_usable,
    default_templates,
    pick_shard,
    stock_change,
    stock_split,
    validity_of,
)
from membership.domain.members import Member
from membership.domain.program import default_program

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def coupon(cid="c00000001", stackable=False, valid_until=None, status="available", **terms):
    base = {"name": "c", "kind": "amount_off", "amountOff": 1_000}
    base.update(terms)
    return Coupon(coupon_id=cid, member_id="Mabcdefgh", template_id="T",
                  terms=CouponTerms.model_validate({**base, "stackable": stackable}), shard=0,
                  source="claim", status=status, issued_at=NOW - timedelta(days=1),
                  valid_from=NOW - timedelta(days=1),
                  valid_until=valid_until or NOW + timedelta(days=10))


def line(amount, lid="1", sku="SKU", category="cat"):
    return LineAmount(line_id=lid, sku=sku, category=category, amount=amount)


def one(c, lines, store_id=None):
    return apply_coupons([c], lines, store_id=store_id, now=NOW)[0]


# ---- thresholds, caps, scope ------------------------------------------------------

def test_a_threshold_one_fen_below_min_spend_does_not_apply():
    with pytest.raises(CouponNotApplicable) as refused:
        one(coupon(minSpend=10_000), [line(9_999)])
    assert refused.value.details["reason"] == "threshold"


def test_a_threshold_met_exactly_applies():
    assert one(coupon(minSpend=10_000), [line(10_000)]).discount == 1_000


def test_a_percent_discount_rounds_down():
    assert one(coupon(kind="percent_off", amountOff=None, percentOffBps=500),
               [line(1_999)]).discount == 99


def test_a_percent_discount_is_capped_by_max_discount():
    c = coupon(kind="percent_off", amountOff=None, percentOffBps=500, maxDiscount=5_000)
    assert one(c, [line(200_000)]).discount == 5_000
    assert one(c, [line(99_999)]).discount == 4_999


def test_a_coupon_larger_than_its_scopes_subtotal_takes_only_that_subtotal():
    d = one(coupon(amountOff=5_000, scope={"categories": ["shoes"]}),
            [line(3_000, "1", category="shoes"), line(10_000, "2", category="hats")])
    assert d.discount == 3_000
    assert d.lines == (3_000, 0)


def test_a_scope_by_sku_or_category_covers_only_those_lines():
    d = one(coupon(amountOff=900, scope={"skus": ["A"], "categories": ["c2"]}),
            [line(1_000, "1", sku="A"), line(2_000, "2", category="c2"),
             line(5_000, "3", sku="Z")])
    assert d.lines[2] == 0
    assert sum(d.lines) == 900


def test_a_scope_with_no_line_of_the_order_does_not_apply():
    with pytest.raises(CouponNotApplicable) as refused:
        one(coupon(scope={"skus": ["A"]}), [line(10_000, sku="B")])
    assert refused.value.details["reason"] == "scope"


def test_a_store_scope_needs_the_orders_store():
    c = coupon(scope={"stores": ["s1"]})
    assert one(c, [line(10_000)], store_id="s1").discount == 1_000
    with pytest.raises(CouponNotApplicable):
        one(c, [line(10_000)], store_id="s2")
    with pytest.raises(CouponNotApplicable):
        one(c, [line(10_000)])


def test_free_shipping_takes_nothing_off_the_goods():
    d = one(coupon(kind="free_shipping", amountOff=None), [line(10_000)])
    assert (d.discount, d.free_shipping) == (0, True)


def test_a_coupon_outside_its_window_does_not_apply():
    with pytest.raises(CouponNotApplicable) as refused:
        one(coupon(valid_until=NOW - timedelta(seconds=1)), [line(10_000)])
    assert refused.value.details["reason"] == "window"


# ---- stacking and several coupons ---------------------------------------------------

def test_two_non_stackable_coupons_are_refused():
    with pytest.raises(CouponNotApplicable) as refused:
        apply_coupons([coupon("c00000001"), coupon("c00000002")], [line(10_000)],
                      store_id=None, now=NOW)
    assert refused.value.details["reason"] == "stacking"


def test_stackable_coupons_apply_after_the_non_stackable_one_on_what_is_left():
    ds = apply_coupons([coupon("c00000002", stackable=True, amountOff=800),
                        coupon("c00000001", amountOff=500)], [line(1_000)],
                       store_id=None, now=NOW)
    assert [(d.coupon_id, d.discount) for d in ds] == [("c00000001", 500), ("c00000002", 500)]


@given(amounts=st.lists(st.integers(0, 10**7), min_size=1, max_size=8),
       off=st.integers(1, 10**8), bps=st.integers(1, 10_000), stack=st.integers(1, 4))
def test_coupons_never_take_a_line_below_zero_and_shares_sum_exactly(amounts, off, bps, stack):
    lines = [line(a, str(i), category="c" if i % 2 else "d") for i, a in enumerate(amounts)]
    cs = [coupon("c00000000", amountOff=off)] + [
        coupon(f"c0000000{i}", stackable=True, kind="percent_off", amountOff=None,
               percentOffBps=bps, scope={"categories": ["c"]} if i % 2 else {})
        for i in range(1, stack)]
    try:
        ds = apply_coupons(cs, lines, store_id=None, now=NOW)
    except CouponNotApplicable:
        return  # a scope without lines
    for d in ds:
        assert sum(d.lines) == d.discount
        assert all(share >= 0 for share in d.lines)
    taken = [sum(d.lines[i] for d in ds) for i in range(len(lines))]
    assert all(t <= a for t, a in zip(taken, amounts))


@given(amounts=st.lists(st.integers(1, 10**6), min_size=1, max_size=6),
       off=st.integers(1, 10**7))
def test_a_quote_with_a_coupon_is_never_payable_below_zero(amounts, off):
    program = default_program()
    member = Member(member_id="Mabcdefgh", subject="s", phone="+8613800000000", nickname="n",
                    channel="app", created_at=NOW, updated_at=NOW, tier_id="V3",
                    tier_since=NOW)
    c = coupon(kind="percent_off", amountOff=None, percentOffBps=10_000) if off % 2 else \
        coupon(amountOff=off)
    lines = tuple(OrderLine(lineId=str(i), sku="S", category="c", brand="b", quantity=1,
                            unitPrice=a) for i, a in enumerate(amounts))
    q = quote(QuoteRequest(memberId="Mabcdefgh", lines=lines, couponIds=(c.coupon_id,)),
              member, program, (c,), NOW)
    assert q.payable >= 0
    assert q.coupon_discount == sum(x.coupon_discount for x in q.lines)
    assert q.coupon_discount <= q.subtotal - q.tier_discount
    assert all(x.coupon_discount + x.tier_discount <= x.subtotal for x in q.lines)


def test_applicable_coupons_are_best_first_and_skip_the_unusable():
    best = coupon("c00000003", amountOff=3_000)
    soon = coupon("c00000001", amountOff=1_000, valid_until=NOW + timedelta(days=1))
    late = coupon("c00000002", amountOff=1_000)
    used = coupon("c00000004", amountOff=9_000, status="used")
    far = coupon("c00000005", amountOff=9_000, minSpend=10**6)
    found = applicable_coupons([late, used, soon, far, best], [line(10_000)], store_id=None,
                               now=NOW, tz="Asia/Shanghai")
    assert [c.coupon_id for c in found] == ["c00000003", "c00000001", "c00000002"]


# ---- ownership and status -----------------------------------------------------------

def test_a_coupon_held_by_another_order_is_in_use():
    held = coupon(status="held").model_copy(update={"order_id": "SO-1"})
    with pytest.raises(CouponInUse):
        check_usable(held, held.coupon_id, held.member_id, NOW, order_id="SO-2")
    assert check_usable(held, held.coupon_id, held.member_id, NOW, order_id="SO-1") is held


def test_another_members_coupon_is_refused_as_owner():
    with pytest.raises(CouponNotApplicable) as refused:
        check_usable(coupon(), "c00000001", "Mzzzzzzzz", NOW)
    assert refused.value.details["reason"] == "owner"


def test_status_is_derived_at_read_time():
    c = coupon(valid_until=NOW)
    assert c.status_at(NOW) == "available"
    assert c.status_at(NOW + timedelta(microseconds=1)) == "expired"
    assert c.model_copy(update={"status": "used"}).status_at(NOW + timedelta(days=9)) == "used"


# ---- validity -----------------------------------------------------------------------

def test_valid_days_end_at_the_end_of_the_day_in_the_programs_time_zone():
    spec = default_templates()[0]  # 30 days
    issued = datetime(2026, 2, 28, 17, 0, tzinfo=UTC)  # 1 March 01:00 in Shanghai
    start, end = validity_of(spec, issued, "Asia/Shanghai")
    assert start == issued
    assert end == datetime(2026, 3, 31, 15, 59, 59, 999_999, tzinfo=UTC)


def test_a_template_needs_exactly_one_kind_of_validity():
    base = {"templateId": "T", "name": "n", "kind": "amount_off", "amountOff": 1, "stock": 1}
    with pytest.raises(ValueError):
        TemplateSpec.model_validate(base)
    with pytest.raises(ValueError):
        TemplateSpec.model_validate({**base, "validDays": 3,
                                     "validFrom": "2026-01-01T00:00:00Z",
                                     "validUntil": "2026-02-01T00:00:00Z"})
    assert TemplateSpec.model_validate({**base, "validDays": 3}).valid_days == 3


# ---- stock --------------------------------------------------------------------------

@given(stock=st.integers(1, 10**6), shards=st.integers(1, 32))
def test_stock_splits_exactly_over_the_shards(stock, shards):
    parts = stock_split(stock, shards)
    assert sum(parts) == stock
    assert max(parts) - min(parts) <= 1


def _shards(stocks, issued):
    return [Shard(index=i, stock=s, remaining=s - n, issued=n)
            for i, (s, n) in enumerate(zip(stocks, issued))]


@given(data=st.data())
def test_a_stock_change_keeps_every_shard_whole_and_never_cuts_issued(data):
    stocks = data.draw(st.lists(st.integers(0, 50), min_size=1, max_size=8))
    issued = [data.draw(st.integers(0, s)) for s in stocks]
    shards = _shards(stocks, issued)
    target = data.draw(st.integers(1, 500))
    if target < sum(issued):
        with pytest.raises(StockBelowIssued):
            stock_change(shards, target)
        return
    deltas = stock_change(shards, target)
    assert sum(stocks) + sum(deltas.values()) == target
    for s in shards:
        assert s.remaining + deltas.get(s.index, 0) >= 0


def test_pick_shard_skips_empty_and_paused_shards_and_says_out_of_stock():
    shards = _shards([1, 1, 1], [1, 0, 1])
    assert pick_shard(shards, 7).index == 1
    with pytest.raises(CouponOutOfStock):
        pick_shard(_shards([1, 1], [1, 1]), 0)
    paused = [s.model_copy(update={"paused": True}) for s in _shards([5], [0])]
    with pytest.raises(CouponOutOfStock):
        pick_shard(paused, 0)
