"""Money safety (docs/money.md): one regression test per behaviour, against DynamoDB Local.

Debts, upgrade gifts, profile edits during a posting, undoable holds, payload hashes and
the settlement's edges, each through the real services.
"""
from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from membership.domain import calendar
from membership.domain.checkout import (
    HoldRequest,
    OrderCancelled,
    OrderCompleted,
    OrderPaid,
    OrderRefunded,
    QuoteRequest,
)
from membership.domain.ledger import (
    MAX_TAKE_LOTS,
    HoldAlreadyReleased,
    HoldExpired,
    PayloadMismatch,
    PointsTooFragmented,
    PostingBuilder,
)
from membership.domain.members import ProfileUpdate, SignupRequest, member_id_for
from membership.domain.settlement import PeriodNotSettleable, period_before
from membership.domain.topups import RefundRequest, TopupRequest, topup_id_for
from membership.handlers import checkout as checkout_handler
from membership.services import checkout, orders, settlement, sweeps, topups
from membership.services import members as member_service
from membership.services.ledger import reconcile_member
from membership.storage import ledger as store
from membership.storage.members import update_profile
from membership.storage.program import load_program

TZ = "Asia/Shanghai"
NOW = datetime(2025, 3, 12, 2, 0, tzinfo=UTC)  # 10:00 on 12 March in Shanghai
LINES = [{"lineId": "1", "sku": "A", "category": "c", "brand": "b", "quantity": 2,
          "unitPrice": 10_000},
         {"lineId": "2", "sku": "B", "category": "c", "brand": "b", "quantity": 1,
          "unitPrice": 5_000}]


@pytest.fixture
def member_id(table, monkeypatch):
    monkeypatch.setenv("PAYMENT_VERIFIER", "membership.services.payments.TestReferenceVerifier")
    from membership.config import get_settings

    get_settings.cache_clear()
    member_service.signup("safe", SignupRequest(phone="13812340000", nickname="Safe",
                                                channel="app"), now=NOW)
    yield member_id_for("safe")
    get_settings.cache_clear()


def member(member_id):
    return store.read_live_range(member_id).member


def top_up(reference, amount, now=NOW):
    return topups.top_up("safe", f"key-{reference}", TopupRequest(
        amount=amount, paymentReference=reference, channel="alipay"), now=now).body


def refund_top_up(reference, refund_ref, amount=None, now=NOW):
    # Absent means the whole principal; an explicit null is refused.
    whole_or_part = {} if amount is None else {"amount": amount}
    return topups.refund(topup_id_for(reference), RefundRequest(
        refundReference=refund_ref, **whole_or_part), actor="operator", now=now).body


def hold(member_id, order_id, points=0, balance=0, now=NOW):
    return checkout.hold(HoldRequest(orderId=order_id, memberId=member_id, points=points,
                                     balance=balance), now=now)


def paid_payload(member_id, order_id, points=0, balance=0, cash=0, paid_at=NOW, lines=None):
    from membership.domain.checkout import points_value

    value = points_value(points, load_program())
    if lines is None:
        subtotal = value + balance + cash
        a = subtotal // 3
        lines = [{**LINES[0], "unitPrice": a}, {**LINES[1], "unitPrice": subtotal - 2 * a}]
    subtotal = sum(x["quantity"] * x["unitPrice"] for x in lines)
    return {"orderId": order_id, "memberId": member_id, "paidAt": calendar.wire(paid_at, TZ),
            "lines": lines, "amounts": {"subtotal": subtotal, "discount": 0,
                                        "pointsUsed": points, "balanceUsed": balance,
                                        "cashPaid": subtotal - balance - value}}


def pay(member_id, order_id, now=NOW, **kwargs):
    return orders.paid(OrderPaid.model_validate(paid_payload(member_id, order_id, **kwargs)),
                       now=now)


def cancel(member_id, order_id, now=NOW):
    return orders.cancelled(OrderCancelled(orderId=order_id, memberId=member_id), now=now)


def complete(member_id, order_id, now=NOW):
    return orders.completed(OrderCompleted(orderId=order_id, memberId=member_id), now=now)


def refund(member_id, order_id, refund_id, lines=None, now=NOW):
    body = {"orderId": order_id, "memberId": member_id, "refundId": refund_id}
    if lines is not None:
        body["lines"] = lines
    return orders.refunded(OrderRefunded.model_validate(body), now=now)


def seed(member_id, key, legs, now=NOW):
    def build(state):
        b = PostingBuilder(state, load_program(), source_key=key, source_type="test",
                           reason="seed", actor="test", now=now)
        legs(b)
        return b.build()

    return store.post(member_id, key, build)


# ---- 1. forgiven or written-off value never comes back ----------------------------------

def _bonus_spent_then_top_up_refunded(member_id):
    """10,000 + 500 bonus topped up; everything held; principal topped up again without
    bonus; the first top-up refunded in full: its 500 bonus was in the hold."""
    top_up("test-bonus", 10_000)
    hold(member_id, "SO-B", balance=10_500)
    top_up("test-plain-1", 5_000)
    top_up("test-plain-2", 5_000)
    answer = refund_top_up("test-bonus", "rf-bonus")
    assert (answer["bonusClawedBack"], answer["bonusForgiven"], answer["bonusDebt"]) == (
        0, 500, 500)


def test_bonus_of_a_refunded_top_up_never_comes_back_when_its_hold_is_released(member_id):
    _bonus_spent_then_top_up_refunded(member_id)
    cancel(member_id, "SO-B")
    m = member(member_id)
    assert (m.balance_principal, m.balance_bonus, m.bonus_debt) == (10_000, 0, 0)
    assert reconcile_member(member_id) == []


def test_bonus_of_a_refunded_top_up_never_comes_back_when_its_hold_lapses(member_id):
    _bonus_spent_then_top_up_refunded(member_id)
    sweeps.sweep(now=NOW + timedelta(hours=1))
    m = member(member_id)
    assert (m.balance_principal, m.balance_bonus, m.bonus_debt) == (10_000, 0, 0)
    assert reconcile_member(member_id) == []


def test_bonus_of_a_refunded_top_up_never_comes_back_when_the_order_that_spent_it_is_refunded(
        member_id):
    _bonus_spent_then_top_up_refunded(member_id)
    pay(member_id, "SO-B", balance=10_500, cash=1_000)
    refund(member_id, "SO-B", "RF-1")
    m = member(member_id)
    assert (m.balance_principal, m.balance_bonus, m.bonus_debt) == (10_000, 0, 0)
    assert reconcile_member(member_id) == []


def test_bonus_debt_is_paid_by_the_next_bonus_credited(member_id):
    _bonus_spent_then_top_up_refunded(member_id)
    pay(member_id, "SO-B", balance=10_500, cash=1_000)  # the bonus is spent for good
    top_up("test-next", 10_000)  # +500 bonus: pays the debt
    m = member(member_id)
    assert (m.balance_bonus, m.bonus_debt) == (0, 0)
    assert reconcile_member(member_id) == []


def _earned_points_spent_then_written_off(member_id):
    """Order A earns 300 points (completed, available); all 400 points are held for order
    B; A is refunded in full: its 300 points sit in B's hold and become points debt."""
    pay(member_id, "SO-A", cash=30_000)
    complete(member_id, "SO-A")
    hold(member_id, "SO-B", points=400)
    answer = refund(member_id, "SO-A", "RF-A").result
    assert (answer["earnedPointsReversed"], answer["earnedPointsWrittenOff"],
            answer["pointsDebt"]) == (300, 300, 300)


def test_written_off_points_never_come_back_when_the_hold_that_held_them_is_released(member_id):
    _earned_points_spent_then_written_off(member_id)
    cancel(member_id, "SO-B")
    m = member(member_id)
    assert (m.points_available, m.points_pending, m.points_debt) == (100, 0, 0)
    assert reconcile_member(member_id) == []


def test_written_off_points_never_come_back_when_the_order_that_spent_them_is_refunded(
        member_id):
    _earned_points_spent_then_written_off(member_id)
    pay(member_id, "SO-B", points=400, cash=1_000)
    refund(member_id, "SO-B", "RF-B")
    m = member(member_id)
    assert (m.points_available, m.points_debt) == (100, 0)
    assert reconcile_member(member_id) == []


def test_two_refunds_end_the_same_whichever_comes_first(table, monkeypatch):
    """Order A's points spent on order B: refunding A then B, or B then A, ends alike."""
    ends = []
    for n, first in enumerate(("A", "B")):
        member_service.signup(f"order-{n}", SignupRequest(
            phone=f"1381234{n:04d}", nickname="o", channel="app"), now=NOW)
        mid = member_id_for(f"order-{n}")
        pay(mid, f"A{n}", cash=50_000)
        complete(mid, f"A{n}")
        pay(mid, f"B{n}", points=600, cash=2_000)
        for order_id in (first, "B" if first == "A" else "A"):
            refund(mid, f"{order_id}{n}", f"RF-{order_id}{n}")
        m = member(mid)
        ends.append((m.points_available, m.points_pending, m.points_debt,
                     sum(m.growth_months.values())))
        assert reconcile_member(mid) == []
    assert ends[0] == ends[1] == (100, 0, 0, 0)


# ---- 2. upgrade gifts cannot be farmed --------------------------------------------------

def test_an_upgrade_gift_cannot_be_farmed_by_paying_refunding_and_repeating(member_id):
    pay(member_id, "SO-1", cash=100_000)  # 1,000 yuan: V2, gift 200 pending with the order
    m = member(member_id)
    assert m.tier_id == "V2" and m.points_pending == 1_000 + 200
    refund(member_id, "SO-1", "RF-1")  # growth back to 0: the gift goes back with the order
    m = member(member_id)
    assert (m.points_available, m.points_pending, m.points_debt) == (100, 0, 0)
    # The next month's settlement downgrades; paying again upgrades again, but no gift.
    run_at = calendar.month_start("2025-04", TZ) + timedelta(minutes=5)
    settlement.start("2025-03", now=run_at, segments=1)
    settlement.settle_segment("2025-03", 0, 1, clock=lambda: run_at)
    assert member(member_id).tier_id == "V1"
    pay(member_id, "SO-2", cash=100_000, paid_at=run_at, now=run_at)
    m = member(member_id)
    assert m.tier_id == "V2" and m.points_pending == 1_000  # the order's points only
    assert reconcile_member(member_id) == []


def test_a_gift_spent_before_its_order_is_refunded_becomes_points_debt(member_id):
    pay(member_id, "SO-1", cash=100_000)
    complete(member_id, "SO-1")  # 100 + 1,000 + 200 gift available
    pay(member_id, "SO-2", points=1_300, cash=0)  # all spent
    answer = refund(member_id, "SO-1", "RF-1").result
    assert (answer["giftPointsReversed"], answer["pointsDebt"]) == (200, 1_200)
    m = member(member_id)
    assert (m.points_available, m.points_debt) == (0, 1_200)
    assert reconcile_member(member_id) == []


# ---- 4. a profile edit during a posting is kept -----------------------------------------

def test_a_profile_edit_between_a_postings_read_and_commit_is_kept(member_id):
    program = load_program()

    def build(state):
        # The member renames themself after the posting read its state, before it commits.
        update_profile(member_id, ProfileUpdate(nickname="Renamed", storeId="s-9"), NOW)
        b = PostingBuilder(state, program, source_key="credit", source_type="test",
                           reason="t", actor="test", now=NOW)
        b.credit_balance("principal", 700)
        return b.build()

    store.post(member_id, "credit", build)
    m = member(member_id)
    assert (m.nickname, m.store_id, m.balance_principal) == ("Renamed", "s-9", 700)


# ---- 5. every committed hold can be undone within one transaction -----------------------

def _lots(member_id, count, distinct_expiries):
    """`count` lots of 10 points (after the signup gift's lot, spent first)."""
    seed(member_id, "spend-signup", lambda b: b.debit_points(100))

    def credit(b, low, high):
        for i in range(low, high):
            expiry = NOW + timedelta(days=700 + (i if distinct_expiries else 0))
            b.credit_points(10, lot_id=f"lot-{i:03d}", expires_at=expiry)

    for low in range(0, count, 40):
        seed(member_id, f"lots-{low}", lambda b, low=low: credit(b, low, min(low + 40, count)))


@pytest.mark.parametrize("count, distinct", [(96, False), (MAX_TAKE_LOTS, True)])
def test_a_hold_over_many_lots_can_be_released(member_id, count, distinct):
    _lots(member_id, count, distinct)
    hold(member_id, "SO-1", points=count * 10)
    cancel(member_id, "SO-1")
    m = member(member_id)
    assert (m.points_available, store.read_live_range(member_id).holds) == (count * 10, ())
    assert reconcile_member(member_id) == []


@pytest.mark.parametrize("count, distinct", [(96, False), (MAX_TAKE_LOTS, True)])
def test_a_hold_over_many_lots_lapses_in_the_sweep(member_id, count, distinct):
    _lots(member_id, count, distinct)
    hold(member_id, "SO-1", points=count * 10)
    report = sweeps.sweep(now=NOW + timedelta(hours=1))
    assert (report.holds_released, report.failed) == (1, 0)
    assert member(member_id).points_available == count * 10
    assert reconcile_member(member_id) == []


@pytest.mark.parametrize("count, distinct", [(96, False), (MAX_TAKE_LOTS, True)])
def test_the_order_that_captured_a_hold_over_many_lots_can_be_refunded(member_id, count,
                                                                        distinct):
    _lots(member_id, count, distinct)
    hold(member_id, "SO-1", points=count * 10)
    pay(member_id, "SO-1", points=count * 10, cash=50_000)
    refund(member_id, "SO-1", "RF-1")
    m = member(member_id)
    assert (m.points_available, m.points_pending, m.points_debt) == (count * 10, 0, 0)
    assert reconcile_member(member_id) == []


def test_a_hold_whose_undo_would_not_fit_is_refused_when_placed(member_id):
    _lots(member_id, MAX_TAKE_LOTS + 1, distinct_expiries=True)
    before = member(member_id)
    with pytest.raises(PointsTooFragmented):
        hold(member_id, "SO-1", points=(MAX_TAKE_LOTS + 1) * 10)
    assert member(member_id) == before


# ---- 6. same key, other payload, is never a silent replay --------------------------------

def test_order_paid_again_with_other_amounts_is_an_error_not_a_replay(member_id):
    pay(member_id, "SO-1", cash=20_000)
    again = pay(member_id, "SO-1", cash=20_000)
    assert again.replayed
    before = member(member_id)
    with pytest.raises(PayloadMismatch):
        pay(member_id, "SO-1", cash=20_100)
    assert member(member_id) == before


def test_a_refund_id_reused_for_other_lines_is_an_error_not_a_replay(member_id):
    pay(member_id, "SO-1", lines=LINES)
    refund(member_id, "SO-1", "RF-1", lines=[{"lineId": "1", "quantity": 1}])
    assert refund(member_id, "SO-1", "RF-1", lines=[{"lineId": "1", "quantity": 1}]).replayed
    before = member(member_id)
    with pytest.raises(PayloadMismatch):
        refund(member_id, "SO-1", "RF-1", lines=[{"lineId": "2", "quantity": 1}])
    assert member(member_id) == before


def test_a_refund_with_an_empty_lines_list_is_refused_by_the_parser():
    with pytest.raises(ValidationError):
        OrderRefunded.model_validate({"orderId": "SO-1", "memberId": "Mabcdefghij",
                                      "refundId": "RF-1", "lines": []})


def test_a_payload_mismatch_fails_the_event_so_it_reaches_the_dead_letter_queue(
        member_id, lambda_context):
    from membership.handlers import order_events

    def deliver(detail):
        return order_events.handler({
            "version": "0", "id": "e1", "detail-type": "order.paid", "source": "brand.orders",
            "account": "123456789012", "time": "2025-03-12T02:00:00Z", "region": "us-east-1",
            "resources": [], "detail": detail}, lambda_context)

    deliver(paid_payload(member_id, "SO-1", cash=20_000))
    with pytest.raises(PayloadMismatch):
        deliver(paid_payload(member_id, "SO-1", cash=30_000))


def test_a_top_up_refund_reference_reused_for_another_amount_is_refused(member_id):
    top_up("test-r", 10_000)
    refund_top_up("test-r", "rf-1", amount=4_000)
    with pytest.raises(topups.RefundReferenceUsed):
        refund_top_up("test-r", "rf-1", amount=3_000)
    assert member(member_id).balance_principal == 6_000


@pytest.mark.parametrize("close", ["cancelled", "lapsed"])
def test_asking_again_for_a_released_hold_does_not_answer_held(member_id, close,
                                                               apigw_event, lambda_context):
    top_up("test-h", 5_000)
    first, created = hold(member_id, "SO-1", balance=1_000)
    assert created and first["status"] == "held"
    later = NOW + timedelta(hours=1)
    if close == "cancelled":
        cancel(member_id, "SO-1")
    with pytest.raises(HoldExpired if close == "lapsed" else HoldAlreadyReleased):
        hold(member_id, "SO-1", balance=1_000, now=later)
    if close == "lapsed":
        sweeps.sweep(now=later)
        with pytest.raises(HoldAlreadyReleased):
            hold(member_id, "SO-1", balance=1_000, now=later)
    # Over HTTP: a 409 that says so, never 200 "held".
    event = apigw_event("POST", "/v1/checkout/holds",
                        {"orderId": "SO-1", "memberId": member_id, "balance": 1_000},
                        sub="order-system", scopes=["orders"])
    response = checkout_handler.handler(event, lambda_context)
    assert response["statusCode"] == 409
    assert json.loads(response["body"])["code"] == "hold_already_released"


# ---- 7. settlement at the edges ---------------------------------------------------------

def test_an_upgrade_on_the_1st_is_not_undone_by_the_previous_months_run(member_id):
    """Paid at 00:03 on 1 April: growth of April, V2 at once; the March run at 00:05 sees
    March's window only, and must not take V2 away again."""
    at_0003 = calendar.month_start("2025-04", TZ) + timedelta(minutes=3)
    pay(member_id, "SO-1", cash=100_000, paid_at=at_0003, now=at_0003)
    assert member(member_id).tier_id == "V2"
    at_0005 = at_0003 + timedelta(minutes=2)
    assert period_before(at_0005, TZ) == "2025-03"
    settlement.start("2025-03", now=at_0005, segments=1)
    settlement.settle_segment("2025-03", 0, 1, clock=lambda: at_0005)
    assert member(member_id).tier_id == "V2"


def test_an_old_period_cannot_be_settled_and_leaves_todays_tiers_alone(member_id):
    pay(member_id, "SO-1", cash=100_000)
    today = NOW + timedelta(days=30)
    with pytest.raises(PeriodNotSettleable):
        settlement.start("2020-01", now=today, segments=1)
    assert member(member_id).tier_id == "V2"


def test_a_stale_run_is_refused_once_a_later_month_has_started(member_id):
    april = calendar.month_start("2025-04", TZ) + timedelta(minutes=5)
    may = calendar.month_start("2025-05", TZ) + timedelta(minutes=5)
    settlement.start("2025-03", now=april, segments=1)
    settlement.start("2025-04", now=may, segments=1)
    with pytest.raises(PeriodNotSettleable):
        settlement.settle_segment("2025-03", 0, 1, clock=lambda: may)


def test_points_refunded_into_an_expired_lot_expire_at_once(member_id):
    expiry = NOW + timedelta(days=2)
    seed(member_id, "short", lambda b: b.credit_points(500, lot_id="short", expires_at=expiry))
    pay(member_id, "SO-1", points=600, cash=1_000)  # the short lot (soonest) and the gift
    later = expiry + timedelta(hours=1)
    refund(member_id, "SO-1", "RF-1", now=later)
    m = member(member_id)
    # The signup gift's 100 come back; the short lot's 500 expired at once.
    assert m.points_available == 100
    quote = checkout.quote(QuoteRequest(memberId=member_id, lines=[LINES[0]]))
    assert quote.points_redeemable == 100
    hold(member_id, "SO-2", points=100, now=later)  # what the quote offers, the hold takes
    guard = store.read_guard("order.refunded:SO-1:RF-1")
    assert [e["detailType"] for e in guard.outbox] == ["points.expired"]
    assert reconcile_member(member_id) == []


def test_concurrent_profile_edits_and_postings_lose_nothing(member_id):
    """Many postings and profile edits at once: every credit lands, the last name stays."""
    names = [f"name-{i}" for i in range(5)]
    errors = []

    def credit(i):
        try:
            seed(member_id, f"c-{i}", lambda b: b.credit_balance("principal", 10))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    def rename(name):
        update_profile(member_id, ProfileUpdate(nickname=name), NOW)

    threads = [threading.Thread(target=credit, args=(i,)) for i in range(10)]
    threads += [threading.Thread(target=rename, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    m = member(member_id)
    assert errors == [] and m.balance_principal == 10 * 10
    assert m.nickname in names
